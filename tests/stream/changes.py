"""A readable text form for change batches, for operator tests.

A change batch is written as a header line of column names, optionally typed
with DuckDB type names (``k:INTEGER v:VARCHAR``), then one line per row that
starts with its weight sign (``+`` insert, ``-`` delete)::

    k:INTEGER v:VARCHAR
    + 1 a
    - 2 'two words'
    + 3 NULL

Values are separated by whitespace. ``NULL`` is a null; a string holding
spaces (or the text NULL, or nothing) is single-quoted, with ``''`` for a
quote inside it. Untyped columns are BIGINT, DOUBLE or VARCHAR, whichever
fits every value. `consolidated` turns a batch into sorted ``(*values,
weight)`` tuples with equal rows summed, so two batches that mean the same
change compare equal.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import pyarrow as pa

from kernel_engine._duck import Duck
from kernel_engine.state.table import quote
from kernel_engine.stream.message import WEIGHT

__all__ = ["batch", "consolidated", "render"]

_TOKEN = re.compile(r"'((?:[^']|'')*)'|(\S+)")
_SIGNS = {"+": 1, "-": -1}
_duck: Duck | None = None


def _engine() -> Duck:
    """A private DuckDB connection used for casts."""
    global _duck
    if _duck is None:
        _duck = Duck()
    return _duck


def _tokens(line: str) -> list[str | None]:
    """Split a row into values: quoted text stays text, bare NULL is None."""
    out: list[str | None] = []
    for m in _TOKEN.finditer(line):
        if m.group(1) is not None:
            out.append(m.group(1).replace("''", "'"))
        else:
            out.append(None if m.group(2) == "NULL" else m.group(2))
    return out


def _infer(values: list[str | None]) -> str:
    """The narrowest of BIGINT, DOUBLE and VARCHAR that reads every value."""
    present = [v for v in values if v is not None]
    for typ, parse in (("BIGINT", int), ("DOUBLE", float)):
        try:
            for v in present:
                parse(v)
        except ValueError:
            continue
        return typ
    return "VARCHAR"


def _header(line: str) -> list[tuple[str, str | None]]:
    """Column names and (optional) types from the header line."""
    cols: list[tuple[str, str | None]] = []
    for item in line.split():
        name, _, typ = item.partition(":")
        cols.append((name, typ or None))
    return cols


def batch(text: str) -> pa.Table:
    """Parse the text form into a change batch (columns plus int64 `_w`)."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    cols = _header(lines[0])
    weights: list[int] = []
    rows: list[list[str | None]] = []
    for line in lines[1:]:
        sign, rest = line[0], line[1:]
        if sign not in _SIGNS:
            raise ValueError(f"a row starts with + or -: {line!r}")
        values = _tokens(rest)
        if len(values) != len(cols):
            raise ValueError(f"{len(cols)} columns expected: {line!r}")
        weights.append(_SIGNS[sign])
        rows.append(values)
    raw = {f"c{i}": pa.array([r[i] for r in rows], pa.string()) for i in range(len(cols))}
    raw[WEIGHT] = pa.array(weights, pa.int64())
    items = [f"CAST(c{i} AS {typ or _infer([r[i] for r in rows])}) AS {quote(name)}"
             for i, (name, typ) in enumerate(cols)]
    return _engine().arrow(f"SELECT {', '.join([*items, WEIGHT])} FROM _raw",
                           _raw=pa.table(raw))


def _text(value: str | None) -> str:
    """One value in the text form."""
    if value is None:
        return "NULL"
    if value == "" or value == "NULL" or any(c.isspace() or c == "'" for c in value):
        return "'" + value.replace("'", "''") + "'"
    return value


def render(table: pa.Table) -> str:
    """The text form of a change batch, with DuckDB types in the header."""
    names = [c for c in table.column_names if c != WEIGHT]
    duck = _engine()
    types = duck.arrow("DESCRIBE SELECT * FROM _t", _t=table)["column_type"].to_pylist()
    header = " ".join(f"{n}:{t}" for n, t in zip(names, types, strict=False))
    casts = ", ".join(f"CAST({quote(n)} AS VARCHAR) AS {quote(n)}" for n in names)
    text = duck.arrow(f"SELECT {casts} FROM _t", _t=table) if names else pa.table({})
    lines = [header]
    for i, w in enumerate(table[WEIGHT].to_pylist()):
        values = [_text(text[n][i].as_py()) for n in names]
        lines += [" ".join(["+" if w > 0 else "-", *values])] * abs(w)
    return "\n".join(lines)


def _order(row: tuple[Any, ...]) -> tuple[tuple[bool, Any], ...]:
    """A sort key that puts NULLs last and never compares None with a value."""
    return tuple((v is None, 0 if v is None else v) for v in row)


def consolidated(table: pa.Table) -> list[tuple[Any, ...]]:
    """Rows as sorted ``(*values, weight)`` tuples, equal rows summed, zeros dropped."""
    names = [c for c in table.column_names if c != WEIGHT]
    sums: Counter[tuple[Any, ...]] = Counter()
    columns = [table[n].to_pylist() for n in names]
    for i, w in enumerate(table[WEIGHT].to_pylist()):
        sums[tuple(col[i] for col in columns)] += w
    return sorted(((*row, w) for row, w in sums.items() if w != 0), key=_order)
