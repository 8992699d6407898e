"""Build operators from a streaming plan and wire them into the graph."""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa

from kernel_engine._duck import Duck
from kernel_engine.sql import nodes as n
from kernel_engine.state.table import quote
from kernel_engine.stream import operators as ops
from kernel_engine.stream.operator import Operator

__all__ = ["BuiltView", "build_view"]


@dataclass
class BuiltView:
    """The operators of one materialized view and where they attach upstream."""

    materialize: ops.Materialize
    operators: list[Operator] = field(default_factory=list)
    attach: list[tuple[str, Operator, int]] = field(default_factory=list)


def arrow_schema(duck: Duck, cols: list[tuple[str, str]]) -> pa.Schema:
    """The Arrow schema DuckDB produces for columns of the given types."""
    items = ", ".join(f"CAST(NULL AS {t}) AS {quote(c)}" for c, t in cols)
    return duck.arrow(f"SELECT {items} LIMIT 0").schema


class _Builder:
    def __init__(self, duck: Duck, name: str) -> None:
        self.duck = duck
        self.name = name
        self.count = 0
        self.view: BuiltView | None = None
        self.operators: list[Operator] = []
        self.attach: list[tuple[str, Operator, int]] = []

    def ident(self, kind: str) -> str:
        self.count += 1
        return f"{self.name}_{kind}{self.count}"

    def add(self, op: Operator, inputs: list[Operator]) -> Operator:
        for port, child in enumerate(inputs):
            child.outputs.append((op, port))
        self.operators.append(op)
        return op

    def build(self, node: n.Node) -> Operator:
        kids = [self.build(c) for c in node.inputs]
        d = self.duck
        if isinstance(node, n.Scan):
            op: Operator = ops.Scan(d, self.ident("scan"), node.upstream,
                                    [c.name for c in node.cols])
            self.attach.append((node.relation, op, 0))
        elif isinstance(node, n.Project):
            op = ops.Project(d, self.ident("project"), node.exprs)
        elif isinstance(node, n.Filter):
            op = ops.Filter(d, self.ident("filter"), node.cond)
        elif isinstance(node, n.HopExpand):
            assert node.input is not None
            op = ops.HopExpand(d, self.ident("hop"), [c.name for c in node.input.cols], node.ts,
                               node.hop, node.size, node.windows, node.origin, node.start,
                               node.end)
        elif isinstance(node, n.Agg):
            assert node.input is not None
            types = {c.name: c.type for c in node.input.cols}
            op = ops.HashAgg(d, self.ident("agg"), node.group, types, node.calls)
        elif isinstance(node, n.Join):
            assert node.left is not None and node.right is not None
            left = ([(c.name, c.type) for c in node.left.cols], node.left.key, node.left_keys)
            right = ([(c.name, c.type) for c in node.right.cols], node.right.key,
                     node.right_keys)
            op = ops.HashJoin(d, self.ident("join"), node.kind, left, right, node.cond)
        elif isinstance(node, n.Union):
            schema = arrow_schema(d, [(c.name, c.type) for c in node.cols])
            data = [c.name for c in node.cols][: len(node.data_cols[0])]
            op = ops.Union(d, self.ident("union"), data, schema, node.branch_col,
                           node.data_cols, node.key_cols)
        elif isinstance(node, n.TopN):
            op = ops.TopN(d, self.ident("topn"), [(c.name, c.type) for c in node.cols],
                          node.key, node.order, node.limit, node.offset)
        elif isinstance(node, n.Recompute):
            op = ops.Recompute(d, self.ident("recompute"), len(node.deps), node.sql,
                               [(c.name, c.type) for c in node.cols], node.key[-1])
            for port, dep in enumerate(node.deps):
                self.attach.append((dep, op, port))
        elif isinstance(node, n.Materialize):
            assert node.input is not None
            types = {c.name: c.type for c in node.input.cols}
            out_name = {internal: out for internal, out, _ in node.columns}
            op = ops.Materialize(d, node.name, [c for c, _, _ in node.columns],
                                 [(out, types[c]) for c, out, _ in node.columns],
                                 [out_name[k] for k in node.key])
        else:
            raise TypeError(f"no operator for {type(node).__name__}")
        return self.add(op, kids)


def build_view(duck: Duck, plan: n.Materialize) -> BuiltView:
    """Create the operators (and their state tables) of a materialized view."""
    builder = _Builder(duck, plan.name)
    try:
        top = builder.build(plan)
    except Exception:
        for op in builder.operators:
            op.drop()
        raise
    assert isinstance(top, ops.Materialize)
    return BuiltView(top, builder.operators, builder.attach)
