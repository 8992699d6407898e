"""Durability benchmark: what checkpoints cost, in one run, side by side.

Uses the public API (``kernel_engine.connect``, ``execute``, ``insert``) plus the checkpoint
writer's ``history`` and the engine's ``progress``. Figures (see ``bench/README.md``,
"Durability"):

a. throughput of the article's user-spend workload (``RW_BENCH_EVENTS`` events, default 2M,
   100k users, then FLUSH) in memory, with a local folder and with S3 (moto's server on
   loopback), and the ratios to memory; fed from a replayable source (a Python source over
   the events, as a Kafka topic would be) with 1 s and 100 ms barriers, and by 10k-row
   ``db.insert`` statements (each durably logged before it returns);
b. checkpoint size: with 1,000,000 keys in state, epochs that each change 100 keys (and the
   background compaction, reported apart);
c. recovery time: ``connect()`` to a local folder and to S3 holding 1,000,000 keys;
d. barrier latency p99 while checkpointing: paced inserts over the 1,000,000-key state.

Run with ``python bench/bench_durable.py`` (``RW_BENCH_EVENTS=200000`` for a quick run,
which also caps the key count of b-d; ``RW_BENCH_ONLY=throughput,size`` for some sections).
All figures go to ``bench/results/durable.json``.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from bench_core import (
    BATCH_ROWS,
    CREATE_TABLE,
    CREATE_USER_SPEND,
    EVENTS,
    SEED,
    USER_SPEND,
    Report,
    floor_summary,
    make_events,
    run_config,
    same_summary,
    split,
    stream_batches,
    with_distinct_users,
)

import kernel_engine

__all__ = ["main"]

RESULTS_PATH = Path(__file__).resolve().parent / "results" / "durable.json"
REPEATS = 3  # (a): best of, interleaved memory / local / S3
KEYS = min(1_000_000, EVENTS)  # (b)-(d)
SMALL_EPOCH_KEYS = 100
SMALL_EPOCHS = 20
BARRIER_INTERVAL_MS = 1000
PACED_SECONDS = 15.0
PACED_BATCHES_PER_S = 5
RECOVERIES = 3
# RW_BENCH_ONLY=throughput,size runs just those sections
ONLY = {s for s in os.environ.get("RW_BENCH_ONLY", "").split(",") if s}

LOCAL_RATIO_TARGET = 0.85
SMALL_EPOCH_TARGET_BYTES = 100 * 1024
RECOVERY_TARGET_S = {"local": 2.0, "s3": 5.0}
LATENCY_TARGET_MS = BARRIER_INTERVAL_MS + 200

Location = tuple[str | None, dict[str, Any] | None]


def ok(passed: bool) -> str:
    """``OK`` or ``MISS`` for a target check."""
    return "OK" if passed else "MISS"


# --- S3 on loopback -------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def answers(endpoint: str) -> bool:
    """Whether an HTTP server answers at ``endpoint``."""
    try:
        with urllib.request.urlopen(endpoint + "/", timeout=1):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


@contextlib.contextmanager
def moto_server() -> Iterator[dict[str, Any]]:
    """moto's S3 server on a free loopback port; yields storage options for its bucket
    `bench` (created with a plain PUT: moto does not check signatures)."""
    endpoint = f"http://127.0.0.1:{free_port()}"
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                             endpoint.rsplit(":", 1)[1]],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not answers(endpoint):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"moto server did not start on {endpoint}")
            time.sleep(0.1)
        urllib.request.urlopen(urllib.request.Request(f"{endpoint}/bench", method="PUT"),
                               timeout=10).close()
        yield {"key": "testing", "secret": "testing", "endpoint_url": endpoint}
    finally:
        proc.terminate()
        proc.wait(timeout=10)


class Places:
    """Fresh checkpoint locations: a local folder or an S3 prefix per call."""

    def __init__(self, root: Path, s3_options: dict[str, Any]) -> None:
        self.root = root
        self.s3_options = s3_options
        self.million: dict[str, Location] = {}  # the KEYS-key states of (b) and (c)

    def new(self, kind: str) -> Location:
        """A new, empty location of ``kind`` (memory, local or s3)."""
        name = uuid.uuid4().hex[:8]
        if kind == "memory":
            return None, None
        if kind == "local":
            return str(self.root / name), None
        return f"s3://bench/{name}", self.s3_options


def connect(where: Location, **kwargs: Any) -> kernel_engine.Connection:
    """A connection to a location (recovering what it holds)."""
    location, options = where
    return kernel_engine.connect(location, storage_options=options, **kwargs)


def writer(db: kernel_engine.Connection) -> Any:
    """The checkpoint writer of a connection with storage."""
    assert db.durability is not None
    return db.durability.writer


# --- a: throughput --------------------------------------------------------------------------


def run_workload(where: Location, batches: list[pa.Table]) -> dict[str, Any]:
    """The user-spend workload into a fresh location: seconds, MV summary, checkpoints."""
    db = connect(where, barrier_interval_ms=BARRIER_INTERVAL_MS)
    try:
        db.execute(CREATE_TABLE)
        db.execute(CREATE_USER_SPEND)
        insert_s, total_s = stream_batches(db, batches)
        row = db.execute(USER_SPEND.summary.format(rel="cons_user_spend")).fetchall()[0]
        history = list(writer(db).history) if db.durability is not None else []
        latencies = [ms for _, ms in db.progress.barrier_latency_ms]
    finally:
        db.close()
    return {"insert_s": insert_s, "total_s": total_s, "row": row, "history": history,
            "latencies": latencies}


def run_source_workload(where: Location, events: pa.Table,
                        barrier_ms: int = BARRIER_INTERVAL_MS) -> dict[str, Any]:
    """The user-spend workload read from a replayable source (the article: "in production
    this would be a source connected to Kafka"): a Python source replaying the events, so
    no DML log is written and what storage adds is the checkpoints alone. Seconds from
    CREATE MATERIALIZED VIEW until the source is drained and FLUSH returned."""
    db = connect(where, barrier_interval_ms=barrier_ms)
    try:
        db.create_source("cons_events", events)
        started = time.perf_counter()
        db.execute(CREATE_USER_SPEND)
        while db.progress.sources.get("cons_events", {}).get("rows", 0) < events.num_rows:
            time.sleep(0.001)
        db.execute("FLUSH")
        total_s = time.perf_counter() - started
        row = db.execute(USER_SPEND.summary.format(rel="cons_user_spend")).fetchall()[0]
        history = list(writer(db).history) if db.durability is not None else []
    finally:
        db.close()
    return {"insert_s": 0.0, "total_s": total_s, "row": row, "history": history}


def bench_throughput(report: Report, places: Places) -> None:
    """Figure a: the same workload in memory, on a local folder and on S3, best of N, fed
    three ways: from a replayable source with 1 s barriers (the issue's checkpoint-overhead
    target) and with 100 ms barriers (many checkpoints per run), and by ``db.insert``
    statements, each durably logged before it returns when storage is configured."""
    events = make_events(EVENTS, first_id=1, seed=SEED)
    batches = split(events, BATCH_ROWS)
    _, floor_row = floor_summary(events, USER_SPEND)
    feeds = {
        "source": lambda where: run_source_workload(where, events),
        "source_100ms": lambda where: run_source_workload(where, events, barrier_ms=100),
        "dml": lambda where: run_workload(where, batches),
    }
    for feed, run_one in feeds.items():
        best: dict[str, dict[str, Any]] = {}
        for _ in range(REPEATS):
            for kind in ("memory", "local", "s3"):
                run = run_one(places.new(kind))
                if kind not in best or run["total_s"] < best[kind]["total_s"]:
                    best[kind] = run
        for kind, run in best.items():
            eps = EVENTS / run["total_s"]
            note = (f"best of {REPEATS}; inserts {run['insert_s']:.2f} s + FLUSH"
                    if feed == "dml" else f"best of {REPEATS}")
            report.add(f"throughput_{feed}_{kind}_s", run["total_s"], "s", note)
            report.add(f"throughput_{feed}_{kind}_events_per_s", eps, "ev/s")
            if run["history"]:
                sizes = [h["bytes"] for h in run["history"]]
                report.add(f"throughput_{feed}_{kind}_checkpoints", len(sizes), "",
                           f"{sum(sizes) / 2**20:.1f} MB in all")
            matches = same_summary(run["row"], floor_row)
            report.add(f"throughput_{feed}_{kind}_check", "OK" if matches else "MISMATCH", "",
                       "" if matches else f"{run['row']} vs duckdb {floor_row}")
        for kind in ("local", "s3"):
            ratio = best["memory"]["total_s"] / best[kind]["total_s"]
            report.add(f"throughput_{feed}_ratio_{kind}_vs_memory", ratio, "x",
                       "events/s ratio")
        if feed == "source":
            ratio = best["memory"]["total_s"] / best["local"]["total_s"]
            report.add("throughput_local_target", ok(ratio >= LOCAL_RATIO_TARGET), "",
                       f">= {LOCAL_RATIO_TARGET:.0%} of memory (source-fed, 1 s barriers)")


# --- b: checkpoint size ---------------------------------------------------------------------


def files(folder: Path) -> dict[str, int]:
    """Size of every file under a folder, by relative path."""
    return {str(p.relative_to(folder)): p.stat().st_size for p in folder.rglob("*")
            if p.is_file()}


def load_keys(db: kernel_engine.Connection, keys: int) -> None:
    """``keys`` events with distinct users (one key each), then FLUSH."""
    events = with_distinct_users(make_events(keys, first_id=1, seed=SEED + 2))
    db.execute(CREATE_TABLE)
    db.execute(CREATE_USER_SPEND)
    stream_batches(db, split(events, BATCH_ROWS))


def touch_keys(db: kernel_engine.Connection, rng: np.random.Generator, rows: int,
               first_id: int) -> None:
    """Insert ``rows`` events for existing, distinct users."""
    events = make_events(rows, first_id=first_id, seed=int(rng.integers(1 << 30)))
    users = pa.array(rng.choice(KEYS, rows, replace=False).astype(np.int32) + 1)
    db.insert("cons_events", events.set_column(1, "user_id", users))


def bench_checkpoint_size(report: Report, places: Places) -> None:
    """Figure b: a 1M-key state, then epochs that change 100 keys each (local folder)."""
    where = places.million["local"] = places.new("local")
    folder = str(where[0])
    db = connect(where, barrier_interval_ms=3_600_000)  # epochs end at FLUSH
    try:
        started = time.perf_counter()
        load_keys(db, KEYS)
        report.add("size_load_s", time.perf_counter() - started, "s", f"{KEYS:,} keys + FLUSH")
        report.add("size_load_checkpoint_mb", writer(db).history[-1]["bytes"] / 2**20, "MB")
        rng = np.random.default_rng(SEED + 4)
        checkpoint, on_disk = [], []
        for i in range(SMALL_EPOCHS):
            before = files(Path(folder))
            touch_keys(db, rng, SMALL_EPOCH_KEYS, KEYS + 1 + i * SMALL_EPOCH_KEYS)
            db.execute("FLUSH")
            after = files(Path(folder))
            logged = sum(size for path, size in after.items()
                         if path.startswith("log/") and path not in before)
            checkpoint.append(writer(db).history[-1]["bytes"] + logged)
            on_disk.append(sum(size for path, size in after.items()
                               if before.get(path) != size))
        compaction = [h.get("compaction_bytes", 0) for h in writer(db).history[-SMALL_EPOCHS:]]
    finally:
        db.close()
    for name, sizes in (("checkpoint", checkpoint), ("on_disk", on_disk)):
        report.add(f"size_{name}_median_kb", statistics.median(sizes) / 1024, "KB",
                   f"{SMALL_EPOCHS} epochs of {SMALL_EPOCH_KEYS} keys")
        report.add(f"size_{name}_max_kb", max(sizes) / 1024, "KB")
        over = sum(s >= SMALL_EPOCH_TARGET_BYTES for s in sizes)
        report.add(f"size_{name}_epochs_over_100kb", over, "", f"of {SMALL_EPOCHS}")
    report.add("size_compaction_kb", sum(compaction) / 1024, "KB",
               f"background, in {sum(1 for c in compaction if c)} of {SMALL_EPOCHS} epochs, "
               f"largest {max(compaction) / 1024:.0f} KB")
    report.add("size_checkpoint_bytes", checkpoint, "",
               "data files + manifest + DML log entry, per epoch")
    report.add("size_on_disk_bytes", on_disk, "", "every file written in the epoch's window")
    report.add("size_target", ok(max(checkpoint) < SMALL_EPOCH_TARGET_BYTES), "",
               "every 100-key epoch's checkpoint < 100 KB")


# --- c: recovery ----------------------------------------------------------------------------


def time_recovery(where: Location) -> tuple[float, int]:
    """Seconds for ``connect()`` to recover a location, and the MV's row count after."""
    started = time.perf_counter()
    db = connect(where, barrier_interval_ms=BARRIER_INTERVAL_MS)
    elapsed = time.perf_counter() - started
    try:
        rows = int(db.execute("SELECT count(*) FROM cons_user_spend").fetchall()[0][0])
    finally:
        db.close()
    return elapsed, rows


def bench_recovery(report: Report, places: Places) -> None:
    """Figure c: connect() to the 1M-key local folder of (b), and to S3 loaded the same way."""
    s3 = places.million["s3"] = places.new("s3")
    db = connect(s3, barrier_interval_ms=BARRIER_INTERVAL_MS)
    try:
        started = time.perf_counter()
        load_keys(db, KEYS)
        report.add("recovery_s3_load_s", time.perf_counter() - started, "s", f"{KEYS:,} keys")
    finally:
        db.close()
    for kind, where in places.million.items():
        runs = [time_recovery(where) for _ in range(RECOVERIES)]
        seconds = sorted(s for s, _ in runs)
        target = RECOVERY_TARGET_S[kind]
        report.add(f"recovery_{kind}_median_s", statistics.median(seconds), "s",
                   f"{RECOVERIES} runs, best {seconds[0]:.2f} s")
        report.add(f"recovery_{kind}_target", ok(statistics.median(seconds) < target), "",
                   f"< {target:g} s")
        rows = {r for _, r in runs}
        report.add(f"recovery_{kind}_check", "OK" if rows == {KEYS} else "MISMATCH", "",
                   f"MV rows {sorted(rows)}")


# --- d: barrier latency while checkpointing -------------------------------------------------


def paced_run(where: Location) -> tuple[list[float], list[float]]:
    """Paced inserts over the recovered 1M-key state; barrier latencies and checkpoint
    durations (ms) of the epochs during the run."""
    db = connect(where, barrier_interval_ms=BARRIER_INTERVAL_MS)
    rng = np.random.default_rng(SEED + 5)
    try:
        if where[0] is None:
            load_keys(db, KEYS)
        first_epoch = db.progress.current_epoch
        started = time.perf_counter()
        count = int(PACED_SECONDS * PACED_BATCHES_PER_S)
        for i in range(count):
            time.sleep(max(0.0, started + i / PACED_BATCHES_PER_S - time.perf_counter()))
            touch_keys(db, rng, BATCH_ROWS, 10 * KEYS + i * BATCH_ROWS)
        db.execute("FLUSH")
        latencies = [ms for epoch, ms in db.progress.barrier_latency_ms if epoch >= first_epoch]
        durations = ([h["duration_ms"] for h in writer(db).history if h["epoch"] >= first_epoch]
                     if db.durability is not None else [])
    finally:
        db.close()
    return latencies, durations


def bench_barrier_latency(report: Report, places: Places) -> None:
    """Figure d: p99 barrier latency with checkpoints every barrier (vs none in memory)."""
    for kind, where in (("memory", places.new("memory")), *places.million.items()):
        latencies, durations = paced_run(where)
        p99 = float(np.percentile(latencies, 99))
        note = (f"{len(latencies)} barriers, {PACED_BATCHES_PER_S} x {BATCH_ROWS:,} rows/s "
                f"over {KEYS:,} keys")
        report.add(f"barrier_{kind}_p99_ms", p99, "ms", note)
        report.add(f"barrier_{kind}_max_ms", max(latencies), "ms")
        if durations:
            report.add(f"barrier_{kind}_checkpoint_p50_ms", statistics.median(durations), "ms",
                       "barrier to manifest landed (asynchronous)")
        report.add(f"barrier_{kind}_target", ok(p99 < LATENCY_TARGET_MS), "",
                   f"p99 < {LATENCY_TARGET_MS} ms")


# --- main -----------------------------------------------------------------------------------


def main() -> int:
    """Run every figure, print them and write ``bench/results/durable.json``."""
    config = {**run_config(), "keys": KEYS, "small_epoch_keys": SMALL_EPOCH_KEYS,
              "repeats": REPEATS}
    print(f"rwmagic durability bench: {EVENTS:,} events, {KEYS:,} keys, "
          f"{config['cpu_count']} cores", flush=True)
    report = Report()
    root = Path(tempfile.mkdtemp(prefix="rw-durable-"))
    try:
        with moto_server() as s3_options:
            places = Places(root, s3_options)
            sections = {"throughput": bench_throughput, "size": bench_checkpoint_size,
                        "recovery": bench_recovery, "barrier": bench_barrier_latency}
            for name, fn in sections.items():
                if not ONLY or name in ONLY:
                    report.run(name, functools.partial(fn, report, places))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    report.write(RESULTS_PATH, config)
    return 1 if report.failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
