"""Asynchronous, incremental checkpoints and the manifests that commit them.

At a checkpoint barrier the engine hands a `CheckpointJob` (the changed rows of
every state table, every source offset) to the `CheckpointWriter` and goes on.
The writer uploads one Arrow IPC file per changed state table, then writes the
epoch's manifest last: the commit point. A manifest lists every live file of
every state table (with its SHA-256), the source offsets, the plan fingerprint
and the DDL that built the plan. Old manifests beyond the retention are
removed, then files no kept manifest references; delta files of a table are
merged when they pile up.
"""

from __future__ import annotations

import hashlib
import json
import queue
import threading
import time
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from kernel_engine._duck import Duck
from kernel_engine.errors import Error
from kernel_engine.state import _ipc, log
from kernel_engine.state.storage import Storage, StorageError

__all__ = ["CheckpointJob", "CheckpointWriter", "ChecksumError", "Crashed", "LogRef", "Manifest",
           "fold", "load_manifest", "read_table_files"]

COMPACT_AFTER = 8


class ChecksumError(Error):
    """A checkpoint file does not match the checksum its manifest recorded."""


class Crashed(Exception):  # noqa: N818 - a simulated process death, not an error
    """Raised at an armed crash point: the engine dies as a process would."""


@dataclass
class LogRef:
    """A table's inserts since the last checkpoint, already durable in its DML log.

    The manifest references the log files instead of writing the rows again.
    """

    parts: list[dict[str, Any]]


@dataclass
class CheckpointJob:
    """What one checkpoint barrier hands to the writer."""

    epoch: int
    changes: dict[str, pa.Table | LogRef]
    tables: dict[str, dict[str, Any]]
    sources: dict[str, Any]
    ddl: list[str]
    fingerprint: str
    started: float = field(default_factory=time.perf_counter)
    sinks: dict[str, Any] = field(default_factory=dict)  # each sink's delivered epoch


@dataclass
class Manifest:
    """A committed checkpoint."""

    epoch: int
    fingerprint: str
    ddl: list[str]
    tables: dict[str, dict[str, Any]]
    sources: dict[str, Any]
    sinks: dict[str, Any]
    created: float

    def to_bytes(self) -> bytes:
        """JSON with a checksum of its own body."""
        body = json.dumps(self.__dict__, sort_keys=True)
        digest = hashlib.sha256(body.encode()).hexdigest()
        return json.dumps({"body": json.loads(body), "sha256": digest}).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Manifest:
        """Parse and verify a manifest; ValueError when it is corrupt."""
        outer = json.loads(data)
        body = json.dumps(outer["body"], sort_keys=True)
        if hashlib.sha256(body.encode()).hexdigest() != outer["sha256"]:
            raise ValueError("manifest checksum mismatch")
        return cls(**outer["body"])


def fold(duck: Duck, parts: list[pa.Table], key: list[str]) -> pa.Table:
    """The current rows from base + delta files (later files win; `_deleted` drops)."""
    if not parts:
        return pa.table({})
    if not key:
        last = parts[-1]
        return last.drop_columns(["_deleted"])
    if len(parts) == 1:  # a file holds one row per key: nothing to resolve
        only = parts[0]
        return only.filter(pc.invert(only["_deleted"])).drop_columns(["_deleted"])
    tagged = [p.append_column("_file", pa.repeat(pa.scalar(i, pa.int64()), p.num_rows))
              for i, p in enumerate(parts)]
    schema = tagged[0].schema
    both = pa.concat_tables([t.cast(schema) for t in tagged])
    keys = ", ".join('"' + k.replace('"', '""') + '"' for k in key)
    return duck.arrow(
        f"SELECT * EXCLUDE (_file, _rn, _deleted) FROM (SELECT *, row_number() OVER "
        f"(PARTITION BY {keys} ORDER BY _file DESC) AS _rn FROM _a) WHERE _rn = 1 "
        f"AND NOT _deleted", _a=both)


def _verified(storage: Storage, entry: dict[str, Any]) -> bytes:
    data: bytes = storage.read(entry["path"])
    if hashlib.sha256(data).hexdigest() != entry["sha256"]:
        raise ValueError(f"checksum mismatch in {entry['path']}")
    return data


def merge_jobs(duck: Duck, older: CheckpointJob, newer: CheckpointJob) -> CheckpointJob | None:
    """Two consecutive checkpoints as one (the newer row of a key wins), or None when they
    cannot merge: a different plan, or a DML-log reference next to rows of the same table.
    """
    if (older.fingerprint, older.ddl) != (newer.fingerprint, newer.ddl):
        return None
    changes: dict[str, pa.Table | LogRef] = {}
    for name, info in newer.tables.items():
        parts = [c for c in (older.changes.get(name), newer.changes.get(name))
                 if c is not None and (isinstance(c, LogRef) or c.num_rows)]
        a, b = parts if len(parts) == 2 else (None, parts[-1] if parts else None)
        if a is None or b is None:
            if b is not None:
                changes[name] = b
        elif isinstance(a, LogRef) and isinstance(b, LogRef):
            changes[name] = LogRef([*a.parts, *b.parts])
        elif isinstance(a, LogRef) or isinstance(b, LogRef):
            return None
        else:
            changes[name] = newest_per_key(duck, [a, b], info["key"]) if info["key"] else b
    return replace(newer, changes=changes, started=older.started)


def newest_per_key(duck: Duck, parts: list[pa.Table], key: list[str]) -> pa.Table:
    """Consecutive change sets of a keyed table as one: per key the row of the last part
    that has it, `_deleted` markers kept."""
    tagged = [p.cast(parts[0].schema).append_column(
        "_part", pa.repeat(pa.scalar(i, pa.int32()), p.num_rows)) for i, p in enumerate(parts)]
    keys = ", ".join('"' + k.replace('"', '""') + '"' for k in key)
    return duck.arrow(
        f"SELECT * EXCLUDE (_part, _rn) FROM (SELECT *, row_number() OVER "
        f"(PARTITION BY {keys} ORDER BY _part DESC) AS _rn FROM _a) WHERE _rn = 1",
        _a=pa.concat_tables(tagged))


def read_table_files(storage: Storage, files: list[dict[str, Any]]) -> list[pa.Table]:
    """Read and verify a state table's files; ValueError on a checksum mismatch."""
    out = []
    for entry in files:
        if entry.get("kind") == "log":
            chunks = [log.decode(_verified(storage, part)) for part in entry["parts"]]
            rows = pa.concat_tables(chunks).drop_columns(["_w"])
            out.append(rows.append_column("_deleted", pa.repeat(pa.scalar(False),
                                                                  rows.num_rows)))
            continue
        out.append(_ipc.decode(_verified(storage, entry)))
    return out


def entry_paths(entry: dict[str, Any]) -> list[tuple[str, int]]:
    """(path, size) of every object a manifest file entry refers to."""
    if entry.get("kind") == "log":
        return [(p["path"], p["bytes"]) for p in entry["parts"]]
    return [(entry["path"], entry["bytes"])]


def list_manifests(storage: Storage) -> list[int]:
    """Epochs of the manifests present, oldest first."""
    epochs = []
    for rel in storage.list("manifests"):
        name = rel.rsplit("/", 1)[-1]
        if name.endswith(".json") and name[:-5].isdigit():
            epochs.append(int(name[:-5]))
    return sorted(epochs)


def manifest_path(epoch: int) -> str:
    """Where the manifest of an epoch lives."""
    return f"manifests/{epoch:020d}.json"


def load_manifest(storage: Storage, epoch: int | None = None,
                  verify: bool = True) -> Manifest | None:
    """The newest intact manifest (or the one of `epoch`); corrupt ones are skipped."""
    epochs = list_manifests(storage)
    if epoch is not None:
        epochs = [e for e in epochs if e == epoch]
    for e in reversed(epochs):
        try:
            manifest = Manifest.from_bytes(storage.read(manifest_path(e)))
            if verify:
                for info in manifest.tables.values():
                    for entry in info["files"]:
                        for path, size in entry_paths(entry):
                            if storage.read_size(path) != size:
                                raise ValueError(f"{path} has the wrong size")
            return manifest
        except StorageError:
            raise  # the storage failed, not the checkpoint: falling back would lose it
        except Exception as err:  # noqa: BLE001 - any damage: fall back to the previous one
            warnings.warn(f"skipping checkpoint {e}: {err}", stacklevel=2)
    return None


class CheckpointWriter:
    """A background thread that makes checkpoints durable, in epoch order."""

    def __init__(self, storage: Storage, retention: int = 3,
                 crash_point: Callable[[str], None] | None = None,
                 on_durable: Callable[[Manifest], None] | None = None) -> None:
        self.storage = storage
        self.retention = max(retention, 2)
        self.crash_point = crash_point or (lambda point: None)
        self.on_durable = on_durable or (lambda m: None)
        self.durable_epoch = 0
        self.history: list[dict[str, Any]] = []
        self.on_history: Callable[[dict[str, Any]], None] = lambda record: None
        self.lag_errors: list[str] = []
        self.files: dict[str, list[dict[str, Any]]] = {}
        self.crashed: BaseException | None = None
        self._queue: queue.Queue[CheckpointJob | None] = queue.Queue()
        self._cond = threading.Condition()
        self._stop = False
        self._duck = Duck()
        self._thread = threading.Thread(target=self._run, name="rwmagic-checkpoint",
                                        daemon=True)
        self._thread.start()

    def start_from(self, manifest: Manifest | None) -> None:
        """Continue the file lists of a recovered checkpoint."""
        if manifest is not None:
            self.files = {t: list(info["files"]) for t, info in manifest.tables.items()}
            self.durable_epoch = manifest.epoch

    def submit(self, job: CheckpointJob) -> None:
        """Queue a checkpoint; returns at once."""
        self._queue.put(job)

    def pending(self) -> int:
        """Checkpoints queued or being written."""
        return self._queue.qsize()

    def wait_durable(self, epoch: int, timeout: float = 60.0) -> bool:
        """Block until the checkpoint of `epoch` (or a later one) is durable."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self.durable_epoch < epoch and self.crashed is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return self.durable_epoch >= epoch

    def stop(self) -> None:
        """Finish queued checkpoints and stop."""
        self._queue.put(None)
        self._thread.join(timeout=30)

    def abandon(self) -> None:
        """Stop without finishing (a crash): once this returns, nothing more is written,
        as after a process death (a later engine may already own the location)."""
        self._stop = True
        self._queue.put(None)
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=30)

    def _alive(self) -> None:
        """Die before the next write if the engine was abandoned meanwhile."""
        if self._stop:
            raise Crashed("abandoned")

    def _run(self) -> None:
        """Write checkpoints in order; those queued behind a slow one are merged into one.

        While storage fails, the pending checkpoint retries with backoff and absorbs every
        checkpoint queued meanwhile: the first one that lands covers everything.
        """
        backlog: list[CheckpointJob] = []
        stopping = False
        while True:
            if not backlog:
                first = None if stopping else self._queue.get()
                if first is None or self._stop:
                    return
                backlog.append(first)
            stopping = self._drain(backlog) or stopping
            job = self._take(backlog)
            delay = 0.05
            while not self._stop:
                try:
                    self._write(job)
                    break
                except Crashed as err:
                    self.crashed = err
                    with self._cond:
                        self._cond.notify_all()
                    return
                except Exception as err:  # noqa: BLE001 - storage trouble: retry with backoff
                    self.lag_errors.append(f"epoch {job.epoch}: {err}")
                    time.sleep(delay)
                    delay = min(delay * 2, 2.0)
                    stopping = self._drain(backlog) or stopping
                    job = self._take(backlog, job)

    def _drain(self, backlog: list[CheckpointJob]) -> bool:
        """Move queued checkpoints to `backlog`; True when `stop()` was asked for."""
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                return False
            if job is None:
                return True
            backlog.append(job)

    def _take(self, backlog: list[CheckpointJob],
              job: CheckpointJob | None = None) -> CheckpointJob:
        """The front of the backlog, merged with the checkpoints after it while they merge."""
        if job is None:
            job = backlog.pop(0)
        while backlog:
            merged = merge_jobs(self._duck, job, backlog[0])
            if merged is None:
                break
            job = merged
            backlog.pop(0)
        return job

    def _write(self, job: CheckpointJob) -> None:
        files = {t: list(v) for t, v in self.files.items() if t in job.tables}
        written = 0
        uploaded = 0
        for name, delta in job.changes.items():
            if isinstance(delta, LogRef):
                entry = {"kind": "log", "parts": delta.parts, "epoch": job.epoch,
                         "bytes": sum(p["bytes"] for p in delta.parts),
                         "rows": sum(p["rows"] for p in delta.parts)}
                files.setdefault(name, []).append(entry)
                continue
            if delta is None or delta.num_rows == 0:
                continue
            entry = self._upload(name, job.epoch, delta)
            written += entry["bytes"]
            uploaded += 1
            if uploaded == 1:
                self.crash_point("mid_upload")
            if not job.tables[name]["key"]:
                files[name] = [entry]
            else:
                files.setdefault(name, []).append(entry)
        self.crash_point("before_manifest")
        tables = {t: {**info, "files": files.get(t, [])} for t, info in job.tables.items()}
        manifest = Manifest(job.epoch, job.fingerprint, job.ddl, tables, job.sources,
                            job.sinks, time.time())
        body = manifest.to_bytes()
        self._alive()
        self.storage.write(manifest_path(job.epoch), body)
        self.crash_point("after_manifest")
        self.files = files
        self.history.append({"epoch": job.epoch, "bytes": written + len(body),
                             "files": uploaded,
                             "duration_ms": (time.perf_counter() - job.started) * 1000})
        del self.history[:-1000]
        self.on_history(self.history[-1])
        with self._cond:  # reported before anyone waiting for this epoch wakes up
            self.durable_epoch = job.epoch
            self._cond.notify_all()
        try:  # the checkpoint is committed: a failure from here on must not write it again
            self._alive()
            self.on_durable(manifest)
            self._collect_garbage()
            self._compact_piled(job)
        except Crashed:
            raise
        except Exception as err:  # noqa: BLE001 - housekeeping, retried after the next one
            self.lag_errors.append(f"epoch {job.epoch} (after commit): {err}")

    def _upload(self, name: str, epoch: int, table: pa.Table) -> dict[str, Any]:
        data = _ipc.encode(table)
        path = f"data/{name}/{epoch:020d}-{uuid.uuid4().hex[:8]}.arrow"
        self._alive()
        self.storage.write(path, data)
        return {"path": path, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data),
                "rows": table.num_rows, "epoch": epoch}

    def _compact_piled(self, job: CheckpointJob) -> None:
        """Compaction, after a checkpoint landed (off that checkpoint's path): merge the
        files of tables that have more than COMPACT_AFTER. The next manifest references the
        merged files; until then the old ones serve, and a crash leaves the merged ones as
        strays, removed at the next start. The bytes are reported as the checkpoint's
        `compaction_bytes`."""
        piled = [t for t, entries in self.files.items()
                 if t in job.tables and job.tables[t]["key"] and len(entries) > COMPACT_AFTER]
        written = 0
        for name in piled:
            self._alive()
            self.files[name] = self._compact(name, job, self.files[name])
            written += self.files[name][-1]["bytes"]
        if written:
            self.history[-1]["compaction_bytes"] = written

    def _compact(self, name: str, job: CheckpointJob,
                 entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Merge a table's files once they pile up: while the deltas are small next to the
        base, only the deltas (so a small epoch never rewrites the whole table); once they
        are not, everything into a new base."""
        key = job.tables[name]["key"]
        base, deltas = entries[0], entries[1:]
        if sum(e["bytes"] for e in deltas) < base["bytes"]:
            merged = newest_per_key(self._duck, read_table_files(self.storage, deltas), key)
            return [base, self._upload(name, job.epoch, merged)]
        rows = fold(self._duck, read_table_files(self.storage, entries), key)
        rows = rows.append_column("_deleted", pa.repeat(pa.scalar(False), rows.num_rows))
        return [self._upload(name, job.epoch, rows)]

    def _collect_garbage(self) -> None:
        epochs = list_manifests(self.storage)
        for e in epochs[:-self.retention]:
            self.storage.delete(manifest_path(e))
        remove_unreferenced(self.storage, leftovers=False)


def remove_unreferenced(storage: Storage, leftovers: bool = True) -> None:
    """Delete data files no manifest references and, with `leftovers` (only at start, when
    nothing is being written), the temporary files of writes a crash interrupted."""
    live: set[str] = set()
    for e in list_manifests(storage):
        try:
            data = storage.read(manifest_path(e))
        except FileNotFoundError:  # removed meanwhile; any other read failure stops the sweep
            continue
        try:
            m = Manifest.from_bytes(data)
        except Exception:  # noqa: BLE001 - a corrupt manifest keeps nothing alive
            continue
        for info in m.tables.values():
            live.update(path for entry in info["files"] for path, _ in entry_paths(entry))
    for rel in storage.list("data"):
        if rel not in live:
            storage.delete(rel)
    for prefix in ("manifests", "log") if leftovers else ():
        for rel in storage.list(prefix):
            if ".tmp-" in rel.rsplit("/", 1)[-1]:
                storage.delete(rel)
