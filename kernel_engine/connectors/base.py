"""The source reader interface, Arrow types for DuckDB type names, and `make_reader`.

A source reader is one partition of a source, in the manner of bytewax:
`next_batch()` never blocks (None means "nothing now"), `offset()` is a
JSON-serialisable position *after* the last row returned, and `seek(offset)`
resumes so that the next row is the one after `offset`. Readers are
deterministic: after `seek(o)` they produce exactly the rows that followed
`o` the first time, which is what exactly-once replay relies on.

    >>> reader = make_reader({"connector": "datagen", "fields.id.kind": "sequence",
    ...                       "fields.id.end": "3"}, [("id", "BIGINT")], None, None,
    ...                      clock=lambda: 100.0)
    >>> reader.next_batch() is None     # no time has passed yet
    True
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import pyarrow as pa

from kernel_engine.errors import BindError, UnsupportedError

__all__ = [
    "Clock",
    "SourceReader",
    "arrow_schema",
    "arrow_type",
    "make_reader",
]

Clock = Callable[[], float]
"""A monotonic clock in seconds; readers pace themselves by it (tests pass a fake one)."""


@runtime_checkable
class SourceReader(Protocol):
    """One partition of a source: non-blocking batches and a resumable offset."""

    schema: pa.Schema

    def next_batch(self, max_rows: int = 65536) -> pa.Table | None:
        """Return up to `max_rows` new rows, or None if there are none now; never blocks."""
        ...

    def offset(self) -> dict[str, Any]:
        """Return the JSON-serialisable position after the last row returned."""
        ...

    def seek(self, offset: dict[str, Any]) -> None:
        """Resume so that the next row returned is the one after `offset`."""
        ...

    def close(self) -> None:
        """Release files, generators and connections; the reader is unusable afterwards."""
        ...


_SIMPLE: dict[str, pa.DataType] = {
    "BOOLEAN": pa.bool_(),
    "BOOL": pa.bool_(),
    "SMALLINT": pa.int16(),
    "INT2": pa.int16(),
    "INTEGER": pa.int32(),
    "INT": pa.int32(),
    "INT4": pa.int32(),
    "BIGINT": pa.int64(),
    "INT8": pa.int64(),
    "REAL": pa.float32(),
    "FLOAT4": pa.float32(),
    "FLOAT": pa.float32(),
    "DOUBLE": pa.float64(),
    "FLOAT8": pa.float64(),
    "DOUBLE PRECISION": pa.float64(),
    "VARCHAR": pa.string(),
    "TEXT": pa.string(),
    "STRING": pa.string(),
    "DATE": pa.date32(),
    "TIME": pa.time64("us"),
    "TIMESTAMP": pa.timestamp("us"),
    "TIMESTAMPTZ": pa.timestamp("us", tz="UTC"),
    "TIMESTAMP WITH TIME ZONE": pa.timestamp("us", tz="UTC"),
    "BLOB": pa.binary(),
    "BYTEA": pa.binary(),
}

_DECIMAL = re.compile(r"(?:DECIMAL|NUMERIC)\s*(?:\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\))?")


def arrow_type(duck_type: str) -> pa.DataType:
    """Return the Arrow type that carries values of a DuckDB scalar type.

    >>> arrow_type("DECIMAL(10,2)")
    Decimal128Type(decimal128(10, 2))
    """
    name = " ".join(duck_type.upper().split())
    if name in _SIMPLE:
        return _SIMPLE[name]
    match = _DECIMAL.fullmatch(name)
    if match:
        precision = int(match.group(1) or 18)
        scale = int(match.group(2) or (0 if match.group(1) else 3))
        if not 1 <= precision <= 38 or scale > precision:
            raise UnsupportedError(f"type {duck_type}: precision must be 1..38 and scale <= it")
        return pa.decimal128(precision, scale)
    raise UnsupportedError(f"type {duck_type} is not supported in a source column")


def arrow_schema(columns: list[tuple[str, str]]) -> pa.Schema:
    """Return the Arrow schema of `(name, DuckDB type)` columns."""
    return pa.schema([pa.field(name, arrow_type(duck)) for name, duck in columns])


def make_reader(
    options: dict[str, str],
    columns: list[tuple[str, str]],
    fmt: str | None,
    encode: str | None,
    clock: Clock = time.monotonic,
) -> SourceReader:
    """Build the reader for the WITH (...) options of CREATE SOURCE/TABLE.

    `options` keys are lower-cased as written (`connector`, `fields.id.kind`,
    ...); `fmt`/`encode` are the FORMAT and ENCODE words, or None.
    """
    connector = options.get("connector")
    if connector is None:
        raise BindError("a source needs the option 'connector'")
    name = connector.strip().lower()
    if name == "datagen":
        from kernel_engine.connectors.datagen import datagen_from_options

        return datagen_from_options(options, columns, fmt, encode, clock)
    if name in ("fs", "posix_fs", "s3"):
        from kernel_engine.connectors.files import files_from_options

        return files_from_options(options, columns, fmt, encode, clock)
    raise UnsupportedError(
        f"connector '{connector}' is not supported (option 'connector' takes "
        "'datagen', 'fs', 'posix_fs' or 's3')"
    )
