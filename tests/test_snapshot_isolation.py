"""Readers see whole epochs; DML from many threads is all applied.

While one thread inserts continuously, another repeatedly runs one query that
reads two views of the same table; both views commit in the same epoch, so
the query must never see one updated and the other not. Then several
threads issue DML at once and every row must arrive.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pyarrow as pa

import kernel_engine

READ = "SELECT (SELECT SUM(s) FROM per_key) AS a, (SELECT s FROM total) AS b"


def engine() -> kernel_engine.Connection:
    """An engine with table t and the views per_key and total."""
    db = kernel_engine.connect(barrier_interval_ms=20)
    db.execute("CREATE TABLE t (k INT, v INT)")
    db.execute("CREATE MATERIALIZED VIEW per_key AS SELECT k, SUM(v) AS s FROM t GROUP BY k")
    db.execute("CREATE MATERIALIZED VIEW total AS SELECT SUM(v) AS s FROM t")
    return db


def batch(start: int, n: int) -> pa.Table:
    """n rows with keys cycling over 0..6 and values start, start+1, ..."""
    return pa.table({"k": pa.array([(start + i) % 7 for i in range(n)], pa.int32()),
                     "v": pa.array([start + i for i in range(n)], pa.int32())})


def in_thread(fn: Callable[[], None], errors: list[BaseException]) -> threading.Thread:
    """Start fn in a thread; an exception it raises is appended to `errors`."""
    def run() -> None:
        try:
            fn()
        except BaseException as err:  # noqa: BLE001 - reported by the main thread
            errors.append(err)
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_reader_sees_consistent_epochs() -> None:
    db = engine()
    errors: list[BaseException] = []
    stop = threading.Event()
    seen: list[tuple[object, object]] = []
    try:
        def write() -> None:
            start = 1
            while not stop.is_set():
                if start % 3 == 0:
                    db.execute(f"INSERT INTO t VALUES ({start % 7}, {start}), "
                               f"({(start + 1) % 7}, {start + 1})")
                    start += 2
                else:
                    db.insert("t", batch(start, 5))
                    start += 5
                time.sleep(0.002)

        def read() -> None:
            while not stop.is_set():
                a, b = db.execute(READ).fetchone() or (None, None)
                assert a == b, f"read {len(seen)}: SUM over per_key = {a}, total = {b}"
                seen.append((a, b))

        threads = [in_thread(write, errors), in_thread(read, errors)]
        time.sleep(3)
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        assert not errors, errors
        assert len(seen) > 50, f"only {len(seen)} reads"
        distinct = {a for a, _ in seen}
        assert len(distinct) >= 5, f"the reader saw only {len(distinct)} epochs: {distinct}"
        db.flush()
        a, b = db.execute(READ).fetchone() or (None, None)
        count, total = db.execute("SELECT COUNT(*), SUM(v) FROM t").fetchone() or (0, 0)
        assert a == b == total and count > 0
        assert db.progress.errors == []
    finally:
        stop.set()
        db.close()


def test_concurrent_dml_is_all_applied() -> None:
    db = engine()
    threads_n, rows_n = 4, 300
    errors: list[BaseException] = []
    try:
        def write(worker: int) -> None:
            base = worker * rows_n
            for i in range(0, rows_n, 10):
                if (i // 10) % 2:
                    db.insert("t", batch(base + i, 10))
                else:
                    values = ", ".join(f"({(base + j) % 7}, {base + j})"
                                       for j in range(i, i + 10))
                    db.execute(f"INSERT INTO t VALUES {values}")

        threads = [in_thread(lambda w=w: write(w), errors) for w in range(threads_n)]
        for thread in threads:
            thread.join(timeout=60)
        assert not errors, errors
        db.execute("FLUSH")
        n = threads_n * rows_n
        assert db.execute("SELECT COUNT(*), COUNT(DISTINCT v) FROM t").fetchone() == (n, n)
        want = n * (n - 1) // 2
        assert db.execute(READ).fetchone() == (want, want)
        per_key = dict(db.execute("SELECT k, s FROM per_key").fetchall())
        assert per_key == {k: sum(v for v in range(n) if v % 7 == k) for k in range(7)}
        assert db.progress.errors == []
    finally:
        db.close()
