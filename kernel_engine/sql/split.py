"""Split SQL text into statements, keeping each statement's starting line."""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Piece", "split_statements"]

_TOKENS = re.compile(
    r"'(?:[^']|'')*'?|\"(?:[^\"]|\"\")*\"?|--[^\n]*|/\*.*?(?:\*/|$)|\$\$.*?(?:\$\$|$)|;",
    re.S,
)


@dataclass(frozen=True)
class Piece:
    """One statement's text and where it starts in the submitted SQL (1-based line)."""

    text: str
    line: int
    col: int


def split_statements(sql: str) -> list[Piece]:
    """Split on semicolons outside quotes, comments and dollar-quoted strings."""
    pieces: list[Piece] = []
    start = 0
    for match in _TOKENS.finditer(sql):
        if match.group() == ";":
            _add(pieces, sql, start, match.start())
            start = match.end()
    _add(pieces, sql, start, len(sql))
    return pieces


def _add(pieces: list[Piece], sql: str, start: int, end: int) -> None:
    text = sql[start:end]
    stripped = _strip_comments(text).strip()
    if not stripped:
        return
    lead = len(text) - len(text.lstrip())
    offset = start + lead
    line = sql.count("\n", 0, offset) + 1
    col = offset - (sql.rfind("\n", 0, offset) + 1) + 1
    pieces.append(Piece(text.strip(), line, col))


def _strip_comments(text: str) -> str:
    return re.sub(r"--[^\n]*|/\*.*?\*/", "", text, flags=re.S)
