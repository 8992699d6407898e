"""The planner: a bound SELECT becomes a tree of streaming plan nodes.

Stages: resolve FROM (tables, views, TUMBLE/HOP, subqueries, joins) into a
scope; bind expressions; split aggregation into pre-projection, aggregate and
post-projection; add DISTINCT, Top-N, UNION ALL. A query (or a subquery in
FROM) with a construct that has no incremental operator becomes a Recompute
node, which EXPLAIN marks as not incremental.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from sqlglot import exp

from kernel_engine.errors import BindError, CatalogError, Error, UnsupportedError
from kernel_engine.sql import nodes as n
from kernel_engine.sql.expr import (
    Col,
    Scope,
    ScopeEntry,
    bind,
    fresh,
    reset_names,
    sql_of,
    to_duck,
)
from kernel_engine.sql.windows import expand_window_functions, interval_ratio, window_args

__all__ = ["NotIncremental", "Planner", "RelationInfo"]

_AGGS = (exp.Count, exp.Sum, exp.Avg, exp.Min, exp.Max)


class NotIncremental(Exception):  # noqa: N818 - a signal, not an error
    """Raised inside the planner when a construct has no incremental operator."""


@dataclass
class RelationInfo:
    """What the planner needs to know of a table or view."""

    name: str
    columns: list[tuple[str, str, bool]]
    key: list[str]


class Catalog(Protocol):
    """The catalog as the planner sees it."""

    def relation(self, name: str) -> RelationInfo | None:
        """A table or materialized view by name."""

    def schema(self) -> dict[str, dict[str, str]]:
        """Every relation's visible columns and types (for translating whole queries)."""


Describe = Callable[[str], list[tuple[str, str]]]


def _from_clause(sel: exp.Select) -> exp.From | None:
    return sel.args.get("from_") or sel.args.get("from")


def _conjuncts(node: exp.Expr | None) -> list[exp.Expr]:
    if node is None:
        return []
    if isinstance(node, exp.And):
        return _conjuncts(node.this) + _conjuncts(node.expression)
    if isinstance(node, exp.Paren):
        return _conjuncts(node.this)
    return [node]


def _and(parts: list[exp.Expr]) -> exp.Expr | None:
    if not parts:
        return None
    out = parts[0]
    for p in parts[1:]:
        out = exp.And(this=out, expression=p)
    return out


def _output_name(item: exp.Expr, index: int) -> str:
    if isinstance(item, exp.Alias):
        return item.alias if item.args["alias"].quoted else item.alias.lower()
    if isinstance(item, exp.Column):
        return item.name if item.this.quoted else item.name.lower()
    if isinstance(item, exp.Cast):
        return _output_name(item.this, index)
    if isinstance(item, exp.Filter):
        return _output_name(item.this, index)
    if isinstance(item, exp.Func):
        name = item.sql_name().lower() if not isinstance(item, exp.Anonymous) else item.name
        return name.lower()
    return "?column?"


def _literal_int(node: exp.Expr | None, what: str) -> int | None:
    if node is None:
        return None
    value = node.args.get("expression") if isinstance(node, (exp.Limit, exp.Offset)) else node
    if isinstance(value, exp.Literal) and not value.is_string:
        return int(value.this)
    raise UnsupportedError(f"{what} must be an integer constant")


class Planner:
    """Turns queries into streaming plans against a catalog."""

    def __init__(self, catalog: Catalog, describe: Describe) -> None:
        self.catalog = catalog
        self.describe = describe
        self.deps: set[str] = set()

    # ---- entry points -------------------------------------------------------------------

    def plan_view(self, name: str, query: exp.Query) -> n.Materialize:
        """The plan of CREATE MATERIALIZED VIEW name AS query."""
        self.deps = set()
        reset_names()
        node, scope = self.plan_query(query, {}, top=True)
        visible = scope.visible()
        names = [e.name for e in visible]
        dupes = {x for x in names if names.count(x) > 1}
        if dupes:
            raise BindError(f"column name {sorted(dupes)[0]!r} appears more than once in "
                            f"materialized view {name}; give it an alias")
        columns: list[tuple[str, str, bool]] = [(e.col.name, e.name, False) for e in visible]
        shown = {e.col.name for e in visible}
        used = set(names)
        for i, k in enumerate(node.key):
            if k in shown:
                continue
            label = node.label(k)
            out = label if label.startswith("_") and label not in used else f"_k{i}"
            used.add(out)
            columns.append((k, out, True))
            shown.add(k)
        cols = [Col(c, node.col(c).type, out) for c, out, _ in columns]
        return n.Materialize(cols, list(node.key), input=node, name=name, columns=columns)

    def plan_query(self, query: exp.Query, ctes: dict[str, exp.Query],
                   top: bool = False) -> tuple[n.Node, Scope]:
        """Plan a query; falls back to recomputation when it is not incremental."""
        with_ = query.args.get("with_") or query.args.get("with")
        if with_ is not None:
            ctes = dict(ctes)
            for cte in with_.expressions:
                ctes[cte.alias.lower()] = cte.this
        try:
            if isinstance(query, exp.Union) and not isinstance(query, (exp.Except, exp.Intersect)):
                return self._plan_union(query, ctes, top)
            if isinstance(query, exp.Select):
                return self._plan_select(query, ctes, top)
            raise NotIncremental(f"{type(query).__name__.upper()} has no incremental operator")
        except NotIncremental as why:
            return self._recompute(query, ctes, str(why))

    # ---- fallback -------------------------------------------------------------------------

    def _recompute(self, query: exp.Query, ctes: dict[str, exp.Query],
                   reason: str) -> tuple[n.Node, Scope]:
        from kernel_engine.sql.expr import to_duck_query

        q = query.copy()
        used = {t.name.lower() for t in q.find_all(exp.Table)}
        if ctes and not (q.args.get("with_") or q.args.get("with")):
            for cte_name, cte_query in reversed(list(ctes.items())):
                if cte_name in used:
                    q = q.with_(cte_name, as_=cte_query.copy())
        cte_names = set(ctes) | {c.alias.lower() for c in q.find_all(exp.CTE)}
        deps = []
        for t in q.find_all(exp.Table):
            name = t.name.lower()
            if name and name not in cte_names and name not in deps:
                if self.catalog.relation(name) is None:
                    raise CatalogError(f'table or materialized view "{name}" does not exist')
                deps.append(name)
        self.deps.update(deps)
        q = expand_window_functions(q, self.describe_relation)
        sql = to_duck_query(q, self.catalog.schema(), streaming=True)
        described = self.describe(f"SELECT * FROM ({sql}) LIMIT 0")
        cols = [Col(fresh(), typ, name) for name, typ in described]
        dup = Col(fresh("dup"), "BIGINT", "_dup")
        entries = [ScopeEntry(None, c.label, c) for c in cols]
        entries.append(ScopeEntry(None, "_dup", dup, hidden=True))
        node = n.Recompute(cols + [dup], [c.name for c in cols] + [dup.name], sql=sql,
                           deps=deps, reason=reason, names=[c.label for c in cols])
        return node, Scope(entries)

    def describe_relation(self, name: str) -> list[tuple[str, str]]:
        """Visible columns of a relation (for the window-function rewrite)."""
        info = self.catalog.relation(name)
        if info is None:
            raise CatalogError(f'table or materialized view "{name}" does not exist')
        return [(c, t) for c, t, hidden in info.columns if not hidden]

    # ---- SELECT ---------------------------------------------------------------------------

    def _plan_select(self, sel: exp.Select, ctes: dict[str, exp.Query],
                     top: bool) -> tuple[n.Node, Scope]:
        for bad, why in ((exp.Window, "window functions (OVER)"),
                         (exp.Subquery, "subqueries outside FROM"),
                         (exp.Exists, "EXISTS"), (exp.Lateral, "LATERAL")):
            for found in sel.find_all(bad):
                if bad is exp.Subquery and self._in_from(found, sel):
                    continue
                raise NotIncremental(why)
        if sel.args.get("group") and any(
            isinstance(g, (exp.Rollup, exp.Cube, exp.GroupingSets))
            for g in sel.args["group"].args.get("rollup") or sel.args["group"].expressions
        ):
            raise NotIncremental("GROUPING SETS / ROLLUP / CUBE")
        for key in ("rollup", "cube", "grouping_sets"):
            if sel.args.get("group") is not None and sel.args["group"].args.get(key):
                raise NotIncremental("GROUPING SETS / ROLLUP / CUBE")
        where = _conjuncts(sel.args["where"].this) if sel.args.get("where") else []
        node, scope, where = self._plan_from(sel, ctes, where)
        if where:
            node = self._filter(node, scope, _and(where))
        items = self._expand_stars(sel, scope)
        names = [_output_name(item, i) for i, item in enumerate(items)]
        bound = [bind(item.unalias() if isinstance(item, exp.Alias) else item, scope)
                 for item in items]
        having = bind(sel.args["having"].this, scope) if sel.args.get("having") else None
        group = sel.args.get("group")
        has_agg = any(self._has_agg(b) for b in bound) or having is not None
        if group is not None or has_agg:
            group_exprs = self._group_exprs(group, items, scope, names)
            node, bound, having = self._plan_agg(node, scope, group_exprs, bound, having)
            if having is not None:
                node = n.Filter(node.cols, node.key, input=node,
                                cond=to_duck([having], _types(node))[0],
                                label_text=_label_expr(having, node.cols))
        node, out_scope = self._project(node, bound, names)
        if sel.args.get("distinct"):
            node, out_scope = self._distinct(node, out_scope)
        node = self._top_n(sel, node, out_scope, top)
        return node, out_scope

    @staticmethod
    def _in_from(sub: exp.Expr, sel: exp.Select) -> bool:
        parent = sub.parent
        while parent is not None and parent is not sel:
            if isinstance(parent, (exp.From, exp.Join)):
                return True
            if isinstance(parent, (exp.Where, exp.Having)) or (
                    isinstance(parent, exp.Select) and parent is not sel):
                return False
            parent = parent.parent
        return False

    def _expand_stars(self, sel: exp.Select, scope: Scope) -> list[exp.Expr]:
        items: list[exp.Expr] = []
        for item in sel.expressions:
            star_table = None
            if isinstance(item, exp.Star):
                star = True
            elif isinstance(item, exp.Column) and isinstance(item.this, exp.Star):
                star, star_table = True, item.table.lower()
            else:
                star = False
            if not star:
                items.append(item)
                continue
            entries = [e for e in scope.visible()
                       if star_table is None or e.qualifier == star_table]
            if star_table is not None and not entries:
                raise CatalogError(f'missing FROM-clause entry for table "{star_table}"')
            for e in entries:
                items.append(exp.alias_(exp.column(e.col.name), e.name, quoted=True))
        return items

    # ---- FROM -------------------------------------------------------------------------------

    def _plan_from(self, sel: exp.Select, ctes: dict[str, exp.Query],
                   where: list[exp.Expr]
                   ) -> tuple[n.Node, Scope, list[exp.Expr]]:
        from_ = _from_clause(sel)
        if from_ is None:
            raise NotIncremental("SELECT without FROM")
        node, scope = self._plan_table_expr(from_.this, ctes)
        for join in sel.args.get("joins") or []:
            right, rscope = self._plan_table_expr(join.this, ctes)
            node, scope, where = self._join(node, scope, right, rscope, join, where)
        return node, scope, where

    def _plan_table_expr(self, t: exp.Expr, ctes: dict[str, exp.Query]
                         ) -> tuple[n.Node, Scope]:
        if isinstance(t, exp.Table) and isinstance(t.this, (exp.Anonymous, exp.Func)):
            return self._window_tvf(t, ctes)
        if isinstance(t, exp.Table):
            name = t.name if t.this.quoted else t.name.lower()
            alias = (t.alias or name).lower()
            if name in ctes:
                node, scope = self.plan_query(ctes[name], ctes)
                return node, self._requalify(scope, alias)
            return self._scan(name, alias)
        if isinstance(t, exp.Subquery):
            node, scope = self.plan_query(t.this, ctes)
            return node, self._requalify(scope, (t.alias or "").lower() or None)
        raise NotIncremental(f"FROM item {sql_of(t)[:40]}")

    @staticmethod
    def _requalify(scope: Scope, alias: str | None) -> Scope:
        return Scope(ScopeEntry(alias, e.name, e.col, e.hidden) for e in scope.entries)

    def _scan(self, name: str, alias: str) -> tuple[n.Node, Scope]:
        info = self.catalog.relation(name)
        if info is None:
            raise CatalogError(f'table or materialized view "{name}" does not exist')
        self.deps.add(name)
        cols = [Col(fresh(), typ, col) for col, typ, _ in info.columns]
        by_name = {c.label: c.name for c in cols}
        node = n.Scan(cols, [by_name[k] for k in info.key], relation=name,
                      upstream=[c for c, _, _ in info.columns])
        entries = [ScopeEntry(alias, c.label, c, hidden) for c, (_, _, hidden)
                   in zip(cols, info.columns, strict=True)]
        return node, Scope(entries)

    def _window_tvf(self, t: exp.Table, ctes: dict[str, exp.Query]) -> tuple[n.Node, Scope]:
        func = t.this
        kind, source, args = window_args(func)
        src_name = source.lower()
        alias = (t.alias or src_name).lower()
        node, scope = self._plan_table_expr(exp.to_table(src_name), ctes)
        scope = self._requalify(scope, alias)
        ts = bind(args[0], scope)
        types = _types(node)
        ts_sql = to_duck([ts], types)[0]
        ts_type = self.describe(_typed_select([ts_sql], node))[0][1]
        interval_sql = [to_duck([a], {})[0] for a in args[1:]]
        origin = ("TIMESTAMPTZ '1970-01-01 00:00:00+00'" if "TIME ZONE" in ts_type.upper()
                  or ts_type.upper() == "TIMESTAMPTZ" else "TIMESTAMP '1970-01-01 00:00:00'")
        start, end = Col(fresh(), ts_type, "window_start"), Col(fresh(), ts_type, "window_end")
        if kind == "tumble":
            size = interval_sql[0]
            if len(interval_sql) > 1:
                origin = f"({origin} + {interval_sql[1]})"
            bucket = f"time_bucket({size}, {ts_sql}, {origin})"
            exprs = [(c.name, c.name) for c in node.cols]
            exprs += [(start.name, bucket), (end.name, f"{bucket} + {size}")]
            out: n.Node = n.Project(node.cols + [start, end], list(node.key), input=node,
                                    exprs=exprs,
                            labels=[c.label for c in node.cols] + [
                                f"TUMBLE_START({sql_of(args[0])}, {sql_of(args[1])})",
                                f"TUMBLE_END({sql_of(args[0])}, {sql_of(args[1])})"])
        else:
            hop, size = interval_sql[0], interval_sql[1]
            windows = interval_ratio(args[1], args[2])
            out = n.HopExpand(node.cols + [start, end], list(node.key) + [start.name],
                              input=node, ts=ts_sql, hop=hop, size=size, windows=windows,
                              origin=origin, start=start.name, end=end.name)
        scope = scope + Scope([ScopeEntry(alias, "window_start", start),
                               ScopeEntry(alias, "window_end", end)])
        return out, scope

    # ---- joins --------------------------------------------------------------------------

    def _join(self, left: n.Node, lscope: Scope, right: n.Node, rscope: Scope, join: exp.Join,
              where: list[exp.Expr]
              ) -> tuple[n.Node, Scope, list[exp.Expr]]:
        side = (join.side or "").lower()
        kind = side if side in ("left", "right", "full") else "inner"
        if (join.kind or "").upper() in ("SEMI", "ANTI"):
            raise NotIncremental(f"{join.kind} JOIN")
        scope = lscope + rscope
        conds = _conjuncts(join.args.get("on"))
        using = join.args.get("using")
        if using:
            for ident in using:
                name = ident.name.lower()
                conds.append(exp.EQ(this=exp.column(lscope.resolve(name, None).name),
                                    expression=exp.column(rscope.resolve(name, None).name)))
            rscope = Scope(ScopeEntry(e.qualifier, e.name, e.col, e.hidden) for e in rscope.entries
                           if e.name not in {i.name.lower() for i in using})
            scope = lscope + rscope
        if not conds and kind == "inner":
            keep = []
            rquals = rscope.qualifiers()
            for c in where:
                try:
                    bound = bind(c, scope)
                except Error:
                    keep.append(c)
                    continue
                refs = {col.name for col in bound.find_all(exp.Column)}
                if refs & {e.col.name for e in rscope.entries} and not any(
                        q not in rquals and q is not None and q not in lscope.qualifiers()
                        for q in [x.table for x in c.find_all(exp.Column) if x.table]):
                    conds.append(c)
                else:
                    keep.append(c)
            where = keep
        lnames = {c.name for c in left.cols}
        rnames = {c.name for c in right.cols}
        lkeys: list[str] = []
        rkeys: list[str] = []
        rest: list[exp.Expr] = []
        for c in conds:
            b = bind(c, scope)
            if isinstance(b, exp.EQ) and isinstance(b.this, exp.Column) and isinstance(
                    b.expression, exp.Column):
                a, z = b.this.name, b.expression.name
                if a in lnames and z in rnames:
                    lkeys.append(a)
                    rkeys.append(z)
                    continue
                if z in lnames and a in rnames:
                    lkeys.append(z)
                    rkeys.append(a)
                    continue
            rest.append(b)
        if kind in ("right", "full"):
            left = _with_presence(left)
        if kind in ("left", "full"):
            right = _with_presence(right)
        cols = left.cols + right.cols
        cond_expr = _and(rest)
        cond = to_duck([cond_expr], {c.name: c.type for c in cols})[0] if cond_expr else None
        node = n.Join(cols, list(left.key) + list(right.key), left=left, right=right, kind=kind,
                      left_keys=lkeys, right_keys=rkeys, cond=cond,
                      cond_label=_label_expr(cond_expr, cols) if cond_expr else "")
        return node, scope, where

    # ---- filter, project, aggregate ---------------------------------------------------------

    def _filter(self, node: n.Node, scope: Scope, cond: exp.Expr | None) -> n.Node:
        if cond is None:
            return node
        bound = bind(cond, scope)
        sql = to_duck([bound], _types(node))[0]
        typ = self.describe(_typed_select([sql], node))[0][1]
        if typ.upper() not in ("BOOLEAN", '"NULL"', "NULL"):
            raise BindError(f"argument of WHERE must be type boolean, not type {typ.lower()}")
        return n.Filter(node.cols, node.key, input=node, cond=sql,
                        label_text=_label_expr(bound, node.cols))

    def _project(self, node: n.Node, exprs: list[exp.Expr],
                 names: list[str]) -> tuple[n.Node, Scope]:
        sqls = to_duck(exprs, _types(node))
        types = [t for _, t in self.describe(_typed_select(sqls, node))] if sqls else []
        out_cols: list[Col] = []
        entries: list[ScopeEntry] = []
        pairs: list[tuple[str, str]] = []
        for sql, typ, name, e in zip(sqls, types, names, exprs, strict=True):
            col = Col(fresh(), typ, name)
            out_cols.append(col)
            pairs.append((col.name, sql))
            entries.append(ScopeEntry(None, name, col))
            del e
        key: list[str] = []
        direct = {sql: c.name for (c, (_, sql)) in zip(out_cols, pairs, strict=True)}
        for k in node.key:
            quoted = _quoted(k)
            if quoted in direct or k in direct:
                key.append(direct.get(quoted, direct.get(k, "")))
                continue
            kc = node.col(k)
            col = Col(fresh(), kc.type, kc.label if kc.label.startswith("_") else "_" + kc.label)
            out_cols.append(col)
            pairs.append((col.name, quoted))
            entries.append(ScopeEntry(None, col.label, col, hidden=True))
            key.append(col.name)
        labels = [_label_sql(sql, node.cols) for _, sql in pairs]
        proj = n.Project(out_cols, key, input=node, exprs=pairs, labels=labels)
        return proj, Scope(entries)

    def _has_agg(self, node: exp.Expr) -> bool:
        return any(isinstance(x, exp.AggFunc) for x in node.find_all(exp.AggFunc))

    def _group_exprs(self, group: exp.Group | None, items: list[exp.Expr], scope: Scope,
                     names: list[str]) -> list[exp.Expr]:
        out: list[exp.Expr] = []
        for g in group.expressions if group is not None else []:
            if isinstance(g, exp.Literal) and not g.is_string:
                idx = int(g.this) - 1
                if not 0 <= idx < len(items):
                    raise BindError(f"GROUP BY position {idx + 1} is not in select list")
                item = items[idx]
                out.append(bind(item.unalias() if isinstance(item, exp.Alias) else item, scope))
                continue
            try:
                out.append(bind(g, scope))
            except CatalogError:
                if isinstance(g, exp.Column) and g.name.lower() in names:
                    item = items[names.index(g.name.lower())]
                    out.append(bind(item.unalias() if isinstance(item, exp.Alias) else item,
                                    scope))
                else:
                    raise
        return out

    def _plan_agg(self, node: n.Node, scope: Scope, group_exprs: list[exp.Expr],
                  items: list[exp.Expr], having: exp.Expr | None
                  ) -> tuple[n.Node, list[exp.Expr], exp.Expr | None]:
        pre: list[tuple[str, exp.Expr]] = []
        group_cols: list[str] = []
        group_map: dict[str, str] = {}
        for g in group_exprs:
            text = g.sql()
            if text in group_map:
                continue
            name = fresh("g")
            pre.append((name, g))
            group_cols.append(name)
            group_map[text] = name
        calls: list[tuple[str, str | None, bool, str | None, str, str]] = []
        seen: dict[str, str] = {}

        def replace(x: exp.Expr) -> exp.Expr:
            filt = None
            agg = x
            if isinstance(x, exp.Filter) and isinstance(x.this, exp.AggFunc):
                agg, filt = x.this, x.expression.this
            if not isinstance(agg, exp.AggFunc):
                return x
            if not isinstance(agg, _AGGS):
                raise NotIncremental(f"aggregate {agg.sql_name().lower()}")
            text = x.sql()
            if text in seen:
                return exp.column(seen[text])
            arg_node = agg.this
            distinct = isinstance(arg_node, exp.Distinct)
            if distinct:
                if len(arg_node.expressions) != 1:
                    raise UnsupportedError("DISTINCT aggregates take one argument")
                arg_node = arg_node.expressions[0]
            func = type(agg).__name__.lower()
            arg = None
            if isinstance(agg, exp.Count) and (arg_node is None or isinstance(arg_node, exp.Star)):
                func = "count_star"
            else:
                if arg_node is None:
                    raise BindError(f"{func} needs an argument")
                if any(isinstance(a, exp.AggFunc) for a in arg_node.find_all(exp.AggFunc)):
                    raise BindError("aggregate function calls cannot be nested")
                arg = fresh("a")
                pre.append((arg, arg_node))
            fcol = None
            if filt is not None:
                fcol = fresh("f")
                pre.append((fcol, filt))
            out = fresh("agg")
            seen[text] = out
            calls.append((func, arg, distinct, fcol, out, _label_expr(x, node.cols)))
            return exp.column(out)

        items = [i.transform(replace) for i in items]
        having = having.transform(replace) if having is not None else None
        pre_sqls = to_duck([e for _, e in pre], _types(node))
        pre_types = [t for _, t in self.describe(_typed_select(pre_sqls, node))] if pre else []
        pre_cols = [Col(name, typ, _label_expr(e, node.cols))
                    for (name, e), typ in zip(pre, pre_types, strict=True)]
        pre_node = n.Project(pre_cols, [], input=node,
                             exprs=[(name, sql) for (name, _), sql in zip(pre, pre_sqls,
                                                                          strict=True)],
                             labels=[c.label for c in pre_cols])
        types = {c.name: c.type for c in pre_cols}
        agg_calls = [n.AggCall(f, a, d, fc, o, _agg_type(f, types.get(a or "", "")), label)
                     for f, a, d, fc, o, label in calls]
        out_cols = [c for c in pre_cols if c.name in group_cols] + [
            Col(c.out, c.out_type, c.label) for c in agg_calls]
        agg = n.Agg(out_cols, list(group_cols), input=pre_node, group=group_cols,
                    calls=agg_calls)
        allowed = set(group_cols) | {c.out for c in agg_calls}

        def regroup(x: exp.Expr) -> exp.Expr:
            if not isinstance(x, exp.Column) and x.sql() in group_map:
                return exp.column(group_map[x.sql()])
            if isinstance(x, exp.Column) and x.sql() in group_map:
                return exp.column(group_map[x.sql()])
            return x

        def check(x: exp.Expr) -> exp.Expr:
            x = x.transform(regroup)
            for c in x.find_all(exp.Column):
                if c.name not in allowed:
                    label = _label_expr(c, node.cols)
                    raise BindError(f'column "{label}" must appear in the GROUP BY clause or be '
                                    "used in an aggregate function")
            return x

        items = [check(i) for i in items]
        having = check(having) if having is not None else None
        return agg, items, having

    def _distinct(self, node: n.Node, scope: Scope) -> tuple[n.Node, Scope]:
        visible = [e for e in scope.entries if not e.hidden]
        group = [e.col.name for e in visible]
        cols = [e.col for e in visible]
        agg = n.Agg(cols, group, input=node, group=group, calls=[])
        return agg, Scope(visible)

    def _top_n(self, sel: exp.Select, node: n.Node, scope: Scope, top: bool) -> n.Node:
        limit = _literal_int(sel.args.get("limit"), "LIMIT")
        offset = _literal_int(sel.args.get("offset"), "OFFSET") or 0
        order = sel.args.get("order")
        if limit is None and not offset:
            return node
        if order is None:
            raise UnsupportedError("LIMIT in a materialized view needs ORDER BY (Top-N); "
                                   "add ORDER BY ... LIMIT n")
        keys: list[tuple[str, bool, bool]] = []
        for o in order.expressions:
            target = o.this
            col = None
            if isinstance(target, exp.Literal) and not target.is_string:
                col = scope.visible()[int(target.this) - 1].col.name
            elif isinstance(target, exp.Column) and not target.table:
                col = scope.resolve(target.name.lower(), None).name
            if col is None:
                raise UnsupportedError("ORDER BY in a Top-N view must name output columns; "
                                       "add the expression to the select list")
            desc = bool(o.args.get("desc"))
            nulls_first = o.args.get("nulls_first")
            keys.append((col, desc, bool(nulls_first) if nulls_first is not None else desc))
        return n.TopN(node.cols, list(node.key), input=node, order=keys, limit=limit,
                      offset=offset)

    # ---- UNION ALL ------------------------------------------------------------------------

    def _plan_union(self, q: exp.Union, ctes: dict[str, exp.Query],
                    top: bool) -> tuple[n.Node, Scope]:
        branches = self._union_branches(q)
        planned = [self.plan_query(b, ctes) for b in branches]
        widths = {len(s.visible()) for _, s in planned}
        if len(widths) != 1:
            raise BindError("each UNION query must have the same number of columns")
        first = planned[0][1].visible()
        common: list[str] = []
        for i in range(len(first)):
            parts = " UNION ALL ".join(f"SELECT CAST(NULL AS {s.visible()[i].col.type})"
                                       for _, s in planned)
            common.append(self.describe(parts)[0][1])
        out_cols = [Col(fresh(), t, e.name) for t, e in zip(common, first, strict=True)]
        branch_col = Col(fresh("b"), "INTEGER", "_branch")
        data_cols: list[list[str]] = []
        key_cols: list[list[tuple[str, str]]] = []
        extra: list[Col] = []
        inputs: list[n.Node] = []
        for node, scope in planned:
            vis = scope.visible()
            casts: list[exp.Expr] = [exp.Cast(this=exp.column(e.col.name), to=exp.DataType.build(t,
                              dialect="duckdb")) if e.col.type != t else exp.column(e.col.name)
                     for e, t in zip(vis, common, strict=True)]
            proj, pscope = self._project(node, casts, [e.name for e in vis])
            inputs.append(proj)
            data_cols.append([e.col.name for e in pscope.visible()])
            pairs = []
            for k in proj.key:
                kc = Col(fresh(), proj.col(k).type, "_" + proj.col(k).label.lstrip("_"))
                extra.append(kc)
                pairs.append((k, kc.name))
            key_cols.append(pairs)
        cols = out_cols + [branch_col] + extra
        key = [branch_col.name] + [c.name for c in extra]
        node = n.Union(cols, key, branches=inputs, branch_col=branch_col.name,
                       data_cols=data_cols, key_cols=key_cols)
        entries = [ScopeEntry(None, c.label, c) for c in out_cols]
        entries += [ScopeEntry(None, c.label, c, hidden=True) for c in [branch_col] + extra]
        scope = Scope(entries)
        result: n.Node = node
        if q.args.get("distinct"):
            result, scope = self._distinct(node, scope)
        return result, scope

    def _union_branches(self, q: exp.Expr) -> list[exp.Query]:
        if isinstance(q, exp.Union) and not q.args.get("distinct") and not isinstance(
                q, (exp.Except, exp.Intersect)):
            return self._union_branches(q.this) + self._union_branches(q.expression)
        if isinstance(q, exp.Union) and q.args.get("distinct"):
            raise NotIncremental("UNION (distinct) inside UNION ALL")
        assert isinstance(q, exp.Query)
        return [q]


def _with_presence(node: n.Node) -> n.Node:
    """A side an outer join pads with NULLs, plus a hidden TRUE column in its stream key.

    A padded row has NULL there, so it cannot share its stream key with a real row
    whose key columns are NULL (an aggregate's NULL group, or a global aggregate).
    """
    present = Col(fresh("p"), "BOOLEAN", "_present")
    exprs = [(c.name, _quoted(c.name)) for c in node.cols]
    exprs.append((present.name, "CAST(TRUE AS BOOLEAN)"))
    return n.Project(node.cols + [present], [*node.key, present.name], input=node,
                     exprs=exprs, labels=[c.label for c in node.cols] + ["true"])


def _types(node: n.Node) -> dict[str, str]:
    return {c.name: c.type for c in node.cols}


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _typed_select(sqls: Iterable[str], node: n.Node) -> str:
    """A query typing expressions over an empty relation shaped like the node's output."""
    cols = ", ".join(f"CAST(NULL AS {c.type}) AS {_quoted(c.name)}" for c in node.cols)
    inner = f"SELECT {cols or '1 AS _none'}"
    return f"SELECT {', '.join(sqls)} FROM ({inner}) AS _in LIMIT 0"


def _agg_type(func: str, arg_type: str) -> str:
    upper = arg_type.upper()
    if func in ("count", "count_star"):
        return "BIGINT"
    if func in ("min", "max"):
        return arg_type
    if func == "avg":
        return "INTERVAL" if upper == "INTERVAL" else "DOUBLE"
    if upper in ("TINYINT", "SMALLINT", "INTEGER"):
        return "BIGINT"
    if upper in ("BIGINT", "HUGEINT"):
        return "DECIMAL(38,0)"
    if upper.startswith("DECIMAL"):
        scale = upper.split(",")[1].rstrip(")").strip() if "," in upper else "0"
        return f"DECIMAL(38,{scale})"
    if upper in ("REAL", "FLOAT", "DOUBLE", "INTERVAL"):
        return "DOUBLE" if upper != "INTERVAL" else "INTERVAL"
    raise BindError(f"function {func}({arg_type.lower()}) does not exist")


def _label_expr(node: exp.Expr, cols: list[Col]) -> str:
    labels = {c.name: c.label for c in cols}

    def visit(x: exp.Expr) -> exp.Expr:
        if isinstance(x, exp.Column) and x.name in labels:
            return exp.column(labels[x.name])
        return x

    return node.copy().transform(visit).sql("postgres")


def _label_sql(sql: str, cols: list[Col]) -> str:
    out = sql
    for c in sorted(cols, key=lambda c: -len(c.name)):
        out = out.replace(_quoted(c.name), c.label).replace(c.name, c.label)
    return out
