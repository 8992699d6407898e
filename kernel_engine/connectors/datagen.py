"""RisingWave's datagen connector: sequence and random columns, paced by a clock.

    CREATE SOURCE s (id BIGINT, name VARCHAR, ts TIMESTAMP) WITH (
        connector = 'datagen',
        fields.id.kind = 'sequence', fields.id.start = '1', fields.id.end = '1000',
        fields.name.kind = 'random', fields.name.length = '8', fields.name.seed = '7',
        fields.ts.kind = 'random', fields.ts.max_past = '1h',
        datagen.rows.per.second = '100')

Row `i` is a pure function of the options and `i` (see `_random`), so the
offset is just the number of rows returned: `{"rows": n}`. Rows become
available at `datagen.rows.per.second` by the clock, counted from the
moment the reader was built or last sought. A source with a sequence
column is exhausted after the sequence's `end`.

Options per column (`fields.<col>.<attr>`):

- `kind`: 'sequence' or 'random' (default 'random').
- sequence over numbers: `start` (default 0), `end` (inclusive, default the
  type's maximum); over timestamps: `start` (default `basetime`), `step`
  (an interval, default '1s') and an optional `end`.
- random numbers: `min` (default 0), `max` (default 32767), `seed` (default 0).
- random strings and blobs: `length` (default 10), `seed`.
- random timestamps and dates: `basetime` (default '2024-01-01 00:00:00'),
  `max_past` (an interval, default '1 day'), values uniform in
  [basetime - max_past, basetime] at millisecond resolution; `seed`.
  `max_past_mode` may only be 'absolute' (relative would not replay).
- random booleans and times of day: `seed`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kernel_engine.connectors._convert import to_decimal
from kernel_engine.connectors._options import Options
from kernel_engine.connectors._random import random_int, random_u64, random_unit
from kernel_engine.connectors.base import Clock, arrow_schema
from kernel_engine.errors import BindError

__all__ = ["DatagenSource", "FieldSpec", "datagen_from_options"]

_US = 1_000_000
_DAY_US = 86_400 * _US
_DEFAULT_BASE = "2024-01-01 00:00:00"
_BATCH_BYTES = 1 << 28      # per string column of one batch (offsets are int32)
_ALPHABET = np.frombuffer(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", dtype=np.uint8
)
_COMMON = {"kind", "seed"}
_ATTRS = {
    ("sequence", "number"): {"kind", "start", "end"},
    ("sequence", "time"): {"kind", "start", "end", "step"},
    ("random", "number"): _COMMON | {"min", "max"},
    ("random", "text"): _COMMON | {"length"},
    ("random", "time"): _COMMON | {"basetime", "max_past", "max_past_mode"},
    ("random", "other"): _COMMON,
}


@dataclass(frozen=True)
class FieldSpec:
    """How one column is generated; numbers are ints for integer/decimal columns."""

    name: str
    type: pa.DataType
    kind: str = "random"
    seed: int = 0
    low: float = 0
    high: float = 32767
    length: int = 10
    base_us: int = 0
    span_us: int = _DAY_US
    step_us: int = _US
    count: int | None = None

    def values(self, start: int, count: int) -> pa.Array:
        """Return this column's values for rows `start .. start+count-1`."""
        if self.kind == "sequence":
            return self._sequence(start, count)
        return self._random(start, count)

    def _sequence(self, start: int, count: int) -> pa.Array:
        rows = np.arange(start, start + count, dtype=np.int64)
        if pa.types.is_timestamp(self.type):
            return pa.array(self.base_us + rows * self.step_us, pa.int64()).cast(self.type)
        if pa.types.is_integer(self.type):
            return pa.array(int(self.low) + rows, pa.int64()).cast(self.type)
        floats = pa.array(self.low + rows.astype(np.float64))
        if pa.types.is_decimal(self.type):
            return to_decimal(floats, self.type)
        return floats.cast(self.type)

    def _random(self, start: int, count: int) -> pa.Array:
        t = self.type
        if pa.types.is_integer(t):
            ints = random_int(self.seed, self.name, start, count, int(self.low), int(self.high))
            return pa.array(ints).cast(t)
        if pa.types.is_floating(t) or pa.types.is_decimal(t):
            unit = random_unit(self.seed, self.name, start, count)
            floats = pa.array(self.low + unit * (self.high - self.low))
            if pa.types.is_decimal(t):
                return to_decimal(floats, t)
            return floats.cast(t)
        if pa.types.is_boolean(t):
            words = random_u64(self.seed, self.name, start, count)
            return pa.array((words & np.uint64(1)).astype(bool))
        if pa.types.is_string(t) or pa.types.is_binary(t):
            return self._random_bytes(start, count)
        return self._random_time(start, count)

    def _random_bytes(self, start: int, count: int) -> pa.Array:
        size = self.length
        words = random_u64(self.seed, self.name + "#bytes", start * size, count * size)
        if pa.types.is_string(self.type):
            data = _ALPHABET[(words % np.uint64(len(_ALPHABET))).astype(np.intp)]
        else:
            data = (words & np.uint64(0xFF)).astype(np.uint8)
        offsets = np.arange(0, (count + 1) * size, size, dtype=np.int32)
        buffers = [None, pa.py_buffer(offsets.tobytes()), pa.py_buffer(data.tobytes())]
        return pa.Array.from_buffers(self.type, count, buffers)

    def _random_time(self, start: int, count: int) -> pa.Array:
        t = self.type
        if pa.types.is_time(t):
            ms = random_int(self.seed, self.name, start, count, 0, _DAY_US // 1000 - 1)
            return pa.array(ms * 1000, pa.int64()).cast(t)
        ms = random_int(self.seed, self.name, start, count, 0, self.span_us // 1000)
        micros = self.base_us - ms * 1000
        if pa.types.is_date(t):
            days = np.floor_divide(micros, _DAY_US).astype(np.int32)
            return pa.array(days, pa.int32()).cast(t)
        return pa.array(micros, pa.int64()).cast(t)


class DatagenSource:
    """A datagen reader: deterministic rows, `rows_per_second` by the clock."""

    def __init__(self, fields: list[FieldSpec], rows_per_second: float = 10.0,
                 clock: Clock = time.monotonic) -> None:
        self.schema = pa.schema([pa.field(f.name, f.type) for f in fields])
        self._fields = fields
        self._rate = rows_per_second
        self._clock = clock
        widest = max([f.length for f in fields if _category(f.type) == "text"], default=1)
        self._batch_limit = max(1, _BATCH_BYTES // max(widest, 1))
        counts = [f.count for f in fields if f.count is not None]
        self.total: int | None = min(counts) if counts else None
        """Rows until the source is exhausted (None: endless)."""
        self._rows = 0
        self._anchor_rows = 0
        self._anchor_time = clock()

    @property
    def exhausted(self) -> bool:
        """True once every row of a bounded (sequence) source has been returned."""
        return self.total is not None and self._rows >= self.total

    def next_batch(self, max_rows: int = 65536) -> pa.Table | None:
        """Return the rows due by the clock (at most `max_rows`), or None."""
        elapsed = max(self._clock() - self._anchor_time, 0.0)
        due = self._anchor_rows + math.floor(elapsed * self._rate + 1e-9)
        if self.total is not None:
            due = min(due, self.total)
        count = min(due - self._rows, max_rows, self._batch_limit)
        if count <= 0:
            return None
        arrays = [f.values(self._rows, count) for f in self._fields]
        self._rows += count
        return pa.Table.from_arrays(arrays, schema=self.schema)

    def offset(self) -> dict[str, Any]:
        """Return `{"rows": n}`: the number of rows returned so far."""
        return {"rows": self._rows}

    def seek(self, offset: dict[str, Any]) -> None:
        """Resume after `offset["rows"]` rows; pacing restarts from now."""
        rows = offset.get("rows")
        if not isinstance(rows, int) or isinstance(rows, bool) or rows < 0:
            raise ValueError(f"datagen offset must be {{'rows': n >= 0}}, got {offset!r}")
        self._rows = self._anchor_rows = rows
        self._anchor_time = self._clock()

    def close(self) -> None:
        """Nothing to release."""


def datagen_from_options(options: dict[str, str], columns: list[tuple[str, str]],
                         fmt: str | None, encode: str | None, clock: Clock) -> DatagenSource:
    """Build a DatagenSource from WITH (...) options (see the module docstring)."""
    if (fmt or "PLAIN").upper() != "PLAIN" or (encode or "JSON").upper() != "JSON":
        raise BindError(f"connector 'datagen' takes FORMAT PLAIN ENCODE JSON, not "
                        f"FORMAT {fmt} ENCODE {encode}")
    opts = Options(options, "datagen")
    schema = arrow_schema(columns)
    _check_field_names(opts, schema)
    fields = [_field_spec(opts, f) for f in schema]
    rate = opts.positive("datagen.rows.per.second", 10.0)
    opts.text("datagen.split.num")
    opts.reject_unknown()
    return DatagenSource(fields, rate, clock)


def _category(t: pa.DataType) -> str:
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        return "number"
    if pa.types.is_string(t) or pa.types.is_binary(t):
        return "text"
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        return "time"
    return "other"


def _check_field_names(opts: Options, schema: pa.Schema) -> None:
    names = {name.lower() for name in schema.names}
    for key in opts.keys():
        if not key.startswith("fields."):
            continue
        column = key[len("fields."):].rpartition(".")[0]
        if column.lower() not in names:
            raise BindError(f"option '{key}' names no column of the source ('{column}')")


def _field_spec(opts: Options, field: pa.Field) -> FieldSpec:
    prefix = f"fields.{field.name.lower()}."
    kind = opts.choice(prefix + "kind", ("sequence", "random"), "random")
    category = _category(field.type)
    allowed = _ATTRS.get((kind, category))
    if allowed is None:
        raise BindError(f"option '{prefix}kind': a column of type {field.type} cannot be "
                        f"a {kind}")
    for key in opts.keys():
        if key.startswith(prefix) and key[len(prefix):] not in allowed:
            raise BindError(f"option '{key}' does not apply to a {kind} column of type "
                            f"{field.type}")
    if kind == "sequence":
        if category == "time":
            return _time_sequence(opts, prefix, field)
        return _number_sequence(opts, prefix, field)
    return _random_spec(opts, prefix, field, category)


def _number_bounds(t: pa.DataType) -> tuple[float, float]:
    if pa.types.is_integer(t):
        info = np.iinfo(t.to_pandas_dtype())
        return int(info.min), int(info.max)
    if pa.types.is_decimal(t):
        limit = 10.0 ** (t.precision - t.scale) - 10.0 ** -t.scale
        return -limit, limit
    return -math.inf, math.inf


def _number(opts: Options, key: str, field: pa.Field, default: float) -> float:
    exact = pa.types.is_integer(field.type)
    value = opts.integer(key, int(default)) if exact else opts.number(key, default)
    assert value is not None
    low, high = _number_bounds(field.type)
    if not low <= value <= high:
        raise BindError(f"option '{key}' = {value} is out of range for {field.type}")
    return value


def _number_sequence(opts: Options, prefix: str, field: pa.Field) -> FieldSpec:
    start = _number(opts, prefix + "start", field, 0)
    type_max = _number_bounds(field.type)[1]
    end = _number(opts, prefix + "end", field, type_max if math.isfinite(type_max) else 2**62)
    if end < start:
        raise BindError(f"option '{prefix}end' ({end}) is before '{prefix}start' ({start})")
    count = int(math.floor(end - start)) + 1
    return FieldSpec(field.name, field.type, "sequence", low=start, count=count)


def _timestamp_us(opts: Options, key: str, default: str) -> int:
    text = opts.text(key, default)
    assert text is not None
    try:
        return int(pc.cast(pa.array([text.strip()]), pa.timestamp("us")).cast(pa.int64())[0])
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise BindError(f"option '{key}' must be a timestamp such as '2024-01-01 00:00:00', "
                        f"got '{text}'") from None


def _time_sequence(opts: Options, prefix: str, field: pa.Field) -> FieldSpec:
    if pa.types.is_date(field.type):
        raise BindError(f"option '{prefix}kind': a DATE column cannot be a sequence")
    start = _timestamp_us(opts, prefix + "start", _DEFAULT_BASE)
    step = round(opts.seconds(prefix + "step", 1.0) * _US)
    if step <= 0:
        raise BindError(f"option '{prefix}step' must be a positive interval")
    count = None
    if opts.text(prefix + "end") is not None:
        end = _timestamp_us(opts, prefix + "end", _DEFAULT_BASE)
        if end < start:
            raise BindError(f"option '{prefix}end' is before '{prefix}start'")
        count = (end - start) // step + 1
    return FieldSpec(field.name, field.type, "sequence", base_us=start, step_us=step,
                     count=count)


def _random_spec(opts: Options, prefix: str, field: pa.Field, category: str) -> FieldSpec:
    seed = opts.integer(prefix + "seed", 0)
    assert seed is not None
    spec = FieldSpec(field.name, field.type, "random", seed=seed)
    if category == "number":
        low = _number(opts, prefix + "min", field, 0)
        high = _number(opts, prefix + "max", field, min(32767, _number_bounds(field.type)[1]))
        if high < low:
            raise BindError(f"option '{prefix}max' ({high}) is below '{prefix}min' ({low})")
        return FieldSpec(field.name, field.type, "random", seed=seed, low=low, high=high)
    if category == "text":
        length = opts.integer(prefix + "length", 10)
        assert length is not None
        if length < 0:
            raise BindError(f"option '{prefix}length' must be >= 0, got {length}")
        return FieldSpec(field.name, field.type, "random", seed=seed, length=length)
    if category == "time":
        opts.choice(prefix + "max_past_mode", ("absolute",), "absolute")
        base = _timestamp_us(opts, prefix + "basetime", _DEFAULT_BASE)
        span = round(opts.seconds(prefix + "max_past", 86400.0) * _US)
        return FieldSpec(field.name, field.type, "random", seed=seed, base_us=base,
                         span_us=span)
    return spec
