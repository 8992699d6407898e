"""The streaming plan: a small closed set of plan nodes with a deterministic text form.

Every node lists its output columns (internal names, DuckDB types, labels)
and its stream key, the columns that identify a row in its output.
Expressions are DuckDB SQL over the input's internal column names.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kernel_engine.sql.expr import Col

__all__ = [
    "Agg", "AggCall", "Filter", "HopExpand", "Join", "Materialize", "Node", "Project",
    "Recompute", "Scan", "TopN", "Union",
]


@dataclass
class Node:
    """A plan node."""

    cols: list[Col]
    key: list[str]

    @property
    def inputs(self) -> list[Node]:
        """Input nodes, in port order."""
        return []

    def col(self, name: str) -> Col:
        """The output column with this internal name."""
        for c in self.cols:
            if c.name == name:
                return c
        raise KeyError(name)

    def label(self, name: str) -> str:
        """The readable label of an output column."""
        return self.col(name).label


@dataclass
class Scan(Node):
    """Reads the change stream of a table or materialized view (after a backfill)."""

    relation: str = ""
    upstream: list[str] = field(default_factory=list)


@dataclass
class Project(Node):
    """Computes expressions per row; `exprs` pairs an output column with DuckDB SQL."""

    input: Node | None = None
    exprs: list[tuple[str, str]] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)

    @property
    def inputs(self) -> list[Node]:
        return [self.input] if self.input else []


@dataclass
class Filter(Node):
    """Keeps rows whose condition is true."""

    input: Node | None = None
    cond: str = ""
    label_text: str = ""

    @property
    def inputs(self) -> list[Node]:
        return [self.input] if self.input else []


@dataclass
class HopExpand(Node):
    """HOP windows: each row once per window containing it."""

    input: Node | None = None
    ts: str = ""
    hop: str = ""
    size: str = ""
    windows: int = 1
    origin: str = ""
    start: str = ""
    end: str = ""

    @property
    def inputs(self) -> list[Node]:
        return [self.input] if self.input else []


@dataclass
class AggCall:
    """One aggregate: function, argument column, DISTINCT, FILTER column, output column."""

    func: str
    arg: str | None
    distinct: bool
    filter: str | None
    out: str
    out_type: str
    label: str


@dataclass
class Agg(Node):
    """GROUP BY (or global) aggregation, maintained with retractions."""

    input: Node | None = None
    group: list[str] = field(default_factory=list)
    calls: list[AggCall] = field(default_factory=list)

    @property
    def inputs(self) -> list[Node]:
        return [self.input] if self.input else []


@dataclass
class Join(Node):
    """Equi-join (inner, left, right, full) with an optional extra condition."""

    left: Node | None = None
    right: Node | None = None
    kind: str = "inner"
    left_keys: list[str] = field(default_factory=list)
    right_keys: list[str] = field(default_factory=list)
    cond: str | None = None
    cond_label: str = ""

    @property
    def inputs(self) -> list[Node]:
        return [n for n in (self.left, self.right) if n is not None]


@dataclass
class Union(Node):
    """UNION ALL of inputs with equal column types; `branch` tags the input."""

    branches: list[Node] = field(default_factory=list)
    branch_col: str = ""
    data_cols: list[list[str]] = field(default_factory=list)
    key_cols: list[list[tuple[str, str]]] = field(default_factory=list)

    @property
    def inputs(self) -> list[Node]:
        return list(self.branches)


@dataclass
class TopN(Node):
    """ORDER BY ... LIMIT n OFFSET m, kept correct under deletes."""

    input: Node | None = None
    order: list[tuple[str, bool, bool]] = field(default_factory=list)
    limit: int | None = None
    offset: int = 0

    @property
    def inputs(self) -> list[Node]:
        return [self.input] if self.input else []


@dataclass
class Recompute(Node):
    """Not incremental: re-runs `sql` over its inputs at each barrier, emits the difference."""

    sql: str = ""
    deps: list[str] = field(default_factory=list)
    reason: str = ""
    names: list[str] = field(default_factory=list)


@dataclass
class Materialize(Node):
    """The materialized view itself: output column names, visible or hidden."""

    input: Node | None = None
    name: str = ""
    columns: list[tuple[str, str, bool]] = field(default_factory=list)

    @property
    def inputs(self) -> list[Node]:
        return [self.input] if self.input else []
