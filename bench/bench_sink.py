"""Sink benchmark: an upsert sink of 100,000 keys into PostgreSQL on loopback.

A table `kv (k INT PRIMARY KEY, v BIGINT, ts DOUBLE)` with 100,000 keys feeds an upsert
sink (exactly-once, checkpoints in a local folder) into a PostgreSQL table of the same
shape, on a throwaway cluster started by `rwmagic.services.start_postgres` (fsync on, as a
real server; `track_commit_timestamp` on to read when each row committed). Figures (see
`bench/README.md`, "Sinks"):

a. initial load: the 100,000 keys in one epoch; the sink's transaction time and rows/s;
b. throughput: epochs that each change a random 10% of the keys (10,000 rows), driven as
   fast as `db.insert` + `FLUSH` go (FLUSH waits for the sink); rows/s inside the sink's
   PostgreSQL transactions, and end to end (insert, barrier, durable checkpoint, delivery);
c. latency: the same 10% batches paced at 5 per second with the default 1 s barrier (and
   with 200 ms barriers); per row, from just before `db.insert` to the commit timestamp of
   the PostgreSQL transaction that wrote it (p50, p99).

Run with `python bench/bench_sink.py` (`RW_BENCH_SINK_EPOCHS=10` for a quick run). Figures
go to `bench/results/sink.json`.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

import kernel_engine
from rwmagic.services import PostgresServer, start_postgres

__all__ = ["main"]

KEYS = 100_000
CHANGE = 0.10
EPOCHS = int(os.environ.get("RW_BENCH_SINK_EPOCHS", "30"))
PACED_PER_S = 5
PACED_SECONDS = 10.0
RESULTS = Path(__file__).resolve().parent / "results" / "sink.json"
ROWS_PER_S_TARGET = 100_000


def batch(rng: np.random.Generator, keys: np.ndarray, version: int) -> pa.Table:
    """Rows for `keys` with value `version` and the insert time (epoch seconds)."""
    return pa.table({"k": pa.array(keys, pa.int32()),
                     "v": pa.array(np.full(len(keys), version, np.int64)),
                     "ts": pa.array(np.full(len(keys), time.time()), pa.float64())})


def setup(pg: PostgresServer, folder: str, barrier_ms: int) -> tuple[Any, str]:
    """An engine with table kv and an upsert sink into a fresh target table."""
    table = f"kv_{int(time.time() * 1000) % 10**9}"
    with pg.connect() as conn:
        conn.execute(f"CREATE TABLE {table} (k INT PRIMARY KEY, v BIGINT, ts DOUBLE PRECISION)")
    db = kernel_engine.connect(folder, barrier_interval_ms=barrier_ms)
    db.execute("CREATE TABLE kv (k INT PRIMARY KEY, v BIGINT, ts DOUBLE)")
    db.execute(f"CREATE SINK s FROM kv WITH ({pg.sink_options(table)}, type = 'upsert', "
               "primary_key = 'k')")
    return db, table


def sink_status(db: Any) -> dict[str, Any]:
    status: dict[str, Any] = dict(db.progress.sinks["s"])
    return status


def bench_load_and_throughput(pg: PostgresServer, out: dict[str, Any]) -> None:
    rng = np.random.default_rng(1)
    with tempfile.TemporaryDirectory() as folder:
        db, table = setup(pg, folder, 1000)
        try:
            db.insert("kv", batch(rng, np.arange(KEYS), 0))
            db.execute("FLUSH")
            first = sink_status(db)
            out["load_rows"] = first["rows"]
            out["load_txn_s"] = first["apply_seconds"]
            out["load_rows_per_s"] = round(first["rows"] / first["apply_seconds"])
            n = int(KEYS * CHANGE)
            started = time.perf_counter()
            for epoch in range(1, EPOCHS + 1):
                db.insert("kv", batch(rng, rng.choice(KEYS, n, replace=False), epoch))
                db.execute("FLUSH")
            wall = time.perf_counter() - started
            after = sink_status(db)
            rows = after["rows"] - first["rows"]
            txn = after["apply_seconds"] - first["apply_seconds"]
            out["epochs"] = EPOCHS
            out["rows_per_epoch"] = n
            out["delivered_rows"] = rows
            out["deliveries"] = after["deliveries"] - first["deliveries"]
            out["sink_txn_s"] = round(txn, 3)
            out["sink_rows_per_s"] = round(rows / txn)
            out["sink_rows_per_s_target"] = "OK" if rows / txn >= ROWS_PER_S_TARGET else "MISS"
            out["end_to_end_s"] = round(wall, 3)
            out["end_to_end_rows_per_s"] = round(rows / wall)
            with pg.connect() as conn:
                got = conn.execute(f"SELECT count(*), sum(v) FROM {table}").fetchone()
            want = db.execute("SELECT count(*), sum(v) FROM kv").fetchone()
            out["check"] = "OK" if tuple(got) == tuple(want) else f"MISMATCH {got} != {want}"
        finally:
            db.close()


def bench_latency(pg: PostgresServer, out: dict[str, Any], barrier_ms: int) -> None:
    rng = np.random.default_rng(2)
    with tempfile.TemporaryDirectory() as folder:
        db, table = setup(pg, folder, barrier_ms)
        try:
            db.insert("kv", batch(rng, np.arange(KEYS), 0))
            db.execute("FLUSH")
            n = int(KEYS * CHANGE)
            start = time.perf_counter()
            version = 0
            while time.perf_counter() - start < PACED_SECONDS:
                version += 1
                db.insert("kv", batch(rng, rng.choice(KEYS, n, replace=False), version))
                time.sleep(max(0.0, start + version / PACED_PER_S - time.perf_counter()))
            db.execute("FLUSH")
            with pg.connect() as conn:
                lat = [r[0] for r in conn.execute(
                    f"SELECT (extract(epoch FROM pg_xact_commit_timestamp(xmin)) - ts) * 1000 "
                    f"FROM {table} WHERE v > 0").fetchall()]
            qs = statistics.quantiles(lat, n=100)
            key = f"latency_{barrier_ms}ms_barrier"
            out[f"{key}_rows_measured"] = len(lat)
            out[f"{key}_p50_ms"] = round(qs[49], 1)
            out[f"{key}_p99_ms"] = round(qs[98], 1)
            out[f"{key}_max_ms"] = round(max(lat), 1)
        finally:
            db.close()


def main() -> int:
    out: dict[str, Any] = {"keys": KEYS, "change_per_epoch": CHANGE, "cores": os.cpu_count(),
                           "python": platform.python_version()}
    pg = start_postgres(durable=True, settings={"track_commit_timestamp": "on"})
    failed = False
    try:
        for name, run in (("throughput", lambda: bench_load_and_throughput(pg, out)),
                          ("latency_1000", lambda: bench_latency(pg, out, 1000)),
                          ("latency_200", lambda: bench_latency(pg, out, 200))):
            try:
                run()
            except Exception as err:  # noqa: BLE001 - report, go on with the next section
                failed = True
                out[f"{name}_FAILED"] = f"{type(err).__name__}: {err}"
    finally:
        pg.stop()
    for key, value in out.items():
        print(f"{key:45s} {value}")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
