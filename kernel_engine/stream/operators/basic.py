"""Stateless operators and the two materializing ones (tables and views)."""

from __future__ import annotations

import itertools

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kernel_engine._duck import Duck
from kernel_engine.state.table import StateTable, key_match, quote
from kernel_engine.stream.message import WEIGHT
from kernel_engine.stream.operator import Operator

__all__ = ["Filter", "HopExpand", "Materialize", "Project", "Scan", "TableSource", "Union"]


class TableSource(Operator):
    """A table: applies DML batches to its state and emits the resulting changes.

    With a primary key, an insert of an existing key overwrites the row (a
    -old/+new pair), or is dropped with ON CONFLICT DO NOTHING.
    """

    kind = "StreamTableSource"

    def __init__(self, duck: Duck, name: str, columns: list[tuple[str, str]], key: list[str],
                 has_pk: bool, on_conflict: str = "overwrite") -> None:
        super().__init__(duck, name, inputs=1)
        self.state = StateTable(duck, f"__t_{name}", columns, key)
        self.has_pk = has_pk
        self.on_conflict = on_conflict

    def state_tables(self) -> list[StateTable]:
        return [self.state]

    def process(self, chunk: pa.Table, port: int) -> pa.Table | None:
        if not self.has_pk or chunk.num_rows == 0:
            self.state.apply(chunk)
            return chunk
        runs = _sign_runs(chunk)
        out = []
        for run in runs:  # in order: an INSERT after a DELETE sees the row gone
            if pc.min(run[WEIGHT]).as_py() > 0:
                run = self._resolve_conflicts(run)
            self.state.apply(run)
            out.append(run)
        return out[0] if len(out) == 1 else pa.concat_tables(
            [o.cast(out[0].schema) for o in out])

    def _resolve_conflicts(self, chunk: pa.Table) -> pa.Table:
        cols = ", ".join(quote(c) for c in self.state.column_names)
        key = ", ".join(quote(k) for k in self.state.key)
        order = "DESC" if self.on_conflict != "do_nothing" else "ASC"
        chunk = chunk.append_column("_pos", pa.array(range(chunk.num_rows), pa.int64()))
        new = self.duck.arrow(
            f"SELECT {cols}, _w FROM (SELECT *, row_number() OVER (PARTITION BY {key} "
            f"ORDER BY _pos {order}) AS _rn FROM _c) WHERE _rn = 1", _c=chunk)
        target = quote(self.state.name)
        old = self.duck.arrow(
            f"SELECT {', '.join('s.' + quote(c) for c in self.state.column_names)}, "
            f"CAST(-1 AS BIGINT) AS _w FROM {target} s SEMI JOIN _n "
            f"ON {key_match('s', '_n', self.state.key)}", _n=new)
        if old.num_rows == 0:
            return new
        if self.on_conflict == "do_nothing":
            return self.duck.arrow(
                f"SELECT * FROM _n ANTI JOIN _o ON {key_match('_n', '_o', self.state.key)}",
                _n=new, _o=old)
        return pa.concat_tables([old, new.cast(old.schema)])


def _sign_runs(chunk: pa.Table) -> list[pa.Table]:
    """Split a change batch into its runs of inserts and of retractions, in order.

    Batches of several statements arrive merged: an INSERT of a key that a DELETE before
    it removed (or that an earlier INSERT added) must meet the table as the statements
    before it left it, so each run is resolved and applied before the next.
    """
    positive = pc.greater(chunk[WEIGHT], 0).to_numpy(zero_copy_only=False)
    cuts = [0, *(np.flatnonzero(positive[1:] != positive[:-1]) + 1).tolist(), len(positive)]
    return [chunk.slice(a, b - a) for a, b in itertools.pairwise(cuts) if b > a]


class Scan(Operator):
    """Reads an upstream relation's changes under the plan's internal column names."""

    kind = "StreamTableScan"

    def __init__(self, duck: Duck, identity: str, upstream: list[str], names: list[str]) -> None:
        super().__init__(duck, identity)
        self.upstream = upstream
        self.names = names

    def process(self, chunk: pa.Table, port: int) -> pa.Table | None:
        picked = chunk.select([*self.upstream, WEIGHT])
        return picked.rename_columns([*self.names, WEIGHT])


class Project(Operator):
    """Evaluates expressions per row with DuckDB; renames without DuckDB when it can."""

    kind = "StreamProject"

    def __init__(self, duck: Duck, identity: str, exprs: list[tuple[str, str]]) -> None:
        super().__init__(duck, identity)
        self.exprs = exprs
        self.sql = ", ".join(f"{sql} AS {quote(name)}" for name, sql in exprs)
        self.renames = self._pure_renames(exprs)

    @staticmethod
    def _pure_renames(exprs: list[tuple[str, str]]) -> list[str] | None:
        out = []
        for _, sql in exprs:
            if sql.startswith('"') and sql.endswith('"') and sql.count('"') == 2:
                out.append(sql[1:-1])
            elif sql.replace("_", "").isalnum() and not sql[0].isdigit():
                out.append(sql)
            else:
                return None
        return out

    def process(self, chunk: pa.Table, port: int) -> pa.Table | None:
        # A bare word is a rename only when it names an input column (not TRUE or NULL).
        if self.renames is not None and set(self.renames) <= set(chunk.column_names):
            picked = chunk.select([*self.renames, WEIGHT])
            return picked.rename_columns([*(n for n, _ in self.exprs), WEIGHT])
        return self.duck.arrow(f"SELECT {self.sql}, _w FROM _in", _in=chunk)


class Filter(Operator):
    """Keeps rows whose condition is true; deletes pass the same test as inserts."""

    kind = "StreamFilter"

    def __init__(self, duck: Duck, identity: str, cond: str) -> None:
        super().__init__(duck, identity)
        self.cond = cond

    def process(self, chunk: pa.Table, port: int) -> pa.Table | None:
        return self.duck.arrow(f"SELECT * FROM _in WHERE {self.cond}", _in=chunk)


class HopExpand(Operator):
    """HOP windows: one output row per (input row, window containing it)."""

    kind = "StreamHopWindow"

    def __init__(self, duck: Duck, identity: str, columns: list[str], ts: str, hop: str,
                 size: str, windows: int, origin: str, start: str, end: str) -> None:
        super().__init__(duck, identity)
        listed = ", ".join(f"_in.{quote(c)}" for c in columns)
        first = f"time_bucket({hop}, {ts}, {origin})"
        self.sql = (f"SELECT {listed}, {first} - _r._k * {hop} AS {quote(start)}, "
                    f"{first} - _r._k * {hop} + {size} AS {quote(end)}, _in._w FROM _in "
                    f"CROSS JOIN (SELECT unnest(range(0, {windows})) AS _k) AS _r "
                    f"WHERE {ts} IS NOT NULL")

    def process(self, chunk: pa.Table, port: int) -> pa.Table | None:
        return self.duck.arrow(self.sql, _in=chunk)


class Union(Operator):
    """UNION ALL: tags each row with its input and that input's key columns."""

    kind = "StreamUnion"

    def __init__(self, duck: Duck, identity: str, out_names: list[str], out_types: pa.Schema,
                 branch_col: str, data_cols: list[list[str]],
                 key_cols: list[list[tuple[str, str]]]) -> None:
        super().__init__(duck, identity, inputs=len(data_cols))
        self.out_names = out_names
        self.schema = out_types
        self.branch_col = branch_col
        self.data_cols = data_cols
        self.key_cols = key_cols

    def process(self, chunk: pa.Table, port: int) -> pa.Table | None:
        n = chunk.num_rows
        arrays: dict[str, pa.Array] = {}
        for out, src in zip(self.out_names, self.data_cols[port], strict=True):
            arrays[out] = chunk[src]
        arrays[self.branch_col] = pa.repeat(pa.scalar(port, pa.int32()), n)
        for branch, pairs in enumerate(self.key_cols):
            for src, out in pairs:
                field = self.schema.field(out)
                arrays[out] = chunk[src] if branch == port else pa.nulls(n, field.type)
        arrays[WEIGHT] = chunk[WEIGHT]
        table = pa.table(arrays)
        return table.cast(pa.schema([self.schema.field(c) for c in table.column_names
                                     if c != WEIGHT] + [pa.field(WEIGHT, pa.int64())]))


class Materialize(Operator):
    """A materialized view: applies its input's changes to the view's state table."""

    kind = "StreamMaterialize"

    def __init__(self, duck: Duck, name: str, inputs_cols: list[str],
                 columns: list[tuple[str, str]], key: list[str]) -> None:
        super().__init__(duck, name)
        self.input_cols = inputs_cols
        self.state = StateTable(duck, f"__mv_{name}", columns, key)

    def state_tables(self) -> list[StateTable]:
        return [self.state]

    def process(self, chunk: pa.Table, port: int) -> pa.Table | None:
        renamed = chunk.select([*self.input_cols, WEIGHT]).rename_columns(
            [*self.state.column_names, WEIGHT])
        self.state.apply(renamed)
        return renamed
