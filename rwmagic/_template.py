"""``{{name}}`` in a cell: Python values from the user namespace as SQL literals.

    >>> substitute("SELECT * FROM t WHERE city = {{city}} AND n > {{n}}",
    ...            {"city": "O'Hare", "n": 3}).sql
    "SELECT * FROM t WHERE city = 'O''Hare' AND n > 3"

A value always becomes a literal, never SQL text: strings are quoted (quotes
doubled), numbers written as they are, ``None`` is NULL, dates and times are
typed literals, and a list or tuple becomes a comma-separated list of
literals (for ``IN ({{ids}})``). Inside a quoted string the value's text goes
in with its quotes doubled (``LIKE '%{{word}}%'``). A name may be dotted
(``{{cfg.limit}}``).
The substitution remembers where it changed the text, so an error position
found in the substituted SQL maps back to the cell.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

__all__ = ["PLACEHOLDER", "Substituted", "TemplateError", "lookup", "sql_literal", "substitute"]

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)\s*\}\}")


_STRING = re.compile(r"'(?:[^']|'')*'")


class TemplateError(ValueError):
    """A ``{{name}}`` that names no variable, or a value with no SQL literal form."""


@dataclass
class Substituted:
    """SQL after substitution, with the edits made (line, column, growth) to map positions."""

    sql: str
    edits: list[tuple[int, int, int]] = field(default_factory=list)

    def original_column(self, line: int, col: int) -> int:
        """The 1-based column in the text before substitution of (line, col) after it."""
        shift = sum(grow for at_line, at_col, grow in self.edits
                    if at_line == line and at_col < col)
        return max(col - shift, 1)


def substitute(sql: str, namespace: Mapping[str, Any]) -> Substituted:
    """Replace every ``{{name}}`` with the literal of ``namespace[name]``."""
    out: list[str] = []
    edits: list[tuple[int, int, int]] = []
    last = 0
    growth_on_line = 0
    line_of_last = 1
    strings = [m.span() for m in _STRING.finditer(sql)]
    for m in PLACEHOLDER.finditer(sql):
        value = lookup(m.group(1), namespace)
        if any(start < m.start() < end for start, end in strings):
            literal = str(value).replace("'", "''")  # inside '...': the text, quotes doubled
        else:
            literal = sql_literal(value, m.group(1))
        line = sql.count("\n", 0, m.start()) + 1
        if line != line_of_last:
            growth_on_line, line_of_last = 0, line
        col = m.start() - (sql.rfind("\n", 0, m.start()) + 1) + 1 + growth_on_line
        grow = len(literal) - len(m.group(0))
        edits.append((line, col, grow))
        growth_on_line += grow
        out.append(sql[last:m.start()])
        out.append(literal)
        last = m.end()
    out.append(sql[last:])
    return Substituted("".join(out), edits)


def lookup(name: str, namespace: Mapping[str, Any]) -> Any:
    """The value of a (dotted) name in the namespace."""
    head, *rest = name.split(".")
    if head not in namespace:
        raise TemplateError(f"{{{{{name}}}}}: no Python variable named {head!r}")
    value = namespace[head]
    for attr in rest:
        try:
            value = getattr(value, attr)
        except AttributeError:
            raise TemplateError(f"{{{{{name}}}}}: {type(value).__name__} has no attribute "
                                f"{attr!r}") from None
    return value


def sql_literal(value: Any, name: str = "value") -> str:
    """The SQL literal for a Python value (raises TemplateError when there is none)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | Decimal):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return f"'{value}'::DOUBLE PRECISION"
        return repr(value)
    if isinstance(value, str):
        return _quote(value)
    return _typed_literal(value, name)


def _typed_literal(value: Any, name: str) -> str:
    if isinstance(value, dt.datetime):
        kind = "TIMESTAMPTZ" if value.tzinfo is not None else "TIMESTAMP"
        return f"{kind} {_quote(value.isoformat(sep=' '))}"
    if isinstance(value, dt.date):
        return f"DATE {_quote(value.isoformat())}"
    if isinstance(value, dt.time):
        return f"TIME {_quote(value.isoformat())}"
    if isinstance(value, dt.timedelta):
        return f"INTERVAL {_quote(f'{value.total_seconds()!r} seconds')}"
    if isinstance(value, list | tuple):
        if not value:
            raise TemplateError(f"{{{{{name}}}}} is an empty {type(value).__name__}: "
                                "SQL has no empty list literal")
        return ", ".join(sql_literal(v, name) for v in value)
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return sql_literal(value.item(), name)
    raise TemplateError(f"{{{{{name}}}}} is a {type(value).__name__}, which has no SQL "
                        "literal form; pass a str, number, bool, None, date/time or a list")


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
