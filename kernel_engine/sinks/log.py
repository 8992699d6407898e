"""The sink log: each sealed epoch's changes, kept until the target has them.

The sink operator seals one entry per epoch (rows plus an `_op` column: +1 write, -1 delete
by key). The delivery thread reads entries whose checkpoint is durable and drops them once
the target committed them. The log is checkpointed with the engine's state: it behaves as
a state table without a key (every checkpoint stores its whole content, which is only the
epochs not yet delivered), so after a crash the epochs the target had not committed yet are
still there to deliver.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["EPOCH", "OP", "Entry", "SinkLog"]

EPOCH = "_epoch"
OP = "_op"
_EMPTY = -1  # a checkpoint of an empty log stores one marker row with this epoch


@dataclass
class Entry:
    """One sealed epoch: its rows (data columns + `_op`) and, if the epoch cannot be
    delivered (a retraction for an append-only sink), why."""

    epoch: int
    rows: pa.Table
    problem: str | None = None


class SinkLog:
    """Sealed epochs not yet delivered; thread-safe. Quacks like a keyless StateTable."""

    def __init__(self, name: str, schema: pa.Schema, columns: list[tuple[str, str]]) -> None:
        self.name = name
        self.schema = schema  # data columns + _op
        self.columns = [(EPOCH, "BIGINT"), *columns, (OP, "SMALLINT")]
        self.key: list[str] = []
        self.persisted = True  # checkpointed with the engine's state
        self.restored_through = 0
        self._entries: dict[int, Entry] = {}
        self._lock = threading.Lock()
        self._changed = False

    @property
    def column_names(self) -> list[str]:
        """The names of the checkpointed columns."""
        return [n for n, _ in self.columns]

    # ---- engine thread -------------------------------------------------------------------

    def seal(self, epoch: int, rows: pa.Table, problem: str | None = None) -> None:
        """Record an epoch's changes (an empty table for an epoch without changes)."""
        if rows.num_rows == 0 and problem is None:
            return
        with self._lock:
            self._entries[epoch] = Entry(epoch, rows.cast(self.schema), problem)
            self._changed = True

    def take_changes(self) -> pa.Table | None:
        """The whole log (what a checkpoint stores); None if unchanged since the last call."""
        with self._lock:
            if not self._changed:
                return None
            self._changed = False
            entries = sorted(self._entries.values(), key=lambda e: e.epoch)
        parts = [e.rows.add_column(0, EPOCH, pa.repeat(pa.scalar(e.epoch, pa.int64()),
                                                       e.rows.num_rows))
                 for e in entries if e.rows.num_rows]
        if not parts:  # an empty file must replace the previous content: one marker row
            marker = pa.table({f.name: pa.nulls(1, f.type) for f in self.schema})
            parts = [marker.add_column(0, EPOCH, pa.array([_EMPTY], pa.int64()))]
        rows = pa.concat_tables(parts)
        return rows.append_column("_deleted", pa.repeat(pa.scalar(False), rows.num_rows))

    def discard_changes(self) -> None:
        """The next checkpoint need not store the log again."""
        with self._lock:
            self._changed = False

    def only_inserts(self) -> bool:
        """Never log-backed."""
        return False

    def snapshot(self) -> pa.Table:
        """The log as rows (an empty table of the checkpoint schema when empty)."""
        out = self.take_changes_unmarked()
        return out.append_column("_w", pa.repeat(pa.scalar(1, pa.int64()), out.num_rows))

    def take_changes_unmarked(self) -> pa.Table:
        """Every logged row with its epoch (no marker rows)."""
        with self._lock:
            entries = sorted(self._entries.values(), key=lambda e: e.epoch)
        schema = pa.schema([pa.field(EPOCH, pa.int64()), *self.schema])
        parts = [e.rows.add_column(0, EPOCH, pa.repeat(pa.scalar(e.epoch, pa.int64()),
                                                       e.rows.num_rows)).cast(schema)
                 for e in entries]
        return pa.concat_tables(parts) if parts else schema.empty_table()

    def restore(self, rows: pa.Table) -> None:
        """Replace the log with checkpointed rows (after a recovery)."""
        entries: dict[int, Entry] = {}
        if rows.num_rows and EPOCH in rows.column_names:
            rows = rows.filter(pc.greater(rows[EPOCH], 0))
            data = rows.select([f.name for f in self.schema]).cast(self.schema)
            epochs = rows[EPOCH].to_numpy()
            for epoch in sorted(set(int(e) for e in epochs)):
                mask = pc.equal(rows[EPOCH], epoch)
                entries[epoch] = Entry(epoch, data.filter(mask))
        with self._lock:
            self._entries = entries
            self._changed = True
            self.restored_through = max(entries, default=0)

    def drop(self) -> None:
        """Nothing is stored outside memory."""

    # ---- delivery thread -----------------------------------------------------------------

    def pending(self, after: int, through: int) -> list[Entry]:
        """Entries with after < epoch <= through, oldest first."""
        with self._lock:
            return sorted((e for e in self._entries.values() if after < e.epoch <= through),
                          key=lambda e: e.epoch)

    def count(self, after: int = 0) -> int:
        """How many epochs after `after` wait to be delivered."""
        with self._lock:
            return sum(1 for e in self._entries if e > after)

    def truncate(self, through: int) -> None:
        """Forget entries up to `through` (the target has them)."""
        with self._lock:
            gone = [e for e in self._entries if e <= through]
            for e in gone:
                del self._entries[e]
            if gone:
                self._changed = True
