"""Fast path for INSERT ... VALUES lists made only of literals.

A 1,000-row VALUES list is split into columns with compiled regular
expressions and cast with Arrow, which is far faster than a general SQL
parser. Anything unusual returns None and takes the general path.
"""

from __future__ import annotations

import re

import pyarrow as pa

__all__ = ["literal_columns"]

_VALUE = r"(?:'(?:[^']|'')*'|[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|NULL|TRUE|FALSE)"
_TOKEN = re.compile(_VALUE, re.I)


def _row_pattern(width: int) -> re.Pattern[str]:
    row = r"\(\s*" + r"\s*,\s*".join([_VALUE] * width) + r"\s*\)"
    return re.compile(r"\s*" + row + r"(?:\s*,\s*" + row + r")*\s*", re.I)


_PATTERNS: dict[int, re.Pattern[str]] = {}


def literal_columns(values: str, width: int) -> list[pa.Array] | None:
    """Columns of a literal VALUES list with `width` values per row, or None."""
    pattern = _PATTERNS.get(width)
    if pattern is None:
        pattern = _PATTERNS[width] = _row_pattern(width)
    if pattern.fullmatch(values) is None:
        return None
    tokens = _TOKEN.findall(values)
    if len(tokens) % width:
        return None
    return [_column(tokens[i::width]) for i in range(width)]


def _column(tokens: list[str]) -> pa.Array:
    kinds = {t[0] for t in tokens}
    if kinds <= {"'"}:
        return pa.array([t[1:-1].replace("''", "'") for t in tokens], pa.string())
    upper = [t.upper() for t in tokens]
    if all(u in ("NULL",) for u in upper):
        return pa.nulls(len(tokens))
    if all(u in ("TRUE", "FALSE", "NULL") for u in upper):
        return pa.array([None if u == "NULL" else u == "TRUE" for u in upper], pa.bool_())
    if any(k == "'" for k in kinds) or any(u in ("TRUE", "FALSE") for u in upper):
        return pa.array([None if u == "NULL" else (t[1:-1].replace("''", "'") if t[0] == "'"
                         else t) for t, u in zip(tokens, upper, strict=True)], pa.string())
    cleaned = [None if u == "NULL" else t for t, u in zip(tokens, upper, strict=True)]
    text = pa.array(cleaned, pa.string())
    if any("." in t or "e" in t or "E" in t for t in tokens if t.upper() != "NULL"):
        return text.cast(pa.float64()) if any("e" in t.lower() for t in tokens) else \
            text.cast(pa.decimal128(38, max(_scale(t) for t in tokens)))
    return text.cast(pa.int64())


def _scale(token: str) -> int:
    return len(token.split(".")[1]) if "." in token else 0
