"""Sources: datagen, file and Python sources feeding views, and their exact replay."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

import kernel_engine
from kernel_engine.errors import BindError

DATAGEN = """CREATE SOURCE gen (id BIGINT, v INT) WITH (
    connector = 'datagen',
    fields.id.kind = 'sequence', fields.id.start = '1', fields.id.end = '3000',
    fields.v.kind = 'random', fields.v.min = '1', fields.v.max = '100', fields.v.seed = '7',
    datagen.rows.per.second = '2000'
) FORMAT PLAIN ENCODE JSON"""


def _wait(db: kernel_engine.Connection, sql: str, want: object, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while db.execute(sql).fetchall() != want:
        assert time.monotonic() < deadline, db.execute(sql).fetchall()
        time.sleep(0.05)


def test_datagen_feeds_a_view_and_is_deterministic() -> None:
    sums = []
    for _ in range(2):
        with kernel_engine.connect(barrier_interval_ms=50) as db:
            db.execute(DATAGEN)
            db.execute("CREATE MATERIALIZED VIEW g AS SELECT COUNT(*) AS n, "
                       "COUNT(DISTINCT id) AS d, MIN(id) AS lo, MAX(id) AS hi, SUM(v) AS s "
                       "FROM gen")
            _wait(db, "SELECT n FROM g", [(3000,)])
            row = db.execute("SELECT * FROM g").fetchone()
            assert row[:4] == (3000, 3000, 1, 3000)
            assert db.execute("SHOW SOURCES").fetchall() == [("gen",)]
            sums.append(row[4])
    assert sums[0] == sums[1]


def test_a_source_rejects_dml_and_bad_options() -> None:
    with kernel_engine.connect(barrier_interval_ms=50) as db:
        db.execute(DATAGEN)
        with pytest.raises(BindError, match="source"):
            db.execute("INSERT INTO gen VALUES (1, 1)")
        with pytest.raises(kernel_engine.Error, match="fields.v.mni|mni"):
            db.execute("CREATE SOURCE bad (v INT) WITH (connector = 'datagen', "
                       "fields.v.mni = '1')")
        assert db.execute("SHOW SOURCES").fetchall() == [("gen",)]


def test_file_source_picks_up_new_files_and_replays_exactly(tmp_path: Path) -> None:
    data = tmp_path / "in"
    data.mkdir()
    (data / "a.csv").write_text("id,name\n1,a\n2,b\n")
    db = kernel_engine.connect(str(tmp_path / "state"), barrier_interval_ms=50)
    try:
        db.execute(f"CREATE TABLE files (id INT, name VARCHAR) WITH (connector = 'fs', "
                   f"fs.path = '{data}', match_pattern = '*.csv', "
                   f"refresh.interval.sec = '0.05') FORMAT PLAIN ENCODE CSV")
        db.execute("CREATE MATERIALIZED VIEW n AS SELECT COUNT(*) AS n, SUM(id) AS s FROM files")
        _wait(db, "SELECT * FROM n", [(2, 3)])
        db.execute("FLUSH")
        db.crash()
        (data / "b.csv").write_text("id,name\n3,c\n4,d\n")
        db.execute("RECOVER")
        _wait(db, "SELECT * FROM n", [(4, 10)])
        assert db.execute("SELECT id FROM files ORDER BY id").fetchall() == [(1,), (2,), (3,), (4,)]
    finally:
        db.close()


def test_datagen_recovers_mid_stream_without_gaps_or_duplicates(tmp_path: Path) -> None:
    db = kernel_engine.connect(str(tmp_path), barrier_interval_ms=50)
    try:
        db.execute(DATAGEN)
        db.execute("CREATE MATERIALIZED VIEW g AS SELECT COUNT(*) AS n, COUNT(DISTINCT id) AS d,"
                   " MAX(id) AS hi FROM gen")
        time.sleep(0.4)
        db.execute("FLUSH")
        seen = db.execute("SELECT n FROM g").fetchone()[0]
        assert 0 < seen < 3000
        db.crash()
        db.execute("RECOVER")
        _wait(db, "SELECT n, d, hi FROM g", [(3000, 3000, 3000)])
    finally:
        db.close()


TOP = "CREATE MATERIALIZED VIEW top AS SELECT id, v FROM gen ORDER BY v, id DESC LIMIT 40"


def test_a_source_stores_nothing_durable_and_its_views_stay_exact(tmp_path: Path) -> None:
    """RisingWave: "data is not stored by the source itself". Checkpoints hold the views'
    state and the connector offset, not the source's rows; after a crash the views (a
    copy and a Top-N) equal a run without one."""
    db = kernel_engine.connect(str(tmp_path), barrier_interval_ms=50)
    try:
        db.execute(DATAGEN)
        db.execute("CREATE MATERIALIZED VIEW copy AS SELECT id, v FROM gen")
        db.execute(TOP)
        time.sleep(0.4)
        db.execute("FLUSH")
        assert 0 < db.execute("SELECT count(*) FROM copy").fetchone()[0] < 3000
        manifests = sorted((tmp_path / "manifests").glob("*.json"))
        tables = json.loads(manifests[-1].read_text())["body"]["tables"]
        assert not [t for t in tables if t.endswith("gen")], tables
        assert [t for t in tables if "copy" in t], tables
        db.crash()
        db.execute("RECOVER")
        _wait(db, "SELECT count(*), count(DISTINCT id), min(id), max(id) FROM copy",
              [(3000, 3000, 1, 3000)])
        want = db.execute("SELECT sum(v) FROM copy").fetchone()
        with kernel_engine.connect(barrier_interval_ms=50) as fresh:  # no crash, same seed
            fresh.execute(DATAGEN)
            fresh.execute("CREATE MATERIALIZED VIEW copy AS SELECT id, v FROM gen")
            fresh.execute(TOP)
            _wait(fresh, "SELECT count(*) FROM copy", [(3000,)])
            assert fresh.execute("SELECT sum(v) FROM copy").fetchone() == want
            assert (fresh.execute("SELECT * FROM top ORDER BY id").fetchall()
                    == db.execute("SELECT * FROM top ORDER BY id").fetchall())
    finally:
        db.close()


def test_python_source_from_dataframe_and_generator() -> None:
    with kernel_engine.connect(barrier_interval_ms=50) as db:
        db.create_source("df", pd.DataFrame({"k": [1, 2, 1], "v": [10, 20, 30]}))
        db.execute("CREATE MATERIALIZED VIEW s AS SELECT k, SUM(v) AS s FROM df GROUP BY k")
        _wait(db, "SELECT * FROM s ORDER BY k", [(1, 40), (2, 20)])

        def gen(offset: int):  # noqa: ANN202 - a generator factory that can seek
            for start in range(offset, 50, 10):
                yield pa.table({"x": list(range(start, min(start + 10, 50)))})

        db.create_source("g", gen, schema=[("x", "BIGINT")])
        db.execute("CREATE MATERIALIZED VIEW gs AS SELECT COUNT(*) AS n, SUM(x) AS s FROM g")
        _wait(db, "SELECT * FROM gs", [(50, sum(range(50)))])


def test_python_source_fed_again_after_a_restart_resumes_at_its_offset(tmp_path: Path) -> None:
    """A Python source lives in the process that created it: after a crash, a new engine on
    the same location recovers the view and, once `create_source` is called again with the
    same data, reads on from the checkpointed offset — no event twice, none missing."""
    n = 3000
    events = pd.DataFrame({"id": range(n), "v": [i % 7 for i in range(n)],
                           "ts": pd.to_datetime(range(n), unit="ms")})
    view = ("CREATE MATERIALIZED VIEW m AS SELECT count(*) AS n, count(DISTINCT id) AS d, "
            "sum(v) AS t FROM ev")
    db = kernel_engine.connect(str(tmp_path), barrier_interval_ms=50)
    db.create_source("ev", events, event_time="ts", speed=1.0)  # 3 s of events take 3 s
    db.execute(view)
    deadline = time.monotonic() + 10
    while not db.execute("SELECT n FROM m").fetchall() and time.monotonic() < deadline:
        time.sleep(0.05)
    db.execute("FLUSH")
    seen = db.execute("SELECT n FROM m").fetchone()[0]
    assert 0 < seen < n
    db.crash()
    with pytest.warns(UserWarning, match="python source ev is not registered"):
        again = kernel_engine.connect(str(tmp_path), barrier_interval_ms=50)
    try:
        assert again.execute("SELECT n FROM m").fetchone()[0] >= seen
        with pytest.raises(BindError, match="python source ev was created with columns"):
            again.create_source("ev", events[["id", "v"]])
        again.create_source("ev", events, event_time="ts", speed=1.0)
        _wait(again, "SELECT n, d, t FROM m", [(n, n, sum(i % 7 for i in range(n)))])
    finally:
        again.close()
        db.close()
