"""The durable DML log of a table: its replayable source.

Every change batch a table receives from DML is written as one immutable
Arrow IPC object, `log/<table>/<seq>.arrow`, before the statement returns.
The sequence number is the table's source offset: a checkpoint records the
last sequence it includes, and recovery replays the batches after it.
"""

from __future__ import annotations

import io
import threading

import pyarrow as pa
import pyarrow.ipc as ipc

from kernel_engine.state.storage import Storage

__all__ = ["SourceLog"]


def _encode(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    with ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def _decode(data: bytes) -> pa.Table:
    return ipc.open_stream(io.BytesIO(data)).read_all()


class SourceLog:
    """An append-only, replayable log of one table's change batches."""

    def __init__(self, storage: Storage, table: str) -> None:
        self.storage = storage
        self.table = table
        self.lock = threading.Lock()
        self.next_seq = self._last_seq() + 1

    def _prefix(self) -> str:
        return f"log/{self.table}/"

    def _seqs(self) -> list[int]:
        out = []
        for rel in self.storage.list(self._prefix().rstrip("/")):
            name = rel.rsplit("/", 1)[-1]
            if name.endswith(".arrow") and name[:-6].isdigit():
                out.append(int(name[:-6]))
        return sorted(out)

    def _last_seq(self) -> int:
        seqs = self._seqs()
        return seqs[-1] if seqs else 0

    def append(self, chunk: pa.Table) -> int:
        """Write a batch durably; return its sequence number (call under `lock`)."""
        seq = self.next_seq
        self.storage.write(f"{self._prefix()}{seq:012d}.arrow", _encode(chunk))
        self.next_seq = seq + 1
        return seq

    def read_after(self, offset: int) -> list[tuple[int, pa.Table]]:
        """Every batch with a sequence number above `offset`, in order."""
        return [(seq, _decode(self.storage.read(f"{self._prefix()}{seq:012d}.arrow")))
                for seq in self._seqs() if seq > offset]

    def truncate(self, upto: int) -> None:
        """Delete batches with sequence numbers up to `upto` (no longer needed)."""
        for seq in self._seqs():
            if seq <= upto:
                self.storage.delete(f"{self._prefix()}{seq:012d}.arrow")

    def drop(self) -> None:
        """Delete the whole log."""
        self.truncate(self.next_seq)
