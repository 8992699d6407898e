"""Shared fixtures: an S3 server (moto's server mode on loopback), a fresh bucket per test, and
a throwaway PostgreSQL cluster.

`s3_server` starts `python -m moto.server` once per session on a free loopback port, waits
until it answers and stops it at the end. `s3_bucket` creates an empty bucket for one test.
`pg_server` initialises and starts a PostgreSQL cluster (Debian's packages) on a free loopback
port with a password-authenticated login role, for the whole session (`rwmagic.services`
does both). Without the software these tests are skipped on a workstation, but fail under
CI=true: a missing service must never turn into a silent skip there.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from rwmagic.services import (
    PostgresServer,
    S3Server,
    ServiceUnavailable,
    free_port,
    start_postgres,
    start_s3,
)

__all__ = ["PostgresServer", "S3Server", "free_port", "missing_service"]


def missing_service(reason: str) -> None:
    """Skip on a workstation; fail under CI=true."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason} (CI=true: a missing service fails the run)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """moto's S3 server on a free loopback port, for the whole session."""
    try:
        server = start_s3(tmp_path_factory.mktemp("moto") / "moto.log")
    except ServiceUnavailable as err:
        missing_service(f"S3 tests: {err}")
        raise AssertionError("unreachable") from None
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> str:
    """A fresh, empty bucket for one test."""
    return s3_server.create_bucket()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL cluster on a free loopback port, for the whole session."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        missing_service("PostgreSQL tests need psycopg")
    try:
        server = start_postgres()
    except ServiceUnavailable as err:
        missing_service(f"PostgreSQL tests: {err}")
        raise AssertionError("unreachable") from None
    try:
        yield server
    finally:
        server.stop()
