"""Translate an ad-hoc SELECT to DuckDB SQL over the catalog's relations."""

from __future__ import annotations

from sqlglot import exp

from kernel_engine.errors import CatalogError
from kernel_engine.sql.expr import to_duck_query
from kernel_engine.sql.plan import Catalog
from kernel_engine.sql.windows import expand_window_functions

__all__ = ["translate_query"]


def translate_query(query: exp.Query, catalog: Catalog) -> str:
    """DuckDB SQL for a PostgreSQL-semantics query; unknown relations are named."""
    ctes = {c.alias.lower() for c in query.find_all(exp.CTE)}
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
    return to_duck_query(expanded, catalog.schema())
