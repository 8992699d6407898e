"""TUMBLE and HOP: argument checks, and their rewrite into plain SQL for DuckDB.

Windows align to the Unix epoch (plus the optional TUMBLE offset), as in
RisingWave: `window_start` is the event time floored to the window size.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import sqlglot
from sqlglot import exp

from kernel_engine.errors import BindError, UnsupportedError

__all__ = ["expand_window_functions", "interval_ratio", "interval_seconds", "window_args"]

_UNITS = {"microsecond": 1e-6, "millisecond": 1e-3, "ms": 1e-3, "second": 1.0, "s": 1.0,
          "minute": 60.0, "min": 60.0, "hour": 3600.0, "h": 3600.0, "day": 86400.0,
          "week": 604800.0}


def window_args(func: exp.Expr) -> tuple[str, str, list[exp.Expr]]:
    """(kind, source relation, [ts, size, offset] or [ts, hop, size]) of TUMBLE/HOP."""
    name = (func.name if isinstance(func, exp.Anonymous) else
            func.sql_name() if isinstance(func, exp.Func) else func.key).lower()
    args = list(func.expressions) if isinstance(func, exp.Anonymous) else list(
        func.args.values())
    if name not in ("tumble", "hop"):
        raise UnsupportedError(f"table function {name.upper()} is not supported; "
                               "use TUMBLE(t, ts, size) or HOP(t, ts, hop, size)")
    want = (3, 4) if name == "tumble" else (4,)
    if len(args) not in want:
        usage = "TUMBLE(t, ts, size [, offset])" if name == "tumble" else "HOP(t, ts, hop, size)"
        raise BindError(f"{name.upper()} takes {' or '.join(map(str, want))} arguments: {usage}")
    source = args[0]
    if not isinstance(source, (exp.Column, exp.Table)):
        raise BindError(f"the first argument of {name.upper()} must be a table name")
    return name, source.name, args[1:]


def interval_seconds(node: exp.Expr) -> float | None:
    """Seconds in a constant INTERVAL literal, or None if it is not one."""
    if isinstance(node, exp.Interval):
        value = node.this.name if node.this is not None else ""
        unit = node.args.get("unit")
        text = f"{value} {unit.name if unit is not None else ''}".strip()
    elif isinstance(node, exp.Cast) and node.to.this == exp.DataType.Type.INTERVAL:
        text = node.this.name
    else:
        return None
    total = 0.0
    parts = re.findall(r"(-?\d+(?:\.\d+)?)\s*([a-zA-Z]+)?", text)
    if not parts:
        return None
    for number, unit in parts:
        unit = (unit or "second").lower().rstrip("s") or "s"
        factor = _UNITS.get(unit, _UNITS.get(unit + "s"))
        if factor is None:
            return None
        total += float(number) * factor
    return total


def interval_ratio(hop: exp.Expr, size: exp.Expr) -> int:
    """How many HOP windows contain a row: size / hop, which must be a whole number."""
    h, s = interval_seconds(hop), interval_seconds(size)
    if h is None or s is None or h <= 0 or s <= 0:
        raise UnsupportedError("HOP needs constant positive INTERVAL hop and size")
    ratio = s / h
    if abs(ratio - round(ratio)) > 1e-9:
        raise UnsupportedError("HOP window size must be a multiple of the hop size")
    return int(round(ratio))


def expand_window_functions(query: exp.Query,
                            columns: Callable[[str], list[tuple[str, str]]]) -> exp.Query:
    """Replace TUMBLE/HOP in FROM by equivalent subqueries (for DuckDB)."""

    def visit(node: exp.Expr) -> exp.Expr:
        if not (isinstance(node, exp.Table) and isinstance(node.this, (exp.Anonymous,
                                                                        exp.Func))):
            return node
        kind, source, args = window_args(node.this)
        cols = columns(source.lower())
        types = dict(cols)
        ts = args[0].name.lower()
        tz = "TIME ZONE" in types.get(ts, "").upper() or types.get(ts, "").upper() == "TIMESTAMPTZ"
        origin = ("CAST('1970-01-01 00:00:00+00' AS TIMESTAMPTZ)" if tz
                  else "CAST('1970-01-01 00:00:00' AS TIMESTAMP)")
        listed = ", ".join(f'_s."{c}"' for c, _ in cols)
        pg = [a.sql("postgres") for a in args]
        if kind == "tumble":
            if len(pg) > 2:
                origin = f"({origin} + {pg[2]})"
            start = f"time_bucket({pg[1]}, _s.\"{ts}\", {origin})"
            sql = (f"SELECT {listed}, {start} AS window_start, {start} + {pg[1]} AS window_end "
                   f"FROM {source} AS _s")
        else:
            n = interval_ratio(args[1], args[2])
            start = f"time_bucket({pg[1]}, _s.\"{ts}\", {origin}) - _r._k * {pg[1]}"
            sql = (f"SELECT {listed}, {start} AS window_start, {start} + {pg[2]} AS window_end "
                   f"FROM {source} AS _s CROSS JOIN (SELECT unnest(range(0, {n})) AS _k) AS _r "
                   f"WHERE _s.\"{ts}\" IS NOT NULL")  # HOP drops rows without a time
        sub = sqlglot.parse_one(sql, read="postgres")
        return exp.Subquery(this=sub, alias=exp.TableAlias(
            this=exp.to_identifier(node.alias or source)))

    out = query.copy().transform(visit)
    assert isinstance(out, exp.Query)
    return out
