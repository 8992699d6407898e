"""Arrow types for DuckDB type names and the connector dispatch of make_reader."""

from __future__ import annotations

import pyarrow as pa
import pytest

from kernel_engine.connectors import arrow_schema, arrow_type, make_reader
from kernel_engine.connectors._options import parse_seconds
from kernel_engine.errors import BindError, UnsupportedError


@pytest.mark.parametrize(("duck", "arrow"), [
    ("BOOLEAN", pa.bool_()), ("SMALLINT", pa.int16()), ("INTEGER", pa.int32()),
    ("BIGINT", pa.int64()), ("REAL", pa.float32()), ("DOUBLE", pa.float64()),
    ("DECIMAL(10,2)", pa.decimal128(10, 2)), ("decimal( 38 , 0 )", pa.decimal128(38, 0)),
    ("DECIMAL(5)", pa.decimal128(5, 0)), ("DECIMAL", pa.decimal128(18, 3)),
    ("VARCHAR", pa.string()), ("DATE", pa.date32()), ("TIME", pa.time64("us")),
    ("TIMESTAMP", pa.timestamp("us")), ("TIMESTAMPTZ", pa.timestamp("us", tz="UTC")),
    ("timestamp with time zone", pa.timestamp("us", tz="UTC")), ("BLOB", pa.binary()),
])
def test_arrow_type(duck: str, arrow: pa.DataType) -> None:
    assert arrow_type(duck) == arrow


@pytest.mark.parametrize("duck", ["INTERVAL", "JSON", "UUID", "BIGINT[]", "DECIMAL(40,2)",
                                  "DECIMAL(4,5)", "STRUCT(a INT)"])
def test_unsupported_types(duck: str) -> None:
    with pytest.raises(UnsupportedError, match=duck.split("(")[0].split("[")[0]):
        arrow_type(duck)


def test_arrow_schema() -> None:
    assert arrow_schema([("id", "BIGINT"), ("n", "VARCHAR")]) == pa.schema(
        [("id", pa.int64()), ("n", pa.string())])


def test_make_reader_needs_a_known_connector() -> None:
    with pytest.raises(BindError, match="'connector'"):
        make_reader({}, [("id", "BIGINT")], None, None)
    with pytest.raises(UnsupportedError, match="'kafka'.*'connector'"):
        make_reader({"connector": "kafka"}, [("id", "BIGINT")], None, None)


@pytest.mark.parametrize(("text", "seconds"), [
    ("30", 30), ("1.5s", 1.5), ("2h 37min", 9420), ("1 day", 86400), ("500ms", 0.5),
    ("'10 minutes'", 600),
])
def test_parse_seconds(text: str, seconds: float) -> None:
    assert parse_seconds(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "5 fortnights", "1h x"])
def test_parse_seconds_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_seconds(text)
