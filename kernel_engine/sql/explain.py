"""EXPLAIN: the streaming plan as an indented operator tree."""

from __future__ import annotations

from kernel_engine.sql import nodes as n

__all__ = ["explain"]


def _labels(node: n.Node, names: list[str]) -> str:
    return ", ".join(node.label(x) if x in {c.name for c in node.cols} else x for x in names)


def _line(node: n.Node, view: str, ids: dict[int, str]) -> str:
    key = _labels(node, node.key) if node.key else ""
    if isinstance(node, n.Materialize):
        cols = ", ".join(out for _, out, hidden in node.columns if not hidden)
        keys = ", ".join(out for c, out, _ in node.columns if c in node.key)
        return (f"StreamMaterialize {{ columns: [{cols}], stream_key: [{keys}], "
                f"state table: __mv_{node.name} }}")
    if isinstance(node, n.Scan):
        cols = ", ".join(c.label for c in node.cols)
        return (f"StreamTableScan {{ table: {node.relation}, columns: [{cols}], "
                f"stream_key: [{key}] }}")
    if isinstance(node, n.Project):
        return f"StreamProject {{ exprs: [{', '.join(node.labels)}] }}"
    if isinstance(node, n.Filter):
        return f"StreamFilter {{ predicate: {node.label_text} }}"
    if isinstance(node, n.HopExpand):
        return f"StreamHopWindow {{ hop: {node.hop}, size: {node.size}, windows per row: " \
               f"{node.windows} }}"
    if isinstance(node, n.Agg):
        assert node.input is not None
        group = _labels(node, node.group)
        aggs = ", ".join(c.label for c in node.calls)
        name = "StreamHashAgg" if node.group else "StreamSimpleAgg"
        if not node.calls:
            return f"StreamHashAgg {{ distinct on: [{group}], state table: {ids[id(node)]} }}"
        return (f"{name} {{ group_key: [{group}], aggs: [{aggs}], "
                f"state table: {ids[id(node)]} }}")
    if isinstance(node, n.Join):
        assert node.left is not None and node.right is not None
        pairs = ", ".join(f"{node.left.label(a)} = {node.right.label(b)}"
                          for a, b in zip(node.left_keys, node.right_keys, strict=True))
        cond = f", condition: {node.cond_label}" if node.cond_label else ""
        return (f"StreamHashJoin {{ type: {node.kind.capitalize()}, keys: [{pairs}]{cond}, "
                f"state tables: [{ids[id(node)]}_l, {ids[id(node)]}_r], "
                f"stream_key: [{key}] }}")
    if isinstance(node, n.Union):
        return f"StreamUnion {{ all: true, inputs: {len(node.branches)} }}"
    if isinstance(node, n.TopN):
        order = ", ".join(f"{node.label(c)} {'DESC' if d else 'ASC'}" for c, d, _ in node.order)
        return (f"StreamTopN {{ order: [{order}], limit: {node.limit}, offset: {node.offset}, "
                f"state table: {ids[id(node)]} }}")
    if isinstance(node, n.Recompute):
        return (f"StreamRecompute {{ NOT INCREMENTAL: recomputed each epoch because of "
                f"{node.reason}; inputs: [{', '.join(node.deps)}] }}")
    return type(node).__name__


def explain(plan: n.Materialize) -> list[str]:
    """The plan's lines, the root first, children indented under └─ / ├─."""
    ids: dict[int, str] = {}
    counter = [0]

    def number(node: n.Node) -> None:
        for child in node.inputs:
            number(child)
        counter[0] += 1
        ids[id(node)] = f"__state_{plan.name}_{counter[0]}"

    number(plan)
    lines: list[str] = []

    def walk(node: n.Node, prefix: str, last: bool, root: bool) -> None:
        text = _line(node, plan.name, ids)
        if root:
            lines.append(text)
            child_prefix = ""
        else:
            lines.append(f"{prefix}{'└─' if last else '├─'}{text}")
            child_prefix = prefix + ("  " if last else "│ ")
        kids = node.inputs
        for i, child in enumerate(kids):
            walk(child, child_prefix, i == len(kids) - 1, False)

    walk(plan, "", True, True)
    return lines
