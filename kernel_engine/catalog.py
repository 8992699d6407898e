"""The catalog: tables and materialized views, their columns, keys and dependencies."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from kernel_engine.sql.nodes import Materialize
from kernel_engine.sql.plan import RelationInfo
from kernel_engine.stream.operator import Operator

__all__ = ["Catalog", "Relation"]


@dataclass
class Relation:
    """A table or materialized view."""

    name: str
    kind: str  # "table" | "source" | "materialized view" | "sink"
    columns: list[tuple[str, str, bool]]
    key: list[str]
    sql: str
    op: Operator
    operators: list[Operator] = field(default_factory=list)
    deps: set[str] = field(default_factory=set)
    plan: Materialize | None = None
    primary_key: list[str] = field(default_factory=list)
    append_only: bool = False
    next_row_id: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    reader: Any = None

    @property
    def visible(self) -> list[tuple[str, str]]:
        """Visible columns and their types."""
        return [(c, t) for c, t, hidden in self.columns if not hidden]


class Catalog:
    """All relations by name; changed only by the engine thread."""

    def __init__(self) -> None:
        self.relations: dict[str, Relation] = {}
        self.lock = threading.RLock()

    def get(self, name: str) -> Relation | None:
        """A relation by name."""
        with self.lock:
            return self.relations.get(name)

    def relation(self, name: str) -> RelationInfo | None:
        """The planner's view of a relation."""
        rel = self.get(name)
        if rel is None or rel.kind == "sink":  # a sink cannot be read from
            return None
        return RelationInfo(rel.name, list(rel.columns), list(rel.key))

    def schema(self) -> dict[str, dict[str, str]]:
        """Visible columns of every relation (for translating ad-hoc queries)."""
        with self.lock:
            return {name: dict(rel.visible) for name, rel in self.relations.items()
                    if rel.kind != "sink"}

    def dependents(self, name: str) -> list[str]:
        """Relations that read `name` directly."""
        with self.lock:
            return sorted(r.name for r in self.relations.values() if name in r.deps)

    def add(self, rel: Relation) -> None:
        """Register a relation."""
        with self.lock:
            self.relations[rel.name] = rel

    def remove(self, name: str) -> None:
        """Forget a relation."""
        with self.lock:
            self.relations.pop(name, None)

    def names(self, kind: str) -> list[str]:
        """Names of relations of one kind, sorted."""
        with self.lock:
            return sorted(r.name for r in self.relations.values() if r.kind == kind)
