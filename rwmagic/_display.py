"""What a cell shows: a DataFrame, a command tag, a plan, or one line for an error.

Command tags are PostgreSQL's (as RisingWave sends them): ``CREATE_TABLE``,
``CREATE_MATERIALIZED_VIEW``, ``INSERT 0 5``, ``DELETE 2``, ``FLUSH``,
``SET_VARIABLE``. An engine error becomes one line naming the error class,
where it is in the cell, which statement, and the cause.
"""

from __future__ import annotations

import re
from typing import Any

import kernel_engine
from kernel_engine.sql.split import Piece
from rwmagic._command import Command

__all__ = ["Plan", "command_tag", "error_line", "present", "statement_at"]

_TAGS = {"SET": "SET_VARIABLE"}
_STATEMENT_PREFIX = re.compile(r"^statement (\d+) \(")
_SYNTAX_PREFIX = re.compile(r"^syntax error(?: at line \d+, column \d+)?: ")
_QUOTED = re.compile(r'"([^"]+)"')
_EXCERPT = 40


class Plan(str):
    """A streaming plan (EXPLAIN output): shown as plain text lines, not a quoted string."""

    def __repr__(self) -> str:
        return str(self)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))


def command_tag(status: str) -> str:
    """The PostgreSQL command tag for an engine status (``SET`` is ``SET_VARIABLE``)."""
    return _TAGS.get(status, status)


def present(result: kernel_engine.Result) -> Any:
    """A Result as the value a cell shows: a DataFrame, a Plan, or a command tag (str)."""
    if result.status:
        return command_tag(result.status)
    description = result.description or []
    if [d[0] for d in description] == ["QUERY PLAN"]:
        return Plan("\n".join(str(row[0]) for row in result.fetchall()))
    return result.df()


def statement_at(pieces: list[Piece], line: int, col: int) -> int:
    """The 1-based number of the statement that holds (line, col)."""
    index = 1
    for number, piece in enumerate(pieces, start=1):
        if (piece.line, piece.col) <= (line, col):
            index = number
    return index


def error_line(err: kernel_engine.Error, command: Command, pieces: list[Piece]) -> str:
    """One line for an engine error: class, position in the cell, statement, cause."""
    name = type(err).__name__
    line = getattr(err, "line", 0)
    if isinstance(err, kernel_engine.ParseError) and line:
        index = statement_at(pieces, line, err.col)
        cause = _SYNTAX_PREFIX.sub("", err.message)
        where = command.position(line, err.col)
        return f"{name} at {where} (statement {index}): {cause}"
    number = _statement_number(err, pieces)
    if number is None:
        return f"{name}: {err.message}"
    piece = pieces[number - 1]
    excerpt = " ".join(piece.text.split())
    if len(excerpt) > _EXCERPT:
        excerpt = excerpt[:_EXCERPT - 3] + "..."
    where = command.position(*_locate(piece, err.message))
    return f"{name} at {where} (statement {number}: {excerpt}): {err.message}"


def _locate(piece: Piece, message: str) -> tuple[int, int]:
    """Where the error points: the first name the message quotes that the statement
    spells (an unknown column or relation), else the statement's start."""
    for name in _QUOTED.findall(message):
        found = re.search(r"\b" + re.escape(name) + r"\b", piece.text, re.IGNORECASE)
        if found is None:
            continue
        before = piece.text[:found.start()]
        if "\n" not in before:
            return piece.line, piece.col + found.start()
        return piece.line + before.count("\n"), found.start() - before.rfind("\n")
    return piece.line, piece.col


def _statement_number(err: kernel_engine.Error, pieces: list[Piece]) -> int | None:
    match = _STATEMENT_PREFIX.match(str(err))
    if match is not None and int(match.group(1)) <= len(pieces):
        return int(match.group(1))
    if len(pieces) == 1:
        return 1
    return None
