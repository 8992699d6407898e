"""Statements as values: what the parser hands to the engine."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlglot import exp

__all__ = [
    "AlterSink", "AlterSystem", "CreateMaterializedView", "CreateSink", "CreateTable", "Delete",
    "Describe", "Drop", "DropSink", "Explain", "Flush", "Recover", "Insert", "Query",
    "SetVariable", "Show", "Statement", "Update",
]


@dataclass
class Statement:
    """Base of every statement; `sql` is the statement's own text."""

    sql: str = field(default="", kw_only=True)


@dataclass
class CreateTable(Statement):
    """CREATE TABLE name (columns) [PRIMARY KEY] [APPEND ONLY] [ON CONFLICT ...]."""

    name: str
    columns: list[tuple[str, str]]
    primary_key: list[str]
    append_only: bool = False
    on_conflict: str = "overwrite"
    if_not_exists: bool = False
    options: dict[str, str] = field(default_factory=dict)
    source: bool = False
    format: str | None = None
    encode: str | None = None


@dataclass
class CreateMaterializedView(Statement):
    """CREATE MATERIALIZED VIEW [IF NOT EXISTS] name AS SELECT ..."""

    name: str
    query: exp.Query
    if_not_exists: bool = False


@dataclass
class Drop(Statement):
    """DROP TABLE | MATERIALIZED VIEW [IF EXISTS] names [CASCADE]."""

    kind: str
    names: list[str]
    if_exists: bool = False
    cascade: bool = False


@dataclass
class Insert(Statement):
    """INSERT INTO table [(columns)] VALUES ... | SELECT ..."""

    table: str
    columns: list[str] | None
    query: exp.Query | None = None
    values_sql: str | None = None


@dataclass
class Update(Statement):
    """UPDATE table SET col = expr, ... [WHERE cond]."""

    table: str
    assignments: list[tuple[str, exp.Expression]]
    where: exp.Expression | None


@dataclass
class Delete(Statement):
    """DELETE FROM table [WHERE cond]."""

    table: str
    where: exp.Expression | None


@dataclass
class Flush(Statement):
    """FLUSH: wait until all earlier DML is visible."""


@dataclass
class Recover(Statement):
    """RECOVER: rebuild the engine from its newest complete checkpoint."""


@dataclass
class SetVariable(Statement):
    """SET name TO value (session variables such as RW_IMPLICIT_FLUSH)."""

    name: str
    value: str


@dataclass
class AlterSystem(Statement):
    """ALTER SYSTEM SET name = value (system parameters)."""

    name: str
    value: str


@dataclass
class Show(Statement):
    """SHOW TABLES | MATERIALIZED VIEWS | PARAMETERS | CREATE ..."""

    what: str
    name: str | None = None


@dataclass
class Describe(Statement):
    """DESCRIBE name."""

    name: str


@dataclass
class Explain(Statement):
    """EXPLAIN CREATE MATERIALIZED VIEW ... (or EXPLAIN SELECT)."""

    inner: Statement


@dataclass
class Query(Statement):
    """An ad-hoc SELECT over committed state."""

    query: exp.Query


@dataclass
class CreateSink(Statement):
    """CREATE SINK [IF NOT EXISTS] name FROM relation | AS SELECT ... WITH (...)
    [FORMAT PLAIN ENCODE PARQUET | JSON | CSV [(...)]].

    `sql` has secrets (passwords) masked; `raw` is the statement as written.
    """

    name: str
    source: str | None
    query: exp.Query | None
    options: dict[str, str] = field(repr=False)
    format: str | None = None
    encode: str | None = None
    format_options: dict[str, str] = field(default_factory=dict, repr=False)
    if_not_exists: bool = False
    head: str = ""  # the text before WITH (...): CREATE SINK ... FROM x | AS SELECT ...
    raw: str = field(default="", repr=False)


@dataclass
class DropSink(Statement):
    """DROP SINK [IF EXISTS] name."""

    name: str
    if_exists: bool = False


@dataclass
class AlterSink(Statement):
    """ALTER SINK name CONNECTOR WITH (k = v, ...) | ALTER SINK name RESUME.

    Both restart a sink that stopped on an error; the first changes its options too.
    """

    name: str
    options: dict[str, str] = field(default_factory=dict, repr=False)
    raw: str = field(default="", repr=False)
