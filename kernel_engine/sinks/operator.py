"""The sink operator: the last operator of a sink's stream, on the engine thread.

It receives the upstream relation's change batches and, at every barrier, seals the epoch
into the sink log:

- upsert: the keys the epoch touched, looked up in the upstream state as it stands at the
  barrier (one row per key: +1 with the row's current values, or -1 when the key is gone).
  This collapses any sequence of changes to a key within the epoch, whatever their order.
- append-only: the epoch's inserted rows in arrival order; a retraction is a problem the
  delivery reports (naming epoch and row) unless `force_append_only` drops it.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from kernel_engine._duck import Duck
from kernel_engine.sinks.log import OP, SinkLog
from kernel_engine.state.table import StateTable, key_match, quote
from kernel_engine.stream.message import WEIGHT
from kernel_engine.stream.operator import Operator

__all__ = ["SinkOperator"]


class SinkOperator(Operator):
    """Buffers an epoch's changes and seals them into the sink log at the barrier."""

    kind = "StreamSink"

    def __init__(self, duck: Duck, name: str, columns: list[tuple[str, str]],
                 schema: pa.Schema, upstream: StateTable, primary_key: list[str],
                 upsert: bool, force_append_only: bool) -> None:
        super().__init__(duck, f"sink:{name}")
        self.name = name
        self.columns = columns
        self.names = [c for c, _ in columns]
        self.upstream = upstream
        self.primary_key = primary_key
        self.upsert = upsert
        self.force_append_only = force_append_only
        self.schema = schema  # data columns + _op
        self.log = SinkLog(f"__sink_{name}", schema, columns)
        self._pending: list[pa.Table] = []
        self._problem: str | None = None
        self.delivered_epoch = 0  # set by the delivery thread, recorded in manifests

    def state_tables(self) -> list[Any]:
        return [self.log]

    def process(self, chunk: pa.Table, port: int) -> pa.Table | None:
        if chunk.num_rows == 0:
            return None
        if self.upsert:
            self._pending.append(chunk.select(self.primary_key))
            return None
        weights = chunk[WEIGHT]
        if pc.min(weights).as_py() < 0:
            if not self.force_append_only and self._problem is None:
                bad = chunk.filter(pc.less(weights, 0)).slice(0, 1).select(self.names)
                row = ", ".join(repr(v) for v in bad.to_pylist()[0].values())
                self._problem = (f"append-only sink {self.name} got a retraction (an UPDATE or "
                                 f"DELETE upstream) for row ({row}); use type = 'upsert' or "
                                 "force_append_only = 'true'")
            chunk = chunk.filter(pc.greater(weights, 0))
        if chunk.num_rows:
            self._pending.append(chunk.select(self.names))
        return None

    def on_barrier(self, epoch: int) -> pa.Table | None:
        pending, self._pending = self._pending, []
        problem, self._problem = self._problem, None
        if self.upsert:
            rows = self._collapse(pending) if pending else self.schema.empty_table()
        elif pending:
            data = pa.concat_tables([p.cast(self.schema.remove(len(self.schema) - 1))
                                     for p in pending])
            rows = data.append_column(OP, pa.repeat(pa.scalar(1, pa.int16()), data.num_rows))
        else:
            rows = self.schema.empty_table()
        self.log.seal(epoch, rows, problem)
        return None

    def _collapse(self, keys: list[pa.Table]) -> pa.Table:
        """Each touched key's row at the barrier (+1), or the key alone (-1) if it is gone."""
        pk = self.primary_key
        table = quote(self.upstream.name)
        cols = ", ".join(f"s.{quote(c)}" for c in self.names)
        key_cols = ", ".join(quote(k) for k in pk)
        gone = ", ".join(f"k.{quote(c)}" if c in pk else f"CAST(NULL AS {t}) AS {quote(c)}"
                         for c, t in self.columns)
        rows = self.duck.arrow(
            f"WITH k AS (SELECT DISTINCT {key_cols} FROM _k) "
            f"SELECT {cols}, CAST(1 AS SMALLINT) AS {OP} FROM {table} s "
            f"SEMI JOIN k ON {key_match('s', 'k', pk)} UNION ALL "
            f"SELECT {gone}, CAST(-1 AS SMALLINT) AS {OP} FROM k "
            f"ANTI JOIN {table} s ON {key_match('s', 'k', pk)}",
            _k=pa.concat_tables(keys))
        return rows.cast(self.schema)

    def snapshot_rows(self) -> None:
        """Feed the upstream's current rows as inserts (CREATE SINK with snapshot)."""
        rows = self.upstream.snapshot()
        if rows.num_rows:
            self.rows_in += rows.num_rows
            self.process(rows, 0)

    def progress_record(self) -> dict[str, Any]:
        """What a checkpoint manifest records about this sink."""
        return {"delivered_epoch": self.delivered_epoch, "pending_epochs": self.log.count(
            self.delivered_epoch)}
