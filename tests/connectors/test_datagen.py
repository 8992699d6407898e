"""The datagen connector: sequences, seeded randomness, pacing, exhaustion, bad options."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from kernel_engine.connectors import DatagenSource, make_reader
from kernel_engine.errors import BindError, UnsupportedError

from ._support import FakeClock, assert_deterministic, drain

COLUMNS = [
    ("id", "BIGINT"), ("n", "INTEGER"), ("name", "VARCHAR"), ("amount", "DOUBLE"),
    ("price", "DECIMAL(10,2)"), ("flag", "BOOLEAN"), ("ts", "TIMESTAMP"),
    ("tz", "TIMESTAMPTZ"), ("day", "DATE"), ("at", "TIME"), ("raw", "BLOB"),
    ("small", "SMALLINT"), ("r", "REAL"),
]
OPTIONS = {
    "connector": "datagen",
    "fields.id.kind": "sequence", "fields.id.start": "1", "fields.id.end": "200",
    "fields.n.kind": "random", "fields.n.min": "-5", "fields.n.max": "5", "fields.n.seed": "3",
    "fields.name.length": "6", "fields.name.seed": "9",
    "fields.amount.min": "1.5", "fields.amount.max": "2.5",
    "fields.price.min": "10", "fields.price.max": "20",
    "fields.ts.max_past": "2h", "fields.ts.basetime": "2024-06-01 12:00:00",
    "fields.raw.length": "4",
    "datagen.rows.per.second": "1000",
}


def reader(options: dict[str, str] | None = None, columns: list | None = None,
           clock: FakeClock | None = None) -> DatagenSource:
    built = make_reader(options or OPTIONS, columns or COLUMNS, None, None,
                        clock=clock or FakeClock(step=100.0))
    assert isinstance(built, DatagenSource)
    return built


def test_deterministic_chunks_and_seeks() -> None:
    whole = assert_deterministic(reader, every=3)
    assert whole.num_rows == 200
    assert whole.schema.field("tz").type == pa.timestamp("us", tz="UTC")


def test_values_follow_the_options() -> None:
    table, _ = drain(reader())
    assert table.column("id").to_pylist() == list(range(1, 201))
    n = table.column("n").to_numpy()
    assert n.min() >= -5 and n.max() <= 5 and len(set(n)) == 11
    names = table.column("name").to_pylist()
    assert all(len(s) == 6 and s.isalnum() for s in names) and len(set(names)) > 190
    amount = table.column("amount").to_numpy()
    assert ((amount >= 1.5) & (amount <= 2.5)).all()
    assert all(10 <= float(p) <= 20 for p in table.column("price").to_pylist())
    assert 50 < sum(table.column("flag").to_pylist()) < 150
    ts = table.column("ts").cast(pa.int64()).to_numpy() / 1e6
    base = np.datetime64("2024-06-01T12:00:00", "s").astype(np.int64)
    assert (ts <= base).all() and (ts >= base - 7200).all()
    assert all(len(b) == 4 for b in table.column("raw").to_pylist())
    assert table.column("small").to_numpy().max() <= 32767


def test_same_seed_same_values_other_seed_differs() -> None:
    cols = [("x", "BIGINT")]
    clock = FakeClock(step=1.0)
    a, _ = drain(reader({"connector": "datagen", "fields.x.seed": "1"}, cols, clock), (50,), 2)
    b, _ = drain(reader({"connector": "datagen", "fields.x.seed": "1"}, cols, clock), (50,), 2)
    c, _ = drain(reader({"connector": "datagen", "fields.x.seed": "2"}, cols, clock), (50,), 2)
    assert a.num_rows == 20 and a.equals(b) and not a.equals(c)


def test_pacing_by_the_clock() -> None:
    clock = FakeClock()
    src = reader({"connector": "datagen", "datagen.rows.per.second": "10",
                  "fields.id.kind": "sequence"}, [("id", "BIGINT")], clock)
    assert src.next_batch() is None
    clock.advance(0.25)
    assert src.next_batch().column("id").to_pylist() == [0, 1]
    assert src.next_batch() is None
    clock.advance(1.0)
    assert src.next_batch(5).num_rows == 5          # capped by max_rows
    assert src.next_batch().num_rows == 5           # the rest that is due (12 in total)
    assert src.offset() == {"rows": 12}
    src.seek({"rows": 3})                           # pacing restarts from the seek
    assert src.next_batch() is None
    clock.advance(0.1)
    assert src.next_batch().column("id").to_pylist() == [3]


def test_sequence_end_exhausts_the_source() -> None:
    clock = FakeClock()
    src = reader({"connector": "datagen", "fields.id.kind": "sequence", "fields.id.start": "5",
                  "fields.id.end": "9", "fields.v.kind": "sequence", "fields.v.end": "100"},
                 [("id", "INTEGER"), ("v", "SMALLINT")], clock)
    clock.advance(3600)
    assert src.next_batch().column("id").to_pylist() == [5, 6, 7, 8, 9]
    assert src.exhausted and src.total == 5
    assert src.next_batch() is None
    src.seek({"rows": 4})
    clock.advance(1)
    assert src.next_batch().column("v").to_pylist() == [4]


def test_timestamp_sequence_steps() -> None:
    clock = FakeClock(step=10)
    src = reader({"connector": "datagen", "fields.ts.kind": "sequence",
                  "fields.ts.start": "2024-01-01 00:00:00", "fields.ts.step": "30s",
                  "fields.ts.end": "2024-01-01 00:02:00"}, [("ts", "TIMESTAMP")], clock)
    table, _ = drain(src)
    assert [str(v) for v in table.column("ts").to_pylist()] == [
        "2024-01-01 00:00:00", "2024-01-01 00:00:30", "2024-01-01 00:01:00",
        "2024-01-01 00:01:30", "2024-01-01 00:02:00"]


def test_large_batch_is_vectorised() -> None:
    src = reader({"connector": "datagen", "datagen.rows.per.second": "1000000",
                  "fields.s.length": "16"}, [("id", "BIGINT"), ("s", "VARCHAR")])
    batch = src.next_batch(200_000)
    lengths = pc.binary_length(batch.column("s"))
    assert batch.num_rows == 200_000 and pc.sum(lengths).as_py() == 3_200_000


@pytest.mark.parametrize(("options", "message"), [
    ({"fields.id.kind": "sequnce"}, "'fields.id.kind'"),
    ({"fields.nope.kind": "random"}, "'fields.nope.kind'"),
    ({"fields.id.min": "x"}, "'fields.id.min'"),
    ({"fields.id.length": "3"}, "'fields.id.length'"),
    ({"fields.id.kind": "sequence", "fields.id.start": "9", "fields.id.end": "1"},
     "'fields.id.end'"),
    ({"fields.id.min": "5", "fields.id.max": "1"}, "'fields.id.max'"),
    ({"datagen.rows.per.second": "0"}, "'datagen.rows.per.second'"),
    ({"datagen.rows.per.second": "fast"}, "'datagen.rows.per.second'"),
    ({"fields.ts.max_past": "a while"}, "'fields.ts.max_past'"),
    ({"fields.ts.basetime": "yesterday"}, "'fields.ts.basetime'"),
    ({"fields.ts.max_past_mode": "relative"}, "'fields.ts.max_past_mode'"),
    ({"fields.n.max": "99999"}, "'fields.n.max'"),
    ({"fields.name.kind": "sequence"}, "'fields.name.kind'"),
    ({"datagen.rows.per.sec": "5"}, "'datagen.rows.per.sec'"),
])
def test_bad_options_name_the_option(options: dict[str, str], message: str) -> None:
    columns = [("id", "BIGINT"), ("ts", "TIMESTAMP"), ("n", "SMALLINT"), ("name", "VARCHAR")]
    with pytest.raises(BindError, match=message):
        make_reader({"connector": "datagen", **options}, columns, None, None)


def test_bad_format_and_type() -> None:
    with pytest.raises(BindError, match="FORMAT PLAIN ENCODE JSON"):
        make_reader({"connector": "datagen"}, [("id", "BIGINT")], "UPSERT", "JSON")
    with pytest.raises(UnsupportedError, match="INTERVAL"):
        make_reader({"connector": "datagen"}, [("i", "INTERVAL")], None, None)


def test_bad_offset() -> None:
    with pytest.raises(ValueError, match="rows"):
        reader().seek({"row": 1})
