"""Checkpoints on S3 (moto's server mode on loopback, through s3fs).

- DDL, DML and FLUSH leave manifests, data files and DML logs in the bucket; a crash and
  RECOVER, and a new connection in the same process, give back exactly the acknowledged rows.
- Credentials and endpoint from the AWS_* environment variables.
- S3 unreachable mid-run (a loopback TCP proxy between the engine and moto is cut, then
  restored): processing and queries go on, an INSERT fails with a StorageError naming the
  location and is not applied, checkpoints retry and lag, FLUSH waits, and once S3 is back
  the next durable checkpoint covers everything.
- A missing bucket, an unreachable endpoint or one that never answers (with a short
  `timeout` storage option) fails `connect` with a StorageError within seconds.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa
import pytest
from conftest import S3Server, free_port

import kernel_engine
from kernel_engine.state.checkpoint import load_manifest
from kernel_engine.state.storage import StorageError

DDL = """
CREATE TABLE ev (id BIGINT, k INT, v INT);
CREATE MATERIALIZED VIEW ev_by_k AS SELECT k, SUM(v) AS s, COUNT(*) AS c FROM ev GROUP BY k;
CREATE MATERIALIZED VIEW ev_total AS SELECT COUNT(*) AS n FROM ev;
"""
KEYS = 7


class TcpProxy:
    """A loopback TCP relay to `target_port` that a test can cut and restore.

    `cut()` closes the listener and every relayed connection, so clients see resets and
    then refused connections; `restore()` listens on the same port again.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self.restore()

    def restore(self) -> None:
        listener = socket.create_server(("127.0.0.1", self.port))
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        with self._lock:
            doomed = [self._listener, *self._sockets] if self._listener else []
            self._listener = None
            self._sockets.clear()
        for s in doomed:
            _close(s)

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                _close(client)
                continue
            with self._lock:
                if self._listener is not listener:  # cut meanwhile
                    _close(client)
                    _close(upstream)
                    return
                self._sockets.update((client, upstream))
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with self._lock:
                    self._sockets.discard(s)
                _close(s)


def _close(s: socket.socket) -> None:
    """Shut down and close (shutdown wakes a thread blocked in accept or recv)."""
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    s.close()


def moto_port(server: S3Server) -> int:
    return int(server.endpoint.rsplit(":", 1)[1])


def batch(first: int, n: int) -> pa.Table:
    ids = list(range(first, first + n))
    return pa.table({"id": pa.array(ids, pa.int64()),
                     "k": pa.array([i % KEYS for i in ids], pa.int32()),
                     "v": pa.array([(i * 37) % 101 - 50 for i in ids], pa.int32())})


def content(db: kernel_engine.Connection) -> dict[str, list[tuple]]:
    return {"ev": db.execute("SELECT id, k, v FROM ev ORDER BY id").fetchall(),
            "ev_by_k": db.execute("SELECT k, s, c FROM ev_by_k ORDER BY k").fetchall(),
            "ev_total": db.execute("SELECT n FROM ev_total").fetchall()}


def expected(ids: list[int]) -> dict[str, list[tuple]]:
    """What the table and both views hold after inserting `batch` rows with these ids."""
    rows = sorted((i, i % KEYS, (i * 37) % 101 - 50) for i in ids)
    by_k: dict[int, tuple[int, int]] = {}
    for _, k, v in rows:
        s, c = by_k.get(k, (0, 0))
        by_k[k] = (s + v, c + 1)
    return {"ev": rows, "ev_by_k": [(k, s, c) for k, (s, c) in sorted(by_k.items())],
            "ev_total": [(len(rows),)]}


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def objects(server: S3Server, root: str) -> list[str]:
    """Paths under `bucket/prefix`, relative to it, listed with s3fs."""
    return sorted(p[len(root) + 1:] for p in server.filesystem().find(root))


def paths(node: object) -> list[str]:
    """Every "path" value in a manifest section (file entries may nest parts)."""
    if isinstance(node, dict):
        own = [node["path"]] if isinstance(node.get("path"), str) else []
        return own + [p for v in node.values() for p in paths(v)]
    if isinstance(node, list):
        return [p for v in node for p in paths(v)]
    return []


def test_checkpoints_land_in_the_bucket_and_recover(s3_server, s3_bucket):
    root = f"{s3_bucket}/engine/run1"
    url = f"s3://{root}"
    db = kernel_engine.connect(url, storage_options=s3_server.storage_options(),
                               barrier_interval_ms=100)
    params = dict((n, v) for n, v, _ in db.execute("SHOW PARAMETERS").fetchall())
    assert params["state_store"] == url
    db.execute(DDL)
    db.execute("INSERT INTO ev VALUES (1, 1, -13), (2, 2, 24)")
    db.insert("ev", batch(3, 200))
    db.execute("FLUSH")
    acked = [1, 2, *range(3, 203)]
    assert content(db) == expected(acked)

    durable = db.durability.writer.durable_epoch
    names = objects(s3_server, root)
    manifests = [n for n in names if n.startswith("manifests/")]
    assert manifests and all(n.endswith(".json") for n in manifests)
    assert any(n.startswith("data/__mv_ev_by_k/") for n in names)
    assert [n for n in names if n.startswith("log/ev/")] == ["log/ev/000000000001.arrow",
                                                             "log/ev/000000000002.arrow"]
    newest = json.loads(s3_server.filesystem().cat_file(f"{root}/{manifests[-1]}"))["body"]
    assert newest["epoch"] >= durable
    assert newest["sources"] == {"ev": 2}
    live = set(paths(newest["tables"]))
    assert live and live <= set(names)

    db.crash()
    with pytest.raises(kernel_engine.Error, match="crashed"):
        db.execute("SELECT * FROM ev_total")
    db.execute("RECOVER")
    assert content(db) == expected(acked)
    db.insert("ev", batch(203, 50))
    db.execute("INSERT INTO ev VALUES (253, 1, 19)")
    db.close()  # no FLUSH: the DML log alone must bring these rows back

    again = kernel_engine.connect(url, storage_options=s3_server.storage_options(),
                                  barrier_interval_ms=100)
    try:
        assert content(again) == expected([*acked, *range(203, 254)])
    finally:
        again.close()


def test_credentials_and_endpoint_from_environment(s3_server, s3_bucket, monkeypatch):
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    url = f"s3://{s3_bucket}/from-env"
    db = kernel_engine.connect(url, barrier_interval_ms=100)
    try:
        db.execute(DDL)
        db.insert("ev", batch(1, 30))
        db.execute("FLUSH")
    finally:
        db.close()
    assert any(n.startswith("manifests/") for n in objects(s3_server, url[5:]))
    again = kernel_engine.connect(url, barrier_interval_ms=100)
    try:
        assert content(again) == expected(list(range(1, 31)))
    finally:
        again.close()


def test_s3_outage_mid_run(s3_server, s3_bucket):
    proxy = TcpProxy(moto_port(s3_server))
    url = f"s3://{s3_bucket}/outage"
    db = kernel_engine.connect(url, storage_options=s3_server.storage_options(proxy.endpoint),
                               barrier_interval_ms=100)
    writer = db.durability.writer
    db.execute(DDL)
    acked: list[int] = []
    for first in range(1, 500, 100):
        db.insert("ev", batch(first, 100))
        acked += range(first, first + 100)
    db.execute("FLUSH")
    assert content(db) == expected(acked)
    errors_before = len(writer.lag_errors)

    db.insert("ev", batch(501, 100))  # acknowledged: in the log, not yet checkpointed
    acked += range(501, 601)
    proxy.cut()
    cut_epoch = db.progress.committed_epoch

    # Processing goes on: the view catches up with every acknowledged row, epochs commit.
    wait_until(lambda: content(db) == expected(acked), 5, "the views to catch up")
    flush = ThreadPoolExecutor(1).submit(db.flush)
    # An INSERT cannot be logged: it fails with an error naming the location, in seconds.
    started = time.monotonic()
    with pytest.raises(StorageError, match=f"checkpoint location {url}"):
        db.execute("INSERT INTO ev VALUES (601, 1, 1), (602, 2, 2)")
    assert time.monotonic() - started < 10
    # Checkpoints fail and retry; durability lags the committed epoch; FLUSH waits for it.
    wait_until(lambda: len(writer.lag_errors) >= errors_before + 2, 15, "checkpoint retries")
    assert url in writer.lag_errors[-1]
    assert db.progress.committed_epoch >= cut_epoch + 3
    assert writer.durable_epoch < db.progress.checkpoint_epoch
    assert db.progress.durable_lag_epochs >= 2  # reported to monitors, with the error
    assert url in db.progress.checkpoint_errors[-1]
    assert not flush.done(), "FLUSH returned while no checkpoint could be made durable"
    assert content(db) == expected(acked)  # queries work; the failed INSERTs were not applied

    landed = len(writer.history)
    proxy.restore()
    pending = db.progress.checkpoint_epoch
    assert writer.wait_durable(pending, timeout=20), "no durable checkpoint after S3 came back"
    # The checkpoints queued during the outage were merged: the first one or two that land
    # cover everything, including every logged batch.
    assert len(writer.history) - landed <= 2
    manifest = load_manifest(db.storage)
    assert manifest is not None and manifest.epoch >= pending
    assert manifest.sources == {"ev": db.durability.log("ev").next_seq - 1}
    flush.result(timeout=20)
    # caught up: only the checkpoints in flight (a 100 ms barrier, ~300 ms per S3 checkpoint)
    wait_until(lambda: db.progress.durable_lag_epochs <= 5, 10, "the durable lag to shrink")

    db.insert("ev", batch(601, 100))
    acked += range(601, 701)
    db.execute("FLUSH")
    db.crash()
    db.execute("RECOVER")
    try:
        assert content(db) == expected(acked)
    finally:
        db.close()
        proxy.cut()


@pytest.mark.parametrize("case", ["missing bucket", "unreachable endpoint", "silent endpoint"])
def test_bad_location_fails_at_connect(s3_server, case):
    url = "s3://some-bucket/x"
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never answers
        if case == "missing bucket":
            url, options = "s3://no-such-bucket-here/x", s3_server.storage_options()
        elif case == "unreachable endpoint":
            options = s3_server.storage_options(f"http://127.0.0.1:{free_port()}")
        else:
            options = {**s3_server.storage_options(
                f"http://127.0.0.1:{silent.getsockname()[1]}"), "timeout": 2}
        started = time.monotonic()
        with pytest.raises(StorageError, match=f"checkpoint location {url} is not writable"):
            kernel_engine.connect(url, storage_options=options)
        assert time.monotonic() - started < 5
    assert issubclass(StorageError, kernel_engine.Error)
