"""One error tree for everything the engine reports to users.

Every error names what went wrong and where: the statement (by number and a
short excerpt), a line/column for parse errors, and the object for catalog
and type errors.
"""

from __future__ import annotations

__all__ = [
    "BindError",
    "CatalogError",
    "Error",
    "ExecutionError",
    "ParseError",
    "UnsupportedError",
]


class Error(Exception):
    """Base class of every error the engine raises on purpose."""

    def __init__(self, message: str, *, statement: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.statement = statement

    def with_statement(self, index: int, sql: str) -> Error:
        """Return the same error, its message prefixed with the statement it came from."""
        excerpt = " ".join(sql.split())
        if len(excerpt) > 60:
            excerpt = excerpt[:57] + "..."
        if self.statement is None:
            self.statement = sql
            self.args = (f"statement {index} ({excerpt}): {self.message}",)
        return self

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else self.message


class ParseError(Error):
    """The SQL text could not be parsed; carries line and column (1-based)."""

    def __init__(self, message: str, line: int = 0, col: int = 0) -> None:
        where = f" at line {line}, column {col}" if line else ""
        super().__init__(f"syntax error{where}: {message}")
        self.detail = message
        self.line = line
        self.col = col


class CatalogError(Error):
    """An unknown or duplicate table, view, source or column."""


class BindError(Error):
    """A type error or an invalid reference found while binding a statement."""


class UnsupportedError(Error):
    """A construct the engine does not support, with a suggestion where one exists."""


class ExecutionError(Error):
    """A statement failed while it ran (for example a bad cast of a value)."""
