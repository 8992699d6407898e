"""The durable DML log of a table: its replayable source.

Every change batch a table receives from DML is written as one immutable
Arrow IPC object, `log/<table>/<seq>.arrow`, before the statement returns.
The sequence number is the table's source offset: a checkpoint records the
last sequence it includes, and recovery replays the batches after it.

A plain INSERT into a table without a primary key (rows with consecutive
hidden row ids, all weights +1) is stored as just its rows, with the first
row id in the schema metadata: a third fewer bytes to write and fsync.
Entries are LZ4-compressed on S3 and not on a local disk, where compressing
costs more than writing the bytes.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kernel_engine.state import _ipc
from kernel_engine.state.storage import Storage

__all__ = ["ROW_ID", "SourceLog", "decode"]

ROW_ID = "_row_id"
WEIGHT = "_w"
_FIRST_ROW_ID = b"rw.first_row_id"


def decode(data: bytes) -> pa.Table:
    """A logged batch from its bytes (row ids and weights restored for a plain INSERT)."""
    table = _ipc.decode(data)
    meta = table.schema.metadata or {}
    if _FIRST_ROW_ID not in meta:
        return table
    first = int(meta[_FIRST_ROW_ID])
    n = table.num_rows
    table = table.replace_schema_metadata(None)
    table = table.append_column(ROW_ID, pa.array(np.arange(first, first + n, dtype=np.int64)))
    return table.append_column(WEIGHT, pa.repeat(pa.scalar(1, pa.int64()), n))


def _compact(chunk: pa.Table) -> pa.Table:
    """A plain INSERT without its row ids and weights (kept when they are anything else)."""
    names = chunk.column_names
    if names[-2:] != [ROW_ID, WEIGHT] or chunk.num_rows == 0:
        return chunk
    ids, weights = chunk[ROW_ID], chunk[WEIGHT]
    first = ids[0].as_py()
    if pc.min(weights).as_py() != 1 or pc.max(weights).as_py() != 1 or first is None:
        return chunk
    expected = pa.array(np.arange(first, first + chunk.num_rows, dtype=np.int64))
    if not pc.all(pc.equal(ids, expected)).as_py():
        return chunk
    body = chunk.drop_columns([ROW_ID, WEIGHT])
    return body.replace_schema_metadata({_FIRST_ROW_ID: str(first).encode()})


class SourceLog:
    """An append-only, replayable log of one table's change batches."""

    def __init__(self, storage: Storage, table: str) -> None:
        self.storage = storage
        self.table = table
        self.lock = threading.Lock()
        self.next_seq = self._last_seq() + 1
        self._digests: dict[int, tuple[str, int, int]] = {}

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
        data = _ipc.encode(_compact(chunk), compress=not self.storage.local)
        try:
            self.storage.write(self.path(seq), data)
        except Exception:
            # the statement fails, so the batch must not replay: an S3 PUT can land although
            # its answer was lost. Remove it if it did (best effort: if storage is down, the
            # next append reuses `seq` and overwrites it)
            with contextlib.suppress(Exception):
                self.storage.delete(self.path(seq))
            raise
        self._digests[seq] = (hashlib.sha256(data).hexdigest(), len(data), chunk.num_rows)
        self.next_seq = seq + 1
        return seq

    def path(self, seq: int) -> str:
        """Where batch `seq` lives."""
        return f"{self._prefix()}{seq:012d}.arrow"

    def entry(self, seq: int) -> dict[str, Any]:
        """A manifest entry for batch `seq` (path, checksum, size, rows)."""
        if seq not in self._digests:
            data = self.storage.read(self.path(seq))
            self._digests[seq] = (hashlib.sha256(data).hexdigest(), len(data),
                                  decode(data).num_rows)
        sha, size, rows = self._digests.pop(seq)
        return {"path": self.path(seq), "sha256": sha, "bytes": size, "rows": rows, "seq": seq}

    def read_after(self, offset: int) -> list[tuple[int, pa.Table]]:
        """Every batch with a sequence number above `offset`, in order."""
        return [(seq, decode(self.storage.read(f"{self._prefix()}{seq:012d}.arrow")))
                for seq in self._seqs() if seq > offset]

    def truncate(self, upto: int) -> None:
        """Delete batches with sequence numbers up to `upto` (no longer needed)."""
        for seq in self._seqs():
            # the newest entry stays: it numbers the log
            if seq <= upto and seq < self.next_seq - 1:
                self.storage.delete(self.path(seq))
                self._digests.pop(seq, None)

    def drop(self) -> None:
        """Delete the whole log."""
        self.truncate(self.next_seq)
