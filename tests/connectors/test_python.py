"""PythonSource: tables, DataFrames and generator factories; event-time pacing; errors."""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
import pyarrow as pa
import pytest

from kernel_engine.connectors import PythonSource, SourceReader
from kernel_engine.errors import BindError, UnsupportedError

from ._support import FakeClock, assert_deterministic, drain

FRAME = pd.DataFrame({
    "id": range(40),
    "ts": pd.date_range("2024-01-01", periods=40, freq="2s"),
    "name": [f"n{i}" for i in range(40)],
})


def chunks(offset: int) -> Iterator[pa.Table | pd.DataFrame | dict | None]:
    """Rows offset..49 in chunks of 6, alternating kinds, with a 'nothing now' in between."""
    i = offset
    while i < 50:
        n = min(6, 50 - i)
        ids = list(range(i, i + n))
        kind = (i // 6) % 3
        if kind == 0:
            yield {"id": ids, "v": [x * 0.5 for x in ids]}
        elif kind == 1:
            yield pd.DataFrame({"id": ids, "v": [x * 0.5 for x in ids]})
        else:
            yield pa.table({"v": [x * 0.5 for x in ids], "id": ids})
        i += n


def test_is_a_source_reader() -> None:
    assert isinstance(PythonSource(FRAME), SourceReader)


def test_dataframe_and_table_are_deterministic() -> None:
    whole = assert_deterministic(lambda: PythonSource(FRAME), every=2)
    assert whole.column("id").to_pylist() == list(range(40))
    assert whole.schema.metadata is None
    assert whole.schema.field("name").type == pa.string()
    table = pa.Table.from_pandas(FRAME, preserve_index=False)
    assert assert_deterministic(lambda: PythonSource(table), every=5).equals(whole)


def test_generator_factory_is_deterministic_and_seeks_by_offset() -> None:
    def make() -> PythonSource:
        return PythonSource(chunks, schema=[("id", "BIGINT"), ("v", "DOUBLE")])

    whole = assert_deterministic(make, every=1)
    assert whole.column("id").to_pylist() == list(range(50))
    src = make()
    drain(src)
    assert src.exhausted and src.offset() == {"rows": 50}


def test_generator_schema_is_inferred_and_none_means_nothing_now() -> None:
    feed: list[dict | None] = [{"x": [1, 2]}, None, {"x": [3]}]

    def gen(offset: int) -> Iterator[dict | None]:
        yield from feed

    src = PythonSource(gen)
    assert src.schema == pa.schema([("x", pa.int64())])
    assert src.next_batch(2).column("x").to_pylist() == [1, 2]
    assert src.next_batch() is None and not src.exhausted      # the generator's None
    assert src.next_batch().column("x").to_pylist() == [3]
    assert src.next_batch() is None and src.exhausted


def test_schema_casts_and_fills_missing_columns() -> None:
    src = PythonSource({"id": [1, 2]} and pa.table({"id": [1, 2]}),
                       schema={"id": "INTEGER", "note": "VARCHAR"})
    batch = src.next_batch()
    assert batch.schema == pa.schema([("id", pa.int32()), ("note", pa.string())])
    assert batch.column("note").null_count == 2


def test_inferred_types_are_the_engines() -> None:
    frame = pd.DataFrame({
        "at": pd.to_datetime(["2024-01-01 00:00:00.000000001"]).tz_localize("Europe/Paris"),
        "cat": pd.Categorical(["a"]),
    })
    batch = PythonSource(frame).next_batch()
    assert batch.schema == pa.schema([("at", pa.timestamp("us", tz="UTC")), ("cat", pa.string())])
    assert batch.column("at")[0].as_py().isoformat() == "2023-12-31T23:00:00+00:00"


def test_event_time_pacing_with_a_fake_clock() -> None:
    clock = FakeClock()
    src = PythonSource(FRAME, event_time="ts", speed=4.0, clock=clock)  # 2 s apart -> 0.5 s
    assert src.next_batch().column("id").to_pylist() == [0]
    assert src.next_batch() is None
    clock.advance(1.0)
    assert src.next_batch().column("id").to_pylist() == [1, 2]
    clock.advance(10.0)
    assert src.next_batch(5).num_rows == 5
    assert src.next_batch().column("id").to_pylist() == list(range(8, 23))
    src.seek({"rows": 30})                      # the row after the offset is due at once
    assert src.next_batch().column("id").to_pylist() == [30]
    clock.advance(0.5)
    assert src.next_batch().column("id").to_pylist() == [31]


def test_pacing_a_generator_pulls_no_further_than_due() -> None:
    pulled: list[int] = []

    def gen(offset: int) -> Iterator[dict]:
        for start in range(offset, 100, 10):
            pulled.append(start)
            yield {"t": [float(i) for i in range(start, start + 10)]}

    clock = FakeClock()
    src = PythonSource(gen, event_time="t", speed=1.0, clock=clock)
    assert src.next_batch().column("t").to_pylist() == [0.0]
    clock.advance(12)
    assert src.next_batch().num_rows == 12
    assert pulled == [0, 10]
    assert src.offset() == {"rows": 13}


def test_out_of_order_event_times_never_overtake() -> None:
    clock = FakeClock()
    src = PythonSource(pa.table({"t": [0, 5, 1, 6]}), event_time="t", speed=1.0, clock=clock)
    assert src.next_batch().column("t").to_pylist() == [0]
    clock.advance(5)
    assert src.next_batch().column("t").to_pylist() == [5, 1]


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"event_time": "nope"}, BindError, "'nope'"),
    ({"speed": 2.0}, BindError, "event_time"),
    ({"event_time": "ts", "speed": 0}, BindError, "speed"),
    ({"event_time": "name", "speed": 1.0}, BindError, "event_time"),
    ({"schema": [("id", "INTERVAL")]}, UnsupportedError, "INTERVAL"),
])
def test_bad_arguments(kwargs: dict, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        PythonSource(FRAME, **kwargs)


def test_bad_data_and_offsets() -> None:
    with pytest.raises(UnsupportedError, match="list"):
        PythonSource([1, 2, 3])  # type: ignore[arg-type]
    with pytest.raises(BindError, match="schema="):
        PythonSource(lambda offset: iter([None]))
    src = PythonSource(FRAME)
    with pytest.raises(ValueError, match="past"):
        src.seek({"rows": 41})
    with pytest.raises(ValueError, match="rows"):
        src.seek({"rows": -1})
