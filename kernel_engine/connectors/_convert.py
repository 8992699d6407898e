"""Casting decoded data to a source's Arrow schema.

Files and Python data arrive with whatever types their decoder inferred;
`conform` selects the schema's columns in order (missing ones become
nulls, extra ones are dropped) and casts each, with the conversions a SQL
user expects from text: 't'/'f' booleans, times of day, timestamps without
a zone taken as UTC for TIMESTAMPTZ, and decimals rounded to their scale.
"""

from __future__ import annotations

from typing import TypeAlias

import pyarrow as pa
import pyarrow.compute as pc

from kernel_engine.errors import ExecutionError

__all__ = ["cast_array", "conform", "engine_schema", "to_decimal"]

_TRUE = ["t", "true", "1", "yes", "y", "on"]
_FALSE = ["f", "false", "0", "no", "n", "off"]

_ZONE = r":[0-9]{2}(\.[0-9]*)?\s*([Zz]|[+-][0-9]{2}(:?[0-9]{2})?)$"
"""A time of day followed by a zone: text without one is taken as UTC."""

Array: TypeAlias = "pa.Array | pa.ChunkedArray"


def conform(table: pa.Table, schema: pa.Schema, where: str) -> pa.Table:
    """Return `table` with exactly `schema`'s columns and types; `where` names it in errors."""
    if table.schema.equals(schema):
        return table.replace_schema_metadata(schema.metadata)
    names = {name.lower(): name for name in table.column_names}
    arrays: list[Array] = []
    for field in schema:
        name = field.name if field.name in table.column_names else names.get(field.name.lower())
        if name is None:
            arrays.append(pa.nulls(table.num_rows, field.type))
            continue
        try:
            arrays.append(cast_array(table.column(name), field.type))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
            raise ExecutionError(
                f"{where}: column '{field.name}' cannot be read as {field.type}: {exc}"
            ) from None
    return pa.Table.from_arrays(arrays, schema=schema)


def engine_schema(schema: pa.Schema) -> pa.Schema:
    """Return an inferred schema in the engine's types: no metadata, no large or
    dictionary types, timestamps in microseconds."""
    return pa.schema([f.with_type(_engine_type(f.type)) for f in schema])


def _engine_type(t: pa.DataType) -> pa.DataType:
    if pa.types.is_dictionary(t):
        return _engine_type(t.value_type)
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.string()
    if pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
        return pa.binary()
    if pa.types.is_timestamp(t):
        return pa.timestamp("us", tz=None if t.tz is None else "UTC")
    if pa.types.is_time(t):
        return pa.time64("us")
    if pa.types.is_date(t):
        return pa.date32()
    return t


def cast_array(array: Array, target: pa.DataType) -> Array:
    """Cast `array` to `target`, with SQL's text conversions where Arrow has none."""
    source = array.type
    if source == target:
        return array
    if pa.types.is_null(source):
        return pa.nulls(len(array), target)
    if pa.types.is_dictionary(source):
        return cast_array(array.cast(source.value_type), target)
    if pa.types.is_string(source) or pa.types.is_large_string(source):
        return _cast_text(array, target)
    if pa.types.is_decimal(target) and (pa.types.is_floating(source)
                                        or pa.types.is_decimal(source)):
        return to_decimal(array, target)
    if pa.types.is_temporal(source) and pa.types.is_temporal(target):
        return pc.cast(array, target, safe=False)   # nanoseconds truncate to microseconds
    return pc.cast(array, target)


def to_decimal(array: Array, target: pa.DataType) -> Array:
    """Round numbers half away from zero to `target`'s scale (as SQL does) and cast."""
    rounded = pc.round(array, ndigits=target.scale, round_mode="half_towards_infinity")
    return pc.cast(rounded, target, safe=False)


def _cast_text(array: Array, target: pa.DataType) -> Array:
    text = pc.utf8_trim_whitespace(array)
    if pa.types.is_boolean(target):
        return _text_to_bool(text)
    if pa.types.is_time(target):
        stamped = pc.binary_join_element_wise("1970-01-01 ", text, "")
        return pc.cast(pc.cast(stamped, pa.timestamp("us")), target)
    if pa.types.is_timestamp(target) and target.tz is not None:
        zoned = pc.match_substring_regex(text, _ZONE)
        return pc.cast(pc.if_else(zoned, text, pc.binary_join_element_wise(text, "+00:00", "")),
                       target)
    if pa.types.is_decimal(target):
        try:
            return pc.cast(text, target)
        except pa.ArrowInvalid:
            wide = pc.cast(text, pa.decimal128(38, min(38 - target.precision + target.scale, 30)))
            return to_decimal(wide, target)
    if pa.types.is_binary(target):
        return pc.cast(array, target)
    return pc.cast(text, target)


def _text_to_bool(text: Array) -> Array:
    lowered = pc.utf8_lower(text)
    is_true = pc.is_in(lowered, value_set=pa.array(_TRUE))
    is_false = pc.is_in(lowered, value_set=pa.array(_FALSE))
    bad = pc.and_(pc.invert(pc.or_(is_true, is_false)), pc.is_valid(lowered))
    if pc.any(bad).as_py():
        first = pc.filter(text, bad)[0].as_py()
        raise pa.ArrowInvalid(f"'{first}' is not a boolean")
    return pc.if_else(is_true, True, pc.if_else(is_false, False, pa.scalar(None, pa.bool_())))
