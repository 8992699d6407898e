"""Checkpoint storage: a local folder or S3, through fsspec (the only fsspec importer).

Objects are written whole and never modified: on a local folder a file is
written under a temporary name and renamed into place, on S3 a PUT is atomic.
"""

from __future__ import annotations

import os
import posixpath
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import fsspec

from kernel_engine.errors import Error

__all__ = ["Storage", "StorageError"]

# botocore's defaults retry a refused connection for ~6 s and a silent endpoint for minutes;
# these make a call to an unreachable S3 fail in a few seconds (a user may override them).
S3_CONFIG = {"connect_timeout": 3, "read_timeout": 15,
             "retries": {"max_attempts": 2, "mode": "standard"}}
# A PUT to an endpoint that accepts connections but never answers waits for its
# "100 Continue" forever, whatever read_timeout says: every S3 call gets a deadline (option
# `timeout`, seconds), writes one more second per MiB.
S3_CALL_TIMEOUT_S = 30.0


class StorageError(Error):
    """The checkpoint location cannot be read or written."""


class Storage:
    """A checkpoint location: `Storage.local(path)` or `Storage.s3(url, **options)`."""

    def __init__(self, fs: Any, root: str, url: str, timeout: float | None = None) -> None:
        self.fs = fs
        self.root = root.rstrip("/")
        self.url = url
        self.local = "file" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,))
        self.timeout = timeout

    def _deadline(self, size: int = 0) -> dict[str, float]:
        """The `timeout` keyword of an fsspec call (async filesystems only)."""
        return {} if self.timeout is None else {"timeout": self.timeout + size / 2**20}

    @classmethod
    def local_folder(cls, path: str) -> Storage:
        """A folder on local disk (created if missing)."""
        root = os.path.abspath(path)
        fs = fsspec.filesystem("file")
        try:
            fs.makedirs(root, exist_ok=True)
        except OSError as err:
            raise StorageError(f"cannot create checkpoint folder {root}: {err}") from None
        return cls(fs, root, root)

    @classmethod
    def s3(cls, url: str, **options: Any) -> Storage:
        """A bucket/prefix on S3; options go to s3fs (key, secret, endpoint_url, ...), except
        `timeout`: seconds one storage call may take (default 30, writes +1 s per MiB)."""
        opts = dict(options)
        endpoint = opts.pop("endpoint_url", None) or os.environ.get("AWS_ENDPOINT_URL")
        if endpoint:
            opts.setdefault("client_kwargs", {})["endpoint_url"] = endpoint
        region = opts.pop("region", None) or opts.pop("region_name", None)
        if region:
            opts.setdefault("client_kwargs", {})["region_name"] = region
        opts["config_kwargs"] = {**S3_CONFIG, **opts.get("config_kwargs", {})}
        timeout = float(opts.pop("timeout", S3_CALL_TIMEOUT_S))
        try:
            fs = fsspec.filesystem("s3", skip_instance_cache=True, **opts)
        except (ImportError, ValueError) as err:
            raise StorageError(f"cannot use {url}: {err}") from None
        return cls(fs, url.removeprefix("s3://").rstrip("/"), url, timeout)

    @classmethod
    def open(cls, location: str, options: dict[str, Any] | None = None) -> Storage:
        """A storage for a location string (`s3://...` or a local path), checked writable."""
        storage = (cls.s3(location, **(options or {})) if location.startswith("s3://")
                   else cls.local_folder(location))
        storage.check_writable()
        return storage

    def path(self, *parts: str) -> str:
        """The full path of an object."""
        return posixpath.join(self.root, *parts)

    def check_writable(self) -> None:
        """Write and remove a probe object; a clear error when that fails."""
        probe = self.path(f".probe-{uuid.uuid4().hex}")
        try:
            self.fs.pipe_file(probe, b"ok", **self._deadline())
            self.fs.rm_file(probe, **self._deadline())
        except Exception as err:  # noqa: BLE001 - any backend failure means not writable
            detail = str(err) or type(err).__name__
            raise StorageError(f"checkpoint location {self.url} is not writable: "
                               f"{detail}") from None

    @contextmanager
    def _failing(self, action: str, rel: str) -> Iterator[None]:
        """Turn a backend failure into a StorageError naming the location; a missing
        object stays a FileNotFoundError (not a failure of the storage)."""
        try:
            yield
        except FileNotFoundError:
            raise
        except Exception as err:  # noqa: BLE001 - any backend failure, named for the user
            detail = str(err) or type(err).__name__  # a timeout has no message
            raise StorageError(f"cannot {action} {rel} in checkpoint location {self.url}: "
                               f"{detail}") from err

    def write(self, rel: str, data: bytes) -> None:
        """Write an object whole (atomically: readers never see part of it)."""
        with self._failing("write", rel):
            self._write(self.path(rel), data)

    def _write(self, target: str, data: bytes) -> None:
        if self.local:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            tmp = f"{target}.tmp-{uuid.uuid4().hex}"
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
            _fsync_dir(os.path.dirname(target))  # the rename itself must survive power loss
            return
        self.fs.pipe_file(target, data, **self._deadline(len(data)))

    def read(self, rel: str) -> bytes:
        """Read an object."""
        with self._failing("read", rel):
            data: bytes = self.fs.cat_file(self.path(rel), **self._deadline())
        return data

    def read_size(self, rel: str) -> int:
        """Size of an object in bytes."""
        with self._failing("read the size of", rel):
            return int(self.fs.size(self.path(rel), **self._deadline()))

    def list(self, prefix: str) -> list[str]:
        """Relative paths of objects under a prefix (recursive), sorted."""
        base = self.path(prefix)
        try:
            with self._failing("list", prefix):
                found = self.fs.find(base, **self._deadline())
        except FileNotFoundError:
            return []
        root = self.root if not self.local else self.root
        out = []
        for p in found:
            p = p if self.local else p
            rel = posixpath.relpath(p, root) if self.local else p[len(self.root) + 1:]
            out.append(rel)
        return sorted(out)

    def delete(self, rel: str) -> None:
        """Remove an object if it exists."""
        try:
            with self._failing("delete", rel):
                self.fs.rm_file(self.path(rel), **self._deadline())
        except FileNotFoundError:
            pass

    def exists(self, rel: str) -> bool:
        """Whether an object exists."""
        return bool(self.fs.exists(self.path(rel), **self._deadline()))


def _fsync_dir(path: str) -> None:
    """Make a folder's entries (a file just renamed into it) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
