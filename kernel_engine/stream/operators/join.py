"""Hash join with retractions.

Inner joins use the delta rule: a batch from one side joins the other side's
current state (weights multiply), then is applied to its own side. Outer
joins recompute the output of the join keys a batch touches, before and
after applying it, and emit the difference, which keeps NULL-padded rows
right under inserts and deletes on either side.
"""

from __future__ import annotations

import pyarrow as pa

from kernel_engine._duck import Duck
from kernel_engine.state.table import StateTable, quote
from kernel_engine.stream.message import WEIGHT
from kernel_engine.stream.operator import Operator

__all__ = ["HashJoin"]


class HashJoin(Operator):
    """Equi-join of two inputs, each side's rows kept in a state table."""

    kind = "StreamHashJoin"

    def __init__(self, duck: Duck, identity: str, kind: str,
                 left: tuple[list[tuple[str, str]], list[str], list[str]],
                 right: tuple[list[tuple[str, str]], list[str], list[str]],
                 cond: str | None) -> None:
        super().__init__(duck, identity, inputs=2)
        self.join_kind = kind
        lcols, lkey, self.lkeys = left
        rcols, rkey, self.rkeys = right
        self.sides = [StateTable(duck, f"__join_{identity}_l", lcols, lkey),
                      StateTable(duck, f"__join_{identity}_r", rcols, rkey)]
        self.cond = cond
        self.out_cols = [c for c, _ in lcols] + [c for c, _ in rcols]

    def state_tables(self) -> list[StateTable]:
        return list(self.sides)

    def _on(self, left: str, right: str) -> str:
        parts = [f"{left}.{quote(a)} = {right}.{quote(b)}"
                 for a, b in zip(self.lkeys, self.rkeys, strict=True)]
        if self.cond:
            parts.append(f"({self.cond})")
        return " AND ".join(parts) or "TRUE"

    def _select(self) -> str:
        return ", ".join(quote(c) for c in self.out_cols)

    def process(self, chunk: pa.Table, port: int) -> pa.Table | None:
        if self.join_kind == "inner":
            return self._delta(chunk, port)
        return self._recompute_keys(chunk, port)

    def _delta(self, chunk: pa.Table, port: int) -> pa.Table:
        other = self.sides[1 - port]
        cols = [c for c, _ in self.sides[port].columns]
        delta = chunk.select([*cols, WEIGHT])
        if port == 0:
            sql = (f"SELECT {self._select()}, d._w AS _w FROM _d d JOIN {quote(other.name)} o "
                   f"ON {self._on('d', 'o')}")
        else:
            sql = (f"SELECT {self._select()}, d._w AS _w FROM {quote(other.name)} o JOIN _d d "
                   f"ON {self._on('o', 'd')}")
        out = self.duck.arrow(sql, _d=delta)
        self.sides[port].apply(delta)
        return out

    def _restricted(self, side: int) -> str:
        keys = self.lkeys if side == 0 else self.rkeys
        table = quote(self.sides[side].name)
        if not keys:
            return table
        match = " AND ".join(f"t.{quote(k)} IS NOT DISTINCT FROM _k.k{i}"
                             for i, k in enumerate(keys))
        return f"(SELECT t.* FROM {table} t SEMI JOIN _k ON {match})"

    def _side_output(self, keys: pa.Table, weight: int) -> pa.Table:
        kind = {"left": "LEFT", "right": "RIGHT", "full": "FULL"}[self.join_kind]
        sql = (f"SELECT {self._select()}, CAST({weight} AS BIGINT) AS _w "
               f"FROM {self._restricted(0)} l {kind} JOIN {self._restricted(1)} r "
               f"ON {self._on('l', 'r')}")
        return self.duck.arrow(sql, _k=keys)

    def _recompute_keys(self, chunk: pa.Table, port: int) -> pa.Table:
        keys = self.lkeys if port == 0 else self.rkeys
        cols = [c for c, _ in self.sides[port].columns]
        delta = chunk.select([*cols, WEIGHT])
        if keys:
            key_sel = ", ".join(f"{quote(k)} AS k{i}" for i, k in enumerate(keys))
            affected = self.duck.arrow(f"SELECT DISTINCT {key_sel} FROM _d", _d=delta)
        else:
            affected = pa.table({"k": pa.array([1])})
        before = self._side_output(affected, -1)
        self.sides[port].apply(delta)
        after = self._side_output(affected, 1)
        return pa.concat_tables([before, after.cast(before.schema)])
