"""Scalar expressions: bind column names to plan columns, translate to DuckDB.

Binding replaces every column reference with the plan column it denotes
(internal, unique names) and reports unknown or ambiguous columns by name.
Translation keeps PostgreSQL semantics where DuckDB differs: integer `/` is
integer division, SUM over integers returns BIGINT.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlglot import exp
from sqlglot.optimizer.annotate_types import annotate_types

from kernel_engine.errors import BindError, CatalogError

__all__ = ["Col", "Scope", "ScopeEntry", "fresh", "sql_of", "to_duck", "to_duck_query"]

_names = itertools.count()
_INT_TYPES = exp.DataType.INTEGER_TYPES


def reset_names() -> None:
    """Restart internal names, so the same DDL always builds the same state tables."""
    global _names
    _names = itertools.count()


def fresh(prefix: str = "c") -> str:
    """A new internal column name, unique within the process."""
    return f"{prefix}{next(_names)}"


@dataclass
class Col:
    """A column of a plan node: internal name, DuckDB type and a label for EXPLAIN."""

    name: str
    type: str
    label: str


@dataclass
class ScopeEntry:
    """A column visible to expressions: reachable as `qualifier.name` or `name`."""

    qualifier: str | None
    name: str
    col: Col
    hidden: bool = False


class Scope:
    """The columns an expression may reference, with the relations they come from."""

    def __init__(self, entries: Iterable[ScopeEntry] = ()) -> None:
        self.entries = list(entries)

    def __add__(self, other: Scope) -> Scope:
        return Scope(self.entries + other.entries)

    def visible(self) -> list[ScopeEntry]:
        """Entries that `SELECT *` expands to."""
        return [e for e in self.entries if not e.hidden]

    def types(self) -> dict[str, str]:
        """Internal name to DuckDB type."""
        return {e.col.name: e.col.type for e in self.entries}

    def resolve(self, name: str, qualifier: str | None) -> Col:
        """The column a reference denotes; a clear error when unknown or ambiguous."""
        if qualifier is not None:
            quals = {e.qualifier for e in self.entries}
            if qualifier not in quals:
                raise CatalogError(f'missing FROM-clause entry for table "{qualifier}"')
            found = [e for e in self.entries if e.qualifier == qualifier and e.name == name]
        else:
            found = [e for e in self.entries if e.name == name]
            internal = [e for e in self.entries if e.col.name == name]
            if not found and internal:
                found = internal[:1]
        unique = {e.col.name: e for e in found}
        if not unique:
            where = f"{qualifier}.{name}" if qualifier else name
            rels = sorted({e.qualifier for e in self.entries if e.qualifier})
            suffix = f" (in {', '.join(rels)})" if rels else ""
            raise CatalogError(f'column "{where}" does not exist{suffix}')
        if len(unique) > 1:
            raise BindError(f'column reference "{name}" is ambiguous')
        return next(iter(unique.values())).col

    def qualifiers(self) -> set[str | None]:
        """The relation names in scope."""
        return {e.qualifier for e in self.entries}


def bind(node: exp.Expr, scope: Scope) -> exp.Expr:
    """Replace column references by internal column names (a copy)."""

    def visit(n: exp.Expr) -> exp.Expr:
        if isinstance(n, exp.Column) and not isinstance(n.this, exp.Star):
            qualifier = n.table or None
            name = n.name if n.this.quoted else n.name.lower()
            col = scope.resolve(name, qualifier.lower() if qualifier else None)
            return exp.column(col.name)
        return n

    return node.copy().transform(visit)


def sql_of(node: exp.Expr) -> str:
    """PostgreSQL text of an expression (for EXPLAIN and error messages)."""
    return node.sql("postgres")


def _rewrite(node: exp.Expr) -> exp.Expr:
    if isinstance(node, exp.Div) and _is_int(node.this) and _is_int(node.expression):
        return exp.IntDiv(this=node.this, expression=node.expression)
    if isinstance(node, exp.Window) and _small_int_sum(node.this):
        return exp.Cast(this=node, to=exp.DataType.build("BIGINT"))
    if isinstance(node, (exp.Sum, exp.Filter)) and _small_int_sum(node) and not isinstance(
            node.parent, (exp.Window, exp.Cast, exp.Filter)):
        # SUM(x) FILTER (WHERE ...) is cast as a whole: the FILTER belongs to the SUM.
        return exp.Cast(this=node, to=exp.DataType.build("BIGINT"))
    return node


def _small_int_sum(node: exp.Expr) -> bool:
    """SUM (possibly with FILTER) over a 8/16/32-bit integer (BIGINT in PostgreSQL)."""
    if isinstance(node, exp.Filter):
        node = node.this
    return isinstance(node, exp.Sum) and _is_int(node.this, small=True)


def _is_int(node: exp.Expr, small: bool = False) -> bool:
    typ = node.type
    if typ is None:
        return False
    if small:
        return typ.this in (exp.DataType.Type.INT, exp.DataType.Type.SMALLINT,
                            exp.DataType.Type.TINYINT)
    return typ.this in _INT_TYPES


def _streaming(node: exp.Expr) -> exp.Expr:
    """Inside a streaming operator a failing cast yields NULL (RisingWave's behaviour)."""
    if type(node) is exp.Cast:
        return exp.TryCast(this=node.this, to=node.to)
    return node


def to_duck(nodes: Sequence[exp.Expr], types: dict[str, str]) -> list[str]:
    """Translate bound expressions over columns of the given types to DuckDB SQL."""
    select = exp.select(*[n.copy() for n in nodes]).from_("_in")
    for col in select.find_all(exp.Column):
        col.set("table", exp.to_identifier("_in"))
    annotated = annotate_types(select, schema={"_in": types or {"_none": "INT"}},
                               dialect="duckdb")
    out = []
    for item in annotated.expressions:
        rewritten = item.transform(_rewrite).transform(_streaming)
        for col in rewritten.find_all(exp.Column):
            col.set("table", None)
        out.append(rewritten.sql("duckdb"))
    return out


def to_duck_query(query: exp.Query, schema: dict[str, dict[str, str]],
                  streaming: bool = False) -> str:
    """Translate a whole PostgreSQL-semantics query to DuckDB SQL."""
    from sqlglot.optimizer.qualify import qualify

    tables: dict[str, object] = dict(schema)
    try:
        qualified = qualify(query.copy(), schema=tables, dialect="postgres",
                            validate_qualify_columns=False, quote_identifiers=False,
                            expand_stars=False)
        annotated = annotate_types(qualified, schema=tables, dialect="postgres")
        rewritten = annotated.transform(_rewrite)
        if streaming:
            rewritten = rewritten.transform(_streaming)
        return rewritten.sql("duckdb")
    except Exception:  # noqa: BLE001 - fall back to plain transpilation
        return query.transform(lambda n: n).sql("duckdb")
