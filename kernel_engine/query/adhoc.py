"""Translate an ad-hoc SELECT to DuckDB SQL over the catalog's relations.

`typed_string_literals` finds string literals compared with (or assigned to)
a typed column, such as `x = 'abc'` for an INTEGER `x`: PostgreSQL converts
them while binding, so the engine checks them before running a statement
(a failing cast on the engine's epoch transaction would abort it).
"""

from __future__ import annotations

from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.optimizer.annotate_types import annotate_types
from sqlglot.optimizer.qualify import qualify

from kernel_engine.errors import CatalogError
from kernel_engine.sql.expr import to_duck_query
from kernel_engine.sql.plan import Catalog
from kernel_engine.sql.windows import expand_window_functions

__all__ = ["translate_query", "typed_string_literals"]


def translate_query(query: exp.Query, catalog: Catalog,
                    extra: dict[str, dict[str, str]] | None = None) -> str:
    """DuckDB SQL for a PostgreSQL-semantics query; unknown relations are named.

    `extra` names further relations (such as time-travel snapshots) and their columns.
    """
    extra = extra or {}
    ctes = {c.alias.lower() for c in query.find_all(exp.CTE)} | set(extra)
    for table in query.find_all(exp.Table):
        name = table.name.lower()
        if not name or name in ctes or isinstance(table.this, (exp.Anonymous, exp.Func)):
            continue
        if table.args.get("db") is None and catalog.relation(name) is None:
            raise CatalogError(f'table or materialized view "{name}" does not exist')

    def columns(name: str) -> list[tuple[str, str]]:
        info = catalog.relation(name)
        if info is None:
            raise CatalogError(f'table or materialized view "{name}" does not exist')
        return [(c, t) for c, t, hidden in info.columns if not hidden]

    expanded = expand_window_functions(query, columns)
    return to_duck_query(expanded, {**catalog.schema(), **extra})


_T = exp.DataType.Type
_CHECKED = {*exp.DataType.NUMERIC_TYPES, *exp.DataType.TEMPORAL_TYPES, _T.BOOLEAN, _T.INTERVAL}
_COMPARISONS = (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE)


def typed_string_literals(query: exp.Query, schema: dict[str, dict[str, str]]
                          ) -> list[tuple[str, str, str]]:
    """(text, DuckDB type, column) for each string literal compared with a typed column.

    Only numeric, boolean and date/time columns count; a query sqlglot cannot
    qualify yields nothing (the check is a courtesy, DuckDB still decides).
    """
    if not any(lit.is_string for lit in query.find_all(exp.Literal)):
        return []
    tables: dict[str, object] = dict(schema)
    try:
        qualified = qualify(query.copy(), schema=tables, dialect="postgres",
                            validate_qualify_columns=False, quote_identifiers=False,
                            expand_stars=False)
        annotated = annotate_types(qualified, schema=tables, dialect="postgres")
    except (SqlglotError, KeyError, ValueError, TypeError, AttributeError):
        return []
    found = []
    for node in annotated.find_all(*_COMPARISONS, exp.In):
        sides = [node.this, *node.expressions] if isinstance(node, exp.In) else \
            [node.this, node.expression]
        cols = [s for s in sides if isinstance(s, exp.Column)]
        typ = cols[0].type if len(cols) == 1 else None
        if typ is None or typ.this not in _CHECKED:
            continue
        for side in sides:
            if isinstance(side, exp.Literal) and side.is_string:
                found.append((side.this, typ.sql("duckdb"), cols[0].name))
    return found
