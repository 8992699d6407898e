"""PythonSource: a source over notebook data — a table, a DataFrame or a generator.

    >>> import pandas as pd
    >>> src = PythonSource(pd.DataFrame({"id": [1, 2, 3]}))
    >>> src.next_batch(2).column("id").to_pylist(), src.offset()
    ([1, 2], {'rows': 2})

`data` is a pyarrow Table (or RecordBatch), a pandas DataFrame, or a
generator factory `gen(offset: int) -> Iterator[chunk]` that yields the
rows from row `offset` on, as chunks that are Arrow tables, DataFrames or
dicts of lists; a chunk of None means "nothing now" (the next call asks
again) and the end of the iterator ends the source. The factory must be
deterministic: `gen(n)` yields the same rows as `gen(0)` after its first n.

With `event_time='col'` and `speed=s`, rows are released as the clock
passes `(event_time - first event_time) / s` seconds since the source
started (or was sought: the row after the offset is then due at once);
`speed=None` releases everything at once. Event times should ascend; a
row is never released before an earlier one (a running maximum is used).
The offset is `{"rows": n}`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from kernel_engine.connectors._convert import conform, engine_schema
from kernel_engine.connectors.base import Clock, arrow_schema
from kernel_engine.errors import BindError, UnsupportedError

if TYPE_CHECKING:
    import pandas as pd  # type: ignore[import-untyped]

__all__ = ["Chunk", "GeneratorFactory", "PythonSource", "SchemaLike"]

Chunk: TypeAlias = "pa.Table | pa.RecordBatch | pd.DataFrame | Mapping[str, Any] | None"
"""What a generator yields: Arrow data, a DataFrame, a dict of lists, or None for "nothing now"."""
GeneratorFactory: TypeAlias = Callable[[int], Iterator[Chunk]]
SchemaLike: TypeAlias = "pa.Schema | list[tuple[str, str]] | Mapping[str, str]"
Floats: TypeAlias = npt.NDArray[np.float64]

_WHERE = "python source"


class PythonSource:
    """A source reader over an in-memory table or a generator factory."""

    def __init__(self, data: pa.Table | pa.RecordBatch | pd.DataFrame | GeneratorFactory,
                 schema: SchemaLike | None = None, event_time: str | None = None,
                 speed: float | None = None, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self._speed = _check_speed(speed, event_time)
        self._event_time = event_time
        self._table: pa.Table | None = None
        self._factory: GeneratorFactory | None = None
        self._gen: Iterator[Chunk] | None = None
        self._ended = True
        self._buffer: pa.Table = pa.table({})
        self._times: Floats = np.empty(0)
        given = _schema(schema) if schema is not None else None
        if callable(data) and not _is_dataframe(data):
            self._factory = data
            first = self._start(0)
            self.schema = given if given is not None else _inferred(first)
        else:
            first = _to_table(data)
            self.schema = given if given is not None else engine_schema(first.schema)
            first = self._table = conform(first, self.schema, _WHERE)
        if event_time is not None and event_time not in self.schema.names:
            raise BindError(f"event_time '{event_time}' is not a column of the source "
                            f"({', '.join(self.schema.names)})")
        self._reset(0, [] if first is None else [first])

    @property
    def exhausted(self) -> bool:
        """True once the table or the generator has no rows left."""
        return self._ended and self._buffer.num_rows == 0

    def next_batch(self, max_rows: int = 65536) -> pa.Table | None:
        """Return up to `max_rows` rows that are due, or None if none are now."""
        if max_rows <= 0:
            return None
        self._fill(max_rows)
        count = min(self._due(), max_rows)
        if count <= 0:
            return None
        batch = self._buffer.slice(0, count)
        self._buffer = self._buffer.slice(count)
        self._times = self._times[count:]
        self._rows += count
        return batch

    def offset(self) -> dict[str, Any]:
        """Return `{"rows": n}`: the number of rows returned so far."""
        return {"rows": self._rows}

    def seek(self, offset: dict[str, Any]) -> None:
        """Resume after `offset["rows"]` rows; pacing restarts from now."""
        rows = offset.get("rows")
        if not isinstance(rows, int) or isinstance(rows, bool) or rows < 0:
            raise ValueError(f"python source offset must be {{'rows': n >= 0}}, got {offset!r}")
        if self._table is not None:
            if rows > self._table.num_rows:
                raise ValueError(f"offset {rows} is past the table's {self._table.num_rows} "
                                 "rows")
            self._reset(rows, [self._table.slice(rows)])
            return
        self.close()
        first = self._start(rows)
        self._reset(rows, [] if first is None else [first])

    def close(self) -> None:
        """Close the running generator, if any."""
        close = getattr(self._gen, "close", None)
        if close is not None:
            close()
        self._gen = None

    def _start(self, rows: int) -> pa.Table | None:
        assert self._factory is not None
        self._gen = iter(self._factory(rows))
        self._ended = False
        return self._pull()

    def _pull(self) -> pa.Table | None:
        if self._gen is None or self._ended:
            return None
        try:
            chunk = next(self._gen)
        except StopIteration:
            self._ended = True
            return None
        return None if chunk is None else _to_table(chunk)

    def _reset(self, rows: int, chunks: list[pa.Table]) -> None:
        self._rows = rows
        self._buffer = self.schema.empty_table()
        self._times = np.empty(0)
        self._anchor: tuple[float, float] | None = None
        for chunk in chunks:
            self._append(chunk)

    def _append(self, chunk: pa.Table) -> None:
        chunk = conform(chunk, self.schema, _WHERE)
        if chunk.num_rows == 0:
            return
        self._buffer = pa.concat_tables([self._buffer, chunk]) if self._buffer.num_rows else chunk
        if self._speed is None:
            return
        times = _seconds(chunk.column(self._event_time))
        floor = self._times[-1] if len(self._times) else -np.inf
        self._times = np.concatenate([self._times, np.maximum.accumulate(
            np.maximum(times, floor))])
        if self._anchor is None:
            self._anchor = (self._clock(), float(self._times[0]))

    def _fill(self, max_rows: int) -> None:
        while not self._ended and self._gen is not None and self._buffer.num_rows < max_rows:
            if self._speed is not None and self._buffer.num_rows and self._due() < len(
                    self._times):
                return
            chunk = self._pull()
            if chunk is None:
                return
            self._append(chunk)

    def _due(self) -> int:
        if self._speed is None or self._anchor is None:
            return self._buffer.num_rows
        started, first = self._anchor
        horizon = first + (self._clock() - started) * self._speed
        return int(np.searchsorted(self._times, horizon + 1e-9, side="right"))


def _check_speed(speed: float | None, event_time: str | None) -> float | None:
    if speed is None:
        return None
    if event_time is None:
        raise BindError("speed needs event_time: the column whose times set the pace")
    if not speed > 0:
        raise BindError(f"speed must be greater than 0, got {speed}")
    return float(speed)


def _schema(schema: SchemaLike) -> pa.Schema:
    if isinstance(schema, pa.Schema):
        return schema
    pairs = list(schema.items()) if isinstance(schema, Mapping) else list(schema)
    return arrow_schema(pairs)


def _inferred(first: pa.Table | None) -> pa.Schema:
    if first is None:
        raise BindError("the generator yielded nothing to infer a schema from; pass schema=")
    return engine_schema(first.schema)


def _to_table(data: object) -> pa.Table:
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    if _is_dataframe(data):
        return pa.Table.from_pandas(data, preserve_index=False)
    if isinstance(data, Mapping):
        return pa.table(dict(data))
    raise UnsupportedError(f"a python source takes a pyarrow Table, a pandas DataFrame, a dict "
                           f"of lists or a generator factory, not {type(data).__name__}")


def _is_dataframe(data: object) -> bool:
    cls = type(data)
    return cls.__name__ == "DataFrame" and cls.__module__.startswith("pandas")


def _seconds(column: pa.ChunkedArray | pa.Array) -> Floats:
    t = column.type
    if pa.types.is_timestamp(t):
        per_second = {"s": 1.0, "ms": 1e3, "us": 1e6, "ns": 1e9}[t.unit]
        values = pc.divide(pc.cast(pc.cast(column, pa.int64()), pa.float64()), per_second)
    elif pa.types.is_date(t):
        values = pc.multiply(pc.cast(pc.cast(column, pa.date32()).cast(pa.int32()),
                                     pa.float64()), 86400.0)
    elif pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        values = pc.cast(column, pa.float64())
    else:
        raise BindError(f"event_time must be a timestamp, date or number column, not {t}")
    filled = pc.fill_null(values, -np.inf)
    return np.asarray(filled.to_numpy(zero_copy_only=False), dtype=np.float64)
