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
import io
import json
import queue
import threading
import time
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.ipc as ipc

from kernel_engine._duck import Duck
from kernel_engine.errors import Error
from kernel_engine.state.storage import Storage

__all__ = ["CheckpointJob", "CheckpointWriter", "ChecksumError", "Crashed", "Manifest", "fold",
           "load_manifest", "read_table_files"]

COMPACT_AFTER = 8


class ChecksumError(Error):
    """A checkpoint file does not match the checksum its manifest recorded."""


class Crashed(Exception):  # noqa: N818 - a simulated process death, not an error
    """Raised at an armed crash point: the engine dies as a process would."""


@dataclass
class CheckpointJob:
    """What one checkpoint barrier hands to the writer."""

    epoch: int
    changes: dict[str, pa.Table]
    tables: dict[str, dict[str, Any]]
    sources: dict[str, Any]
    ddl: list[str]
    fingerprint: str
    started: float = field(default_factory=time.perf_counter)


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


def _encode(table: pa.Table) -> bytes:
    """An Arrow IPC file, LZ4-compressed (several times faster to write than Parquet)."""
    sink = io.BytesIO()
    options = ipc.IpcWriteOptions(compression="lz4")
    with ipc.new_file(sink, table.schema, options=options) as writer:
        writer.write_table(table)
    return sink.getvalue()


def fold(duck: Duck, parts: list[pa.Table], key: list[str]) -> pa.Table:
    """The current rows from base + delta files (later files win; `_deleted` drops)."""
    if not parts:
        return pa.table({})
    if not key:
        last = parts[-1]
        return last.drop_columns(["_deleted"])
    tagged = [p.append_column("_file", pa.repeat(pa.scalar(i, pa.int64()), p.num_rows))
              for i, p in enumerate(parts)]
    schema = tagged[0].schema
    both = pa.concat_tables([t.cast(schema) for t in tagged])
    keys = ", ".join('"' + k.replace('"', '""') + '"' for k in key)
    return duck.arrow(
        f"SELECT * EXCLUDE (_file, _rn, _deleted) FROM (SELECT *, row_number() OVER "
        f"(PARTITION BY {keys} ORDER BY _file DESC) AS _rn FROM _a) WHERE _rn = 1 "
        f"AND NOT _deleted", _a=both)


def read_table_files(storage: Storage, files: list[dict[str, Any]]) -> list[pa.Table]:
    """Read and verify a state table's files; ValueError on a checksum mismatch."""
    out = []
    for entry in files:
        data = storage.read(entry["path"])
        if hashlib.sha256(data).hexdigest() != entry["sha256"]:
            raise ValueError(f"checksum mismatch in {entry['path']}")
        out.append(ipc.open_file(io.BytesIO(data)).read_all())
    return out


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
                        if storage.read_size(entry["path"]) != entry["bytes"]:
                            raise ValueError(f"{entry['path']} has the wrong size")
            return manifest
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
        """Stop without finishing (a crash)."""
        self._stop = True
        self._queue.put(None)

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is None or self._stop:
                return
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

    def _write(self, job: CheckpointJob) -> None:
        files = {t: list(v) for t, v in self.files.items() if t in job.tables}
        written = 0
        uploaded = 0
        for name, delta in job.changes.items():
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
                if len(files[name]) > COMPACT_AFTER:
                    files[name] = [self._compact(name, job, files[name])]
        self.crash_point("before_manifest")
        tables = {t: {**info, "files": files.get(t, [])} for t, info in job.tables.items()}
        manifest = Manifest(job.epoch, job.fingerprint, job.ddl, tables, job.sources, {},
                            time.time())
        body = manifest.to_bytes()
        self.storage.write(manifest_path(job.epoch), body)
        self.crash_point("after_manifest")
        self.files = files
        self.history.append({"epoch": job.epoch, "bytes": written + len(body),
                             "files": uploaded,
                             "duration_ms": (time.perf_counter() - job.started) * 1000})
        del self.history[:-1000]
        with self._cond:  # reported before anyone waiting for this epoch wakes up
            self.durable_epoch = job.epoch
            self._cond.notify_all()
        self.on_durable(manifest)
        self._collect_garbage()

    def _upload(self, name: str, epoch: int, table: pa.Table) -> dict[str, Any]:
        data = _encode(table)
        path = f"data/{name}/{epoch:020d}-{uuid.uuid4().hex[:8]}.arrow"
        self.storage.write(path, data)
        return {"path": path, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data),
                "rows": table.num_rows, "epoch": epoch}

    def _compact(self, name: str, job: CheckpointJob,
                 entries: list[dict[str, Any]]) -> dict[str, Any]:
        parts = read_table_files(self.storage, entries)
        rows = fold(self._duck, parts, job.tables[name]["key"])
        rows = rows.append_column("_deleted", pa.repeat(pa.scalar(False), rows.num_rows))
        return self._upload(name, job.epoch, rows)

    def _collect_garbage(self) -> None:
        epochs = list_manifests(self.storage)
        for e in epochs[:-self.retention]:
            self.storage.delete(manifest_path(e))
        remove_unreferenced(self.storage)


def remove_unreferenced(storage: Storage) -> None:
    """Delete data files no manifest references (and temporary leftovers)."""
    live: set[str] = set()
    for e in list_manifests(storage):
        try:
            m = Manifest.from_bytes(storage.read(manifest_path(e)))
        except Exception:  # noqa: BLE001 - a corrupt manifest keeps nothing alive
            continue
        for info in m.tables.values():
            live.update(entry["path"] for entry in info["files"])
    for rel in storage.list("data"):
        if rel not in live:
            storage.delete(rel)
