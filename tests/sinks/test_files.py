"""File sinks: one file per delivered epoch (Parquet, JSON lines, CSV), local and on S3,
written atomically and exactly once across crashes."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

import kernel_engine
from kernel_engine.errors import Error
from kernel_engine.meta.coordinator import EngineCrashed


def read_rows(folder: Path, ext: str) -> list[tuple]:
    rows: list[tuple] = []
    for path in sorted(folder.iterdir()):
        assert path.suffix == f".{ext}", f"unexpected file {path.name}"
        rows += decode(path.read_bytes(), ext)
    return rows


def decode(data: bytes, ext: str) -> list[tuple]:
    if ext == "parquet":
        table = pq.read_table(io.BytesIO(data))
    elif ext == "csv":
        table = pacsv.read_csv(io.BytesIO(data))
    else:
        return [tuple(json.loads(line).values()) for line in data.decode().splitlines()]
    return [tuple(r.values()) for r in table.to_pylist()]


@pytest.mark.parametrize("encode", ["PARQUET", "JSON", "CSV"])
def test_one_file_per_epoch(tmp_path, encode):
    out = tmp_path / "out"
    db = kernel_engine.connect(str(tmp_path / "state"), barrier_interval_ms=3_600_000)
    try:
        db.execute("CREATE TABLE e (id INT, name VARCHAR) APPEND ONLY")
        db.execute("INSERT INTO e VALUES (1, 'a')")
        db.execute(f"CREATE SINK f FROM e WITH (connector = 'fs', path = '{out}', "
                   f"type = 'append-only') FORMAT PLAIN ENCODE {encode}")
        db.execute("INSERT INTO e VALUES (2, 'b'), (3, 'c'); FLUSH")
        db.execute("FLUSH")  # an epoch without rows writes no file
        db.execute("INSERT INTO e VALUES (4, 'd'); FLUSH")
        ext = encode.lower()
        files = sorted(p.name for p in out.iterdir())
        assert len(files) == 3 and all(f.endswith(f".{ext}") for f in files)
        assert sorted(read_rows(out, ext)) == [(1, "a"), (2, "b"), (3, "c"), (4, "d")]
    finally:
        db.close()


@pytest.mark.parametrize("at", ["sink_mid_txn", "sink_after_commit", "after_snapshot"])
def test_file_sink_exactly_once_across_crash(tmp_path, at):
    out = tmp_path / "out"
    db = kernel_engine.connect(str(tmp_path / "state"), barrier_interval_ms=3_600_000)
    try:
        db.execute("CREATE TABLE e (id INT) APPEND ONLY")
        db.execute(f"CREATE SINK f FROM e WITH (connector = 'fs', path = '{out}', "
                   "type = 'append-only') FORMAT PLAIN ENCODE PARQUET")
        db.execute("INSERT INTO e VALUES (1), (2); FLUSH")
        db.crash(at=at)
        try:
            db.execute("INSERT INTO e VALUES (3)")
            db.execute("FLUSH")
        except EngineCrashed:
            pass
        assert db.wait_crashed(timeout=10)
        db.execute("RECOVER")
        db.execute("INSERT INTO e VALUES (4); FLUSH")
        assert sorted(read_rows(out, "parquet")) == [(1,), (2,), (3,), (4,)]
    finally:
        db.close()


def test_file_sink_options_are_checked(tmp_path):
    db = kernel_engine.connect(barrier_interval_ms=3_600_000)
    try:
        db.execute("CREATE TABLE e (id INT) APPEND ONLY")
        for sql, message in [
            (f"CREATE SINK f FROM e WITH (connector = 'fs', path = '{tmp_path}', "
             "type = 'append-only')", "needs FORMAT PLAIN ENCODE"),
            (f"CREATE SINK f FROM e WITH (connector = 'fs', path = '{tmp_path}', "
             "type = 'upsert', primary_key = 'id') FORMAT PLAIN ENCODE CSV", "append-only"),
            (f"CREATE SINK f FROM e WITH (connector = 'fs', path = '{tmp_path}', "
             "type = 'append-only') FORMAT PLAIN ENCODE AVRO", "ENCODE AVRO"),
            ("CREATE SINK f FROM e WITH (connector = 'kafka', type = 'append-only')",
             "option 'connector'"),
        ]:
            with pytest.raises(Error, match=message):
                db.execute(sql)
    finally:
        db.close()


def test_s3_file_sink(tmp_path, s3_server, s3_bucket):
    db = kernel_engine.connect(str(tmp_path / "state"), barrier_interval_ms=3_600_000)
    try:
        db.execute("CREATE TABLE e (id INT, v DOUBLE) APPEND ONLY")
        db.execute(f"""CREATE SINK f FROM e WITH (connector = 's3', s3.bucket_name = '{s3_bucket}',
            s3.path = 'exports/e', s3.endpoint_url = '{s3_server.endpoint}',
            s3.credentials.access = '{s3_server.key}',
            s3.credentials.secret = '{s3_server.secret}', type = 'append-only')
            FORMAT PLAIN ENCODE PARQUET""")
        db.execute("INSERT INTO e VALUES (1, 1.5); FLUSH")
        db.execute("INSERT INTO e VALUES (2, 2.5); FLUSH")
        fs = s3_server.filesystem()
        names = sorted(fs.find(f"{s3_bucket}/exports/e"))
        assert len(names) == 2 and all(n.endswith(".parquet") for n in names)
        table = pa.concat_tables([pq.read_table(io.BytesIO(fs.cat_file(n))) for n in names])
        assert sorted(table.to_pylist(), key=lambda r: r["id"]) == [
            {"id": 1, "v": 1.5}, {"id": 2, "v": 2.5}]
        shown = db.execute("SHOW CREATE SINK f").fetchall()[0][1]
        assert "s3.credentials.secret = '***'" in shown
    finally:
        db.close()


@pytest.mark.parametrize(("guarantee", "at", "effect"), [
    ("exactly_once", "sink_after_commit", None),
    ("at_least_once", "sink_after_commit", "duplicated"),
    ("at_most_once", "sink_before_txn", "lost"),
])
def test_crash_lab_file_sink(guarantee, at, effect):
    from kernel_engine.meta.crashlab import ARTICLE_WORKLOAD, run_crash_lab

    result = run_crash_lab(ARTICLE_WORKLOAD, at, guarantee, sink=True)
    outcome = result.outcomes["crash_lab_sink"]
    assert outcome.expected and outcome.observed
    if effect is None:
        assert result.ok, result.summary()
    else:
        assert getattr(outcome, effect) > 0, result.summary()
