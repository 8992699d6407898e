"""Epochs, barriers and progress: the engine thread as other components see it."""

from __future__ import annotations

import threading
import time

import pyarrow as pa

import kernel_engine


def test_default_barrier_interval_is_one_second_and_epochs_advance_on_their_own() -> None:
    db = kernel_engine.connect()
    try:
        params = dict((r[0], r[1]) for r in db.execute("SHOW PARAMETERS").fetchall())
        assert params["barrier_interval_ms"] == "1000"
        assert params["checkpoint_frequency"] == "1"
        first = db.progress.committed_epoch
        time.sleep(2.3)
        assert db.progress.committed_epoch >= first + 2
    finally:
        db.close()


def test_insert_becomes_visible_at_the_next_barrier_without_flush() -> None:
    db = kernel_engine.connect(barrier_interval_ms=100)
    try:
        db.execute("CREATE TABLE t (a INT); "
                   "CREATE MATERIALIZED VIEW s AS SELECT SUM(a) AS s FROM t")
        db.execute("INSERT INTO t VALUES (1), (2)")
        deadline = time.monotonic() + 5
        while db.execute("SELECT s FROM s").fetchone() != (3,):
            assert time.monotonic() < deadline, "insert never became visible"
            time.sleep(0.01)
    finally:
        db.close()


def test_alter_system_changes_the_barrier_interval() -> None:
    db = kernel_engine.connect(barrier_interval_ms=1000)
    try:
        db.execute("ALTER SYSTEM SET barrier_interval_ms = 50")
        time.sleep(1.2)  # the old interval ends, then 50 ms barriers
        before = db.progress.committed_epoch
        time.sleep(1.0)
        assert db.progress.committed_epoch - before >= 8
    finally:
        db.close()


def test_progress_reports_epochs_latency_and_rows_per_operator() -> None:
    db = kernel_engine.connect(barrier_interval_ms=50)
    try:
        db.execute("CREATE TABLE t (k INT, v INT); "
                   "CREATE MATERIALIZED VIEW m AS SELECT k, SUM(v) AS s FROM t GROUP BY k")
        db.insert("t", pa.table({"k": [1, 2, 1], "v": [10, 20, 30]}))
        db.flush()
        p = db.progress
        assert p.committed_epoch >= 1 and p.current_epoch == p.committed_epoch + 1
        epochs = [e for e, _ in p.barrier_latency_ms]
        assert epochs == sorted(epochs) and epochs[-1] == p.committed_epoch
        assert all(ms >= 0 for _, ms in p.barrier_latency_ms)
        rows = db.operator_rows()
        assert rows["t"] == (3, 3)
        assert rows["m"][0] == 2  # two groups reached the materialize operator
        assert p.errors == []
    finally:
        db.close()


def test_flush_from_several_threads_sees_every_earlier_insert() -> None:
    db = kernel_engine.connect(barrier_interval_ms=500)
    try:
        db.execute("CREATE TABLE t (a INT); "
                   "CREATE MATERIALIZED VIEW c AS SELECT COUNT(*) AS n FROM t")
        seen: list[int] = []

        def worker(i: int) -> None:
            db.execute(f"INSERT INTO t VALUES ({i})")
            db.execute("FLUSH")
            seen.append(db.execute(f"SELECT COUNT(*) FROM t WHERE a = {i}").fetchone()[0])

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert seen == [1] * 8
        assert db.execute("SELECT n FROM c").fetchone() == (8,)
    finally:
        db.close()
