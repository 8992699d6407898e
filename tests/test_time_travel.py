"""Time travel: reading a view or table as of a retained checkpoint."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import kernel_engine
from kernel_engine.errors import BindError, UnsupportedError


def test_as_of_time_epoch_and_now_minus_interval(tmp_path: Path) -> None:
    db = kernel_engine.connect(str(tmp_path), barrier_interval_ms=100, checkpoint_retention=50)
    try:
        db.execute("CREATE TABLE t (a INT); "
                   "CREATE MATERIALIZED VIEW s AS SELECT SUM(a) AS s, COUNT(*) AS n FROM t")
        db.execute("INSERT INTO t VALUES (1); FLUSH")
        epoch1, time1 = db.progress.committed_epoch, time.time()
        time.sleep(0.5)
        db.execute("INSERT INTO t VALUES (2), (3); FLUSH")
        assert db.execute("SELECT s FROM s").fetchall() == [(6,)]
        assert db.execute(f"SELECT s FROM s FOR SYSTEM_TIME AS OF {time1}").fetchall() == [(1,)]
        assert db.execute(f"SELECT s, n FROM s FOR SYSTEM_TIME AS OF EPOCH {epoch1}"
                          ).fetchall() == [(1, 1)]
        assert db.execute(f"SELECT COUNT(*) FROM t FOR SYSTEM_TIME AS OF EPOCH {epoch1}"
                          ).fetchall() == [(1,)]
        then_and_now = db.execute("SELECT old.s, cur.s FROM s FOR SYSTEM_TIME AS OF "
                                  "NOW() - INTERVAL '0.3' SECOND AS old, s AS cur").fetchall()
        assert then_and_now == [(1, 6)]
    finally:
        db.close()


def test_beyond_retention_is_a_clear_error(tmp_path: Path) -> None:
    db = kernel_engine.connect(str(tmp_path), barrier_interval_ms=50, checkpoint_retention=2)
    try:
        db.execute("CREATE TABLE t (a INT); INSERT INTO t VALUES (1); FLUSH")
        first = db.progress.committed_epoch
        for i in range(5):
            db.execute(f"INSERT INTO t VALUES ({i}); FLUSH")
        time.sleep(0.3)
        with pytest.raises(BindError, match="beyond the retained checkpoints"):
            db.execute(f"SELECT * FROM t FOR SYSTEM_TIME AS OF EPOCH {first}")
        with pytest.raises(BindError, match="beyond the retained checkpoints"):
            db.execute("SELECT * FROM t FOR SYSTEM_TIME AS OF 1000")
    finally:
        db.close()


def test_time_travel_needs_storage() -> None:
    with kernel_engine.connect() as db:
        db.execute("CREATE TABLE t (a INT)")
        with pytest.raises(UnsupportedError, match="checkpoint"):
            db.execute("SELECT * FROM t FOR SYSTEM_TIME AS OF EPOCH 1")
