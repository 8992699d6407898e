"""Shared fixtures: an S3 server (moto's server mode on loopback) and a fresh bucket per test.

`s3_server` starts `python -m moto.server` once per session on a free loopback port, waits
until it answers and stops it at the end. `s3_bucket` creates an empty bucket for one test.
Without moto the S3 tests are skipped on a workstation, but fail under CI=true: a missing
service must never turn into a silent skip there.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

__all__ = ["S3Server", "free_port", "missing_service"]

KEY = "testing"
SECRET = "testing"
REGION = "us-east-1"
STARTUP_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class S3Server:
    """A running S3 endpoint with the credentials it accepts."""

    endpoint: str
    key: str = KEY
    secret: str = SECRET
    region: str = REGION

    def storage_options(self, endpoint: str | None = None) -> dict[str, Any]:
        """`storage_options` for `kernel_engine.connect` (optionally via another endpoint)."""
        return {"key": self.key, "secret": self.secret,
                "endpoint_url": endpoint or self.endpoint}

    def env(self) -> dict[str, str]:
        """The AWS_* environment variables that point a client at this server."""
        return {"AWS_ACCESS_KEY_ID": self.key, "AWS_SECRET_ACCESS_KEY": self.secret,
                "AWS_ENDPOINT_URL": self.endpoint, "AWS_DEFAULT_REGION": self.region}

    def filesystem(self) -> Any:
        """An s3fs filesystem on this server (to list and read what the engine wrote)."""
        import s3fs

        return s3fs.S3FileSystem(key=self.key, secret=self.secret, skip_instance_cache=True,
                                 use_listings_cache=False,
                                 client_kwargs={"endpoint_url": self.endpoint})

    def create_bucket(self) -> str:
        """A new, empty bucket; returns its name."""
        name = f"ke-{uuid.uuid4().hex[:12]}"
        self.filesystem().mkdir(name)
        return name


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def missing_service(reason: str) -> None:
    """Skip on a workstation; fail under CI=true."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason} (CI=true: a missing service fails the run)", pytrace=False)
    pytest.skip(reason)


def _answers(endpoint: str) -> bool:
    try:
        with urllib.request.urlopen(endpoint + "/", timeout=1):
            return True
    except urllib.error.HTTPError:
        return True  # it answered, even if with an error status
    except OSError:
        return False


def _start_moto(log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1",
                                 "-p", str(port)], stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        if _answers(endpoint):
            return proc, endpoint
        time.sleep(0.1)
    _stop(proc)
    missing_service(f"moto server did not start on {endpoint}: "
                    f"{log.read_text(errors='replace')[-2000:]}")
    raise AssertionError("unreachable")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """moto's S3 server on a free loopback port, for the whole session."""
    for module in ("moto", "flask", "s3fs"):
        try:
            __import__(module)
        except ImportError:
            missing_service(f"S3 tests need moto[server] and s3fs ({module} is missing)")
    proc, endpoint = _start_moto(tmp_path_factory.mktemp("moto") / "moto.log")
    try:
        yield S3Server(endpoint)
    finally:
        _stop(proc)


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> str:
    """A fresh, empty bucket for one test."""
    return s3_server.create_bucket()
