"""Operators that recompute a result and emit the difference.

TopN keeps all input rows in a state table and, at each barrier after a
change, re-selects the top rows and emits what entered and what left.
Recompute is the fallback for queries without an incremental operator: at
each barrier after an input changed it re-runs the query with DuckDB over the
current state and emits the difference from its previous result.
"""

from __future__ import annotations

import pyarrow as pa

from kernel_engine._duck import Duck
from kernel_engine.state.table import StateTable, quote
from kernel_engine.stream.message import WEIGHT
from kernel_engine.stream.operator import Operator

__all__ = ["Recompute", "TopN"]


class _Differ(Operator):
    """Holds the last emitted result and emits the difference to a new one."""

    def __init__(self, duck: Duck, identity: str, inputs: int,
                 columns: list[tuple[str, str]], key: list[str]) -> None:
        super().__init__(duck, identity, inputs)
        self.result = StateTable(duck, f"__result_{identity}", columns, key)
        self.dirty = False

    def _emit_difference(self, new_sql: str) -> pa.Table | None:
        cols = ", ".join(quote(c) for c in self.result.column_names)
        old = quote(self.result.name)
        diff = self.duck.arrow(
            f"WITH _new AS ({new_sql}), "
            f"_add AS (SELECT {cols} FROM _new EXCEPT ALL SELECT {cols} FROM {old}), "
            f"_del AS (SELECT {cols} FROM {old} EXCEPT ALL SELECT {cols} FROM _new) "
            f"SELECT {cols}, CAST(-1 AS BIGINT) AS _w FROM _del UNION ALL "
            f"SELECT {cols}, CAST(1 AS BIGINT) AS _w FROM _add")
        self.result.apply(diff)
        return diff


class TopN(_Differ):
    """ORDER BY ... LIMIT n OFFSET m over all input rows."""

    kind = "StreamTopN"

    def __init__(self, duck: Duck, identity: str, columns: list[tuple[str, str]],
                 key: list[str], order: list[tuple[str, bool, bool]], limit: int | None,
                 offset: int) -> None:
        super().__init__(duck, identity, 1, columns, key)
        self.input = StateTable(duck, f"__topn_{identity}", columns, key)
        terms = [f"{quote(c)} {'DESC' if d else 'ASC'} NULLS {'FIRST' if nf else 'LAST'}"
                 for c, d, nf in order]
        terms += [f"{quote(k)} ASC NULLS LAST" for k in key]
        cols = ", ".join(quote(c) for c, _ in columns)
        self.sql = (f"SELECT {cols} FROM {quote(self.input.name)} ORDER BY {', '.join(terms)}"
                    + (f" LIMIT {limit}" if limit is not None else "") + f" OFFSET {offset}")

    def state_tables(self) -> list[StateTable]:
        return [self.input, self.result]

    def process(self, chunk: pa.Table, port: int) -> pa.Table | None:
        self.input.apply(chunk.select([*self.input.column_names, WEIGHT]))
        self.dirty = True
        return None

    def on_barrier(self, epoch: int) -> pa.Table | None:
        if not self.dirty:
            return None
        self.dirty = False
        return self._emit_difference(self.sql)


class Recompute(_Differ):
    """Re-runs a query over its inputs' current state after any input changed."""

    kind = "StreamRecompute"

    def __init__(self, duck: Duck, identity: str, inputs: int, sql: str,
                 columns: list[tuple[str, str]], dup: str) -> None:
        super().__init__(duck, identity, inputs, columns, [c for c, _ in columns])
        names = [c for c, _ in columns if c != dup]
        part = ", ".join(quote(n) for n in names)
        self.sql = (f"SELECT *, row_number() OVER (PARTITION BY {part} ORDER BY {part}) "
                    f"AS {quote(dup)} FROM ({sql}) AS _q({part})")
        self.dirty = True

    def process(self, chunk: pa.Table, port: int) -> pa.Table | None:
        self.dirty = True
        return None

    def initial(self) -> pa.Table | None:
        self.dirty = False
        return self._emit_difference(self.sql)

    def on_barrier(self, epoch: int) -> pa.Table | None:
        if not self.dirty:
            return None
        self.dirty = False
        return self._emit_difference(self.sql)
