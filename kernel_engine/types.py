"""SQL types: RisingWave names, their DuckDB storage types and display names."""

from __future__ import annotations

from sqlglot import exp
from sqlglot.expressions.datatypes import DType

from kernel_engine.errors import UnsupportedError

__all__ = ["display_name", "duck_type", "is_integer", "is_numeric"]

_T = exp.DataType.Type

_SCALAR: dict[DType, str] = {
    _T.TINYINT: "SMALLINT",
    _T.SMALLINT: "SMALLINT",
    _T.INT: "INTEGER",
    _T.BIGINT: "BIGINT",
    _T.FLOAT: "REAL",
    _T.DOUBLE: "DOUBLE",
    _T.BOOLEAN: "BOOLEAN",
    _T.VARCHAR: "VARCHAR",
    _T.TEXT: "VARCHAR",
    _T.CHAR: "VARCHAR",
    _T.NCHAR: "VARCHAR",
    _T.NVARCHAR: "VARCHAR",
    _T.DATE: "DATE",
    _T.TIME: "TIME",
    _T.TIMESTAMP: "TIMESTAMP",
    _T.TIMESTAMPNTZ: "TIMESTAMP",
    _T.DATETIME: "TIMESTAMP",
    _T.TIMESTAMPTZ: "TIMESTAMPTZ",
    _T.INTERVAL: "INTERVAL",
    _T.VARBINARY: "BLOB",
    _T.BINARY: "BLOB",
    _T.JSON: "JSON",
    _T.JSONB: "JSON",
    _T.SERIAL: "INTEGER",
    _T.BIGSERIAL: "BIGINT",
    _T.UUID: "UUID",
}

_DISPLAY: dict[str, str] = {
    "SMALLINT": "smallint",
    "INTEGER": "integer",
    "BIGINT": "bigint",
    "REAL": "real",
    "FLOAT": "real",
    "DOUBLE": "double precision",
    "BOOLEAN": "boolean",
    "VARCHAR": "character varying",
    "DATE": "date",
    "TIME": "time without time zone",
    "TIMESTAMP": "timestamp without time zone",
    "TIMESTAMP WITH TIME ZONE": "timestamp with time zone",
    "TIMESTAMPTZ": "timestamp with time zone",
    "INTERVAL": "interval",
    "BLOB": "bytea",
    "JSON": "jsonb",
    "UUID": "uuid",
    "HUGEINT": "numeric",
}

_INTEGERS = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
             "UINTEGER", "UBIGINT"}


def duck_type(dt: exp.DataType) -> str:
    """Map a parsed RisingWave column type to the DuckDB type that stores it."""
    if dt.this == _T.ARRAY or dt.args.get("nested") and dt.this == _T.ARRAY:
        inner = dt.expressions[0] if dt.expressions else None
        if not isinstance(inner, exp.DataType):
            raise UnsupportedError(f"array type {dt.sql('postgres')} needs an element type")
        return duck_type(inner) + "[]"
    if dt.this in (_T.DECIMAL, _T.BIGDECIMAL):
        params = [p.this.this if isinstance(p.this, exp.Literal) else p.name
                  for p in dt.expressions]
        if not params:
            return "DECIMAL(38,10)"
        precision = int(params[0])
        scale = int(params[1]) if len(params) > 1 else 0
        if precision > 38:
            raise UnsupportedError(f"NUMERIC precision {precision} is above the maximum 38")
        return f"DECIMAL({precision},{scale})"
    if dt.this in _SCALAR:
        return _SCALAR[dt.this]
    raise UnsupportedError(
        f"column type {dt.sql('postgres')} is not supported; use one of SMALLINT, INT, BIGINT, "
        "REAL, DOUBLE PRECISION, NUMERIC, BOOLEAN, VARCHAR, DATE, TIME, TIMESTAMP, "
        "TIMESTAMPTZ, INTERVAL, BYTEA, JSONB or an array of these"
    )


def display_name(duck: str) -> str:
    """The PostgreSQL-style name of a DuckDB type, as DESCRIBE shows it."""
    upper = duck.upper()
    if upper.endswith("[]"):
        return display_name(upper[:-2]) + "[]"
    if upper.startswith("DECIMAL"):
        return "numeric"
    return _DISPLAY.get(upper, duck.lower())


def is_integer(duck: str) -> bool:
    """True for DuckDB integer types."""
    return duck.upper() in _INTEGERS


def is_numeric(duck: str) -> bool:
    """True for integer, floating point and decimal DuckDB types."""
    upper = duck.upper()
    return upper in _INTEGERS or upper in ("REAL", "FLOAT", "DOUBLE") or upper.startswith("DECIMAL")
