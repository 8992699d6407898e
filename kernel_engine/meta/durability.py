"""Durability: DML logs, checkpoint jobs, source offsets and the delivery guarantees.

- exactly_once: a checkpoint's manifest holds the state and the source offsets of
  the same epoch; recovery restores both together.
- at_least_once: state is checkpointed at every barrier, but source offsets are
  committed separately and only every `offset_commit_every` checkpoints; recovery
  restores the newest state and rewinds sources to the older committed offsets,
  so events already in the state are replayed again (duplicates).
- at_most_once: source offsets are committed as soon as events are read, while
  state is persisted only at checkpoints; recovery skips whatever was read after
  the last checkpoint (losses).
"""

from __future__ import annotations

import hashlib
import json
import threading
from typing import Any

from kernel_engine.errors import BindError
from kernel_engine.state.checkpoint import (
    CheckpointJob,
    CheckpointWriter,
    Crashed,
    LogRef,
    Manifest,
    list_manifests,
    load_manifest,
)
from kernel_engine.state.log import SourceLog
from kernel_engine.state.storage import Storage
from kernel_engine.state.table import StateTable
from kernel_engine.stream.operator import Operator

__all__ = ["CRASH_POINTS", "GUARANTEES", "SINK_CRASH_POINTS", "Durability", "fingerprint"]

GUARANTEES = ("exactly_once", "at_least_once", "at_most_once")
CRASH_POINTS = ("processing", "after_snapshot", "mid_upload", "before_manifest",
                "after_manifest")
# Where a sink's delivery can die: before its target transaction, after writing but before
# COMMIT, and after COMMIT before the engine notes the delivered epoch.
SINK_CRASH_POINTS = ("sink_before_txn", "sink_mid_txn", "sink_after_commit")
OFFSETS = "offsets/committed.json"


def fingerprint(operators: list[Operator]) -> str:
    """A hash of every state table's name, columns and key: the plan's identity."""
    tables = sorted((t.name, t.columns, t.key) for op in operators for t in op.state_tables())
    return hashlib.sha256(json.dumps(tables).encode()).hexdigest()[:16]


def check_guarantee(value: str) -> str:
    """Validate a delivery guarantee name."""
    value = value.lower()
    if value not in GUARANTEES:
        raise BindError(f"delivery_guarantee must be one of {', '.join(GUARANTEES)}, "
                        f"not {value!r}")
    return value


class Durability:
    """Everything that makes an engine recoverable from its storage location."""

    def __init__(self, storage: Storage, guarantee: str = "exactly_once",
                 retention: int = 3, offset_commit_every: int = 3) -> None:
        self.storage = storage
        self.guarantee = check_guarantee(guarantee)
        self.offset_commit_every = offset_commit_every
        self.logs: dict[str, SourceLog] = {}
        self.crash_at: str | None = None
        self.offsets: dict[str, Any] = {}
        self.log_backed: dict[str, str] = {}
        self.checkpointed: dict[str, int] = {}
        self._durable_count = 0
        self._lock = threading.Lock()
        self.writer = CheckpointWriter(storage, retention, self.crash_point, self._on_durable)

    # ---- crash injection ---------------------------------------------------------------

    def crash_point(self, name: str) -> None:
        """Die here if a crash was armed for this point."""
        if self.crash_at == name:
            self.crash_at = None
            raise Crashed(name)

    # ---- sources -----------------------------------------------------------------------

    def log(self, table: str) -> SourceLog:
        """The DML log of a table."""
        with self._lock:
            if table not in self.logs:
                self.logs[table] = SourceLog(self.storage, table)
            return self.logs[table]

    def processed(self, table: str, seq: int) -> None:
        """The engine has read a table's batches up to `seq`."""
        self.offsets[table] = max(self.offsets.get(table, 0), seq)
        if self.guarantee == "at_most_once":
            self._commit_offsets(dict(self.offsets))

    def read_offset(self, name: str, offset: dict[str, Any]) -> None:
        """A connector has been read up to `offset`."""
        self.offsets[name] = offset
        if self.guarantee == "at_most_once":
            self._commit_offsets(dict(self.offsets))

    def _commit_offsets(self, offsets: dict[str, Any]) -> None:
        self.storage.write(OFFSETS, json.dumps(offsets, sort_keys=True).encode())

    def committed_offsets(self) -> dict[str, Any] | None:
        """Source offsets committed apart from checkpoints, if any."""
        try:
            result: dict[str, Any] = json.loads(self.storage.read(OFFSETS))
            return result
        except (FileNotFoundError, ValueError):
            return None

    def recovery_offsets(self, manifest: Manifest) -> dict[str, Any]:
        """Where sources resume after restoring `manifest`, per the delivery guarantee."""
        if self.guarantee == "exactly_once":
            return dict(manifest.sources)
        committed = self.committed_offsets()
        if committed is None:
            return {} if self.guarantee == "at_least_once" else dict(manifest.sources)
        return committed

    # ---- checkpoints -------------------------------------------------------------------

    def job(self, epoch: int, operators: list[Operator], ddl: list[str]) -> CheckpointJob:
        """Take every state table's changes since the last checkpoint (engine thread)."""
        changes: dict[str, Any] = {}
        tables: dict[str, dict[str, Any]] = {}
        for op in operators:
            for t in op.state_tables():
                if not t.persisted:
                    t.discard_changes()
                    continue
                tables[t.name] = {"columns": t.columns, "key": t.key}
                ref = self._log_ref(t)
                delta = ref if ref is not None else t.take_changes()
                if delta is not None:
                    changes[t.name] = delta
        for table in self.log_backed.values():
            self.checkpointed[table] = int(self.offsets.get(table, 0))
        sinks = {op.identity: op.progress_record() for op in operators
                 if hasattr(op, "progress_record")}
        return CheckpointJob(epoch, changes, tables, dict(self.offsets), ddl,
                             fingerprint(operators), sinks=sinks)

    def _log_ref(self, t: StateTable) -> LogRef | None:
        """A table whose changes since the last checkpoint are exactly its logged inserts
        references those log files instead of writing its rows again."""
        table = self.log_backed.get(t.name)
        if table is None or not t.only_inserts():
            return None
        lo = self.checkpointed.get(table, 0)
        hi = int(self.offsets.get(table, 0))
        if hi <= lo:
            return None
        log = self.log(table)
        ref = LogRef([log.entry(seq) for seq in range(lo + 1, hi + 1)])
        t.take_changes()
        return ref

    def _on_durable(self, manifest: Manifest) -> None:
        self._durable_count += 1
        if (self.guarantee == "at_least_once"
                and self._durable_count % self.offset_commit_every == 0):
            self._commit_offsets(dict(manifest.sources))
        self._truncate_logs(manifest)

    def _truncate_logs(self, newest: Manifest) -> None:
        """Drop DML log entries that no retained checkpoint or offset commit still needs."""
        keep = [m for m in (load_manifest(self.storage, e, verify=False)
                            for e in list_manifests(self.storage)[-self.writer.retention:])
                if m is not None] or [newest]
        offsets = [m.sources for m in keep]
        committed = self.committed_offsets()
        if committed is not None:
            offsets.append(committed)
        elif self.guarantee == "at_least_once":
            return
        with self._lock:
            logs = list(self.logs.items())
        referenced: dict[str, int] = {}
        for m in keep:
            for info in m.tables.values():
                for entry in info["files"]:
                    for part in entry.get("parts", []) if entry.get("kind") == "log" else []:
                        table = part["path"].split("/")[1]
                        referenced[table] = min(referenced.get(table, part["seq"]), part["seq"])
        for table, log in logs:
            needed = min(int(o.get(table, 0)) if not isinstance(o.get(table, 0), dict) else 0
                         for o in offsets)
            if table in referenced:
                needed = min(needed, referenced[table] - 1)
            if needed > 0:
                log.truncate(needed)

    @staticmethod
    def state_tables(operators: list[Operator]) -> dict[str, StateTable]:
        """Every state table of the graph by name."""
        return {t.name: t for op in operators for t in op.state_tables()}
