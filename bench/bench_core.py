"""Core benchmark: kernel_engine materialized views against the DuckDB one-shot floor.

Uses only the public API (``kernel_engine.connect``, ``execute``, ``insert``, ``fetchall``).
Figures, side by side in one run (see ``bench/README.md`` for what each one means):

a. 2M seeded events, pre-split into 10k-row Arrow tables (not timed);
b. DuckDB answering each query once over all events (best of 3): the compute floor;
c. the article's user-spend MV: insert every batch, then FLUSH; events/s, ratio to the floor;
d. the same for the article's TUMBLE MV (example 4);
e. visibility latency of small batches inserted at ~20 per second (p50/p99);
f. ``INSERT ... VALUES`` throughput with 1000-row statements;
g. RSS growth of the user-spend MV at 10k / 100k / 1M keys, each in a fresh process.

Run with ``make bench`` (``RW_BENCH_EVENTS=200000 make bench`` for a quick run).
All figures are written to ``bench/results/core.json``.
"""

from __future__ import annotations

import datetime as dt
import functools
import gc
import json
import math
import os
import platform
import subprocess
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import duckdb
import numpy as np
import psutil
import pyarrow as pa

import kernel_engine

__all__ = ["main"]

EVENTS = int(os.environ.get("RW_BENCH_EVENTS", "2000000"))
BATCH_ROWS = 10_000
USERS = 100_000
SEED = 20260401
REFUND_SHARE = 0.10
START_TS = np.datetime64("2026-04-01T09:00:00", "us")
SPAN_US = 2 * 3600 * 1_000_000
FLOOR_REPEATS = 3

BARRIER_INTERVAL_MS = 1000  # the engine's default; the visibility target is this + 200 ms
THROUGHPUT_TARGET_EPS = 2_000_000
FLOOR_RATIO_TARGET = 20.0
LATENCY_BATCH_ROWS = 100
LATENCY_RATE_HZ = 20
LATENCY_SECONDS = 5.0
LATENCY_POLL_S = 0.005
LATENCY_DRAIN_S = 10.0
VALUES_ROWS = 1_000
VALUES_STATEMENTS = 20
VALUES_TARGET_RPS = 50_000
RSS_KEYS = (10_000, 100_000, 1_000_000)
RSS_CHILD_TIMEOUT_S = 1800

SCRIPT = Path(__file__).resolve()
RESULTS_PATH = SCRIPT.parent / "results" / "core.json"
RSS_CHILD_FLAG = "--rss-child"

SCHEMA = pa.schema(
    [
        ("event_id", pa.int64()),
        ("user_id", pa.int32()),
        ("event_type", pa.string()),
        ("amount", pa.float64()),
        ("event_ts", pa.timestamp("us")),
    ]
)
CREATE_TABLE = (
    "CREATE TABLE cons_events (event_id BIGINT, user_id INT, event_type VARCHAR, "
    "amount DOUBLE PRECISION, event_ts TIMESTAMP)"
)
USER_SPEND_QUERY = """
SELECT
    user_id,
    COUNT(*) FILTER (WHERE amount > 0) AS purchase_count,
    COUNT(*) FILTER (WHERE amount < 0) AS refund_count,
    SUM(amount)                         AS net_spend
FROM {source}
GROUP BY user_id"""
CREATE_USER_SPEND = "CREATE MATERIALIZED VIEW cons_user_spend AS" + USER_SPEND_QUERY.format(
    source="cons_events"
)
CREATE_WINDOW_COUNTS = """CREATE MATERIALIZED VIEW cons_event_window_counts AS
SELECT
    window_start,
    window_end,
    event_type,
    COUNT(*)    AS event_count,
    SUM(amount) AS total_amount
FROM TUMBLE(cons_events, event_ts, INTERVAL '1' MINUTE)
GROUP BY window_start, window_end, event_type"""
DUCKDB_WINDOW_COUNTS = """
SELECT
    time_bucket(INTERVAL '1 minute', event_ts, TIMESTAMP '1970-01-01') AS window_start,
    time_bucket(INTERVAL '1 minute', event_ts, TIMESTAMP '1970-01-01')
        + INTERVAL '1 minute' AS window_end,
    event_type,
    COUNT(*)    AS event_count,
    SUM(amount) AS total_amount
FROM ev
GROUP BY 1, 2, 3"""
VISIBLE_EVENTS = "SELECT sum(purchase_count + refund_count) FROM cons_user_spend"


class Result(Protocol):
    """The part of a kernel_engine result the benchmark reads."""

    def fetchall(self) -> list[tuple[Any, ...]]: ...


class Database(Protocol):
    """The part of a kernel_engine connection the benchmark drives."""

    def execute(self, sql: str) -> Result: ...

    def insert(self, table: str, data: pa.Table) -> object: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class MvCase:
    """One materialized view measured against its DuckDB one-shot equivalent."""

    prefix: str
    mv_name: str
    create_mv: str
    floor_sql: str
    summary: str  # aggregate over the MV's rows; ``{rel}`` is the relation name


USER_SPEND = MvCase(
    prefix="user_spend",
    mv_name="cons_user_spend",
    create_mv=CREATE_USER_SPEND,
    floor_sql=USER_SPEND_QUERY.format(source="ev"),
    summary="SELECT count(*), sum(purchase_count), sum(refund_count), sum(net_spend) FROM {rel}",
)
WINDOW_COUNTS = MvCase(
    prefix="tumble",
    mv_name="cons_event_window_counts",
    create_mv=CREATE_WINDOW_COUNTS,
    floor_sql=DUCKDB_WINDOW_COUNTS,
    summary=(
        "SELECT count(*), sum(event_count), sum(total_amount), min(window_start), "
        "max(window_end) FROM {rel}"
    ),
)


@dataclass
class Report:
    """Collects figures, prints one line per figure and writes them as JSON."""

    figures: dict[str, Any] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)

    def add(self, name: str, value: Any, unit: str = "", note: str = "") -> None:
        """Record ``value`` under ``name`` and print it."""
        self.figures[name] = value
        print(f"{name:<40} {_fmt(value):>16} {unit:<8} {note}".rstrip(), flush=True)

    def run(self, section: str, body: Callable[[], None]) -> None:
        """Run one section; a failure is recorded and printed, and later sections still run."""
        try:
            body()
        except Exception as exc:  # a benchmark reports every section it can
            self.failures[section] = f"{type(exc).__name__}: {exc}"
            print(f"{section:<40} {'FAILED':>16}          {self.failures[section]}", flush=True)
            traceback.print_exc()

    def write(self, path: Path, config: dict[str, Any]) -> None:
        """Write config, figures and failures to ``path``."""
        path.parent.mkdir(parents=True, exist_ok=True)
        doc = {"config": config, "figures": self.figures, "failures": self.failures}
        path.write_text(json.dumps(doc, indent=2, default=str) + "\n")
        print(f"wrote {path}", flush=True)


def _fmt(value: Any) -> str:
    """Format a figure for the console."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3f}"


def _ok(passed: bool) -> str:
    """``OK`` or ``MISS`` for a target check."""
    return "OK" if passed else "MISS"


# --- data -------------------------------------------------------------------------------------


def make_events(n: int, first_id: int, seed: int) -> pa.Table:
    """``n`` seeded events with sequential ids from ``first_id``, ascending timestamps."""
    rng = np.random.default_rng(seed)
    refund = rng.random(n) < REFUND_SHARE
    amount = np.round(rng.uniform(1.0, 500.0, n), 2)
    offsets = np.sort(rng.integers(0, SPAN_US, n)).astype("timedelta64[us]")
    columns = [
        pa.array(np.arange(first_id, first_id + n, dtype=np.int64)),
        pa.array(rng.integers(1, USERS + 1, n, dtype=np.int32)),
        pa.array(["purchase", "refund"]).take(pa.array(refund.astype(np.int8))),
        pa.array(np.where(refund, -amount, amount)),
        pa.array(START_TS + offsets),
    ]
    return pa.Table.from_arrays(columns, schema=SCHEMA)


def with_distinct_users(events: pa.Table) -> pa.Table:
    """``events`` with ``user_id`` replaced by 1..n, so every row is its own key."""
    users = pa.array(np.arange(1, events.num_rows + 1, dtype=np.int32))
    return events.set_column(events.schema.get_field_index("user_id"), "user_id", users)


def split(events: pa.Table, rows: int) -> list[pa.Table]:
    """``events`` as separate tables of at most ``rows`` rows each."""
    batches = events.combine_chunks().to_batches(max_chunksize=rows)
    return [pa.Table.from_batches([batch]) for batch in batches]


def values_statement(events: pa.Table) -> str:
    """One ``INSERT INTO cons_events VALUES ...`` statement with ``events`` as literals."""
    rows = [
        f"({r['event_id']}, {r['user_id']}, '{r['event_type']}', {r['amount']!r}, "
        f"'{r['event_ts'].isoformat(sep=' ')}')"
        for r in events.to_pylist()
    ]
    return "INSERT INTO cons_events VALUES\n" + ",\n".join(rows)


# --- engine helpers ---------------------------------------------------------------------------


def open_db(create_mv: str) -> Database:
    """A fresh in-memory connection with ``cons_events`` and one materialized view."""
    db: Database = kernel_engine.connect()
    db.execute(CREATE_TABLE)
    db.execute(create_mv)
    return db


def close_db(db: Database) -> None:
    """Close ``db`` and collect garbage so the next section starts clean."""
    db.close()
    gc.collect()


def scalar(db: Database, sql: str) -> Any:
    """The single value returned by ``sql``."""
    return db.execute(sql).fetchall()[0][0]


def same_summary(engine: Sequence[Any], floor: Sequence[Any]) -> bool:
    """Whether two summary rows agree (numbers to a relative 1e-9, others exactly)."""
    if len(engine) != len(floor):
        return False
    for got, want in zip(engine, floor, strict=True):
        if isinstance(want, int | float) and got is not None:
            if not math.isclose(float(got), float(want), rel_tol=1e-9, abs_tol=1e-6):
                return False
        elif got != want:
            return False
    return True


# --- a/b/c/d: MV throughput against the DuckDB floor ------------------------------------------


def floor_summary(events: pa.Table, case: MvCase) -> tuple[float, tuple[Any, ...]]:
    """DuckDB's best-of-N time for ``case`` over ``events`` and the summary of its answer."""
    con = duckdb.connect()
    con.register("ev", events)
    best = math.inf
    result = pa.table({})
    for _ in range(FLOOR_REPEATS):
        started = time.perf_counter()
        result = con.sql(case.floor_sql).to_arrow_table()
        best = min(best, time.perf_counter() - started)
    con.register("floor_result", result)
    row = con.sql(case.summary.format(rel="floor_result")).fetchall()[0]
    con.close()
    return best, row


def stream_batches(db: Database, batches: Sequence[pa.Table]) -> tuple[float, float]:
    """Insert every batch then FLUSH; seconds until the last insert returned, and in total."""
    started = time.perf_counter()
    for batch in batches:
        db.insert("cons_events", batch)
    inserted = time.perf_counter()
    db.execute("FLUSH")
    return inserted - started, time.perf_counter() - started


def bench_mv(report: Report, case: MvCase, events: pa.Table, batches: Sequence[pa.Table]) -> None:
    """Figures b-d for one MV: DuckDB floor, engine throughput, ratio, correctness."""
    n = events.num_rows
    floor_s, floor_row = floor_summary(events, case)
    report.add(f"{case.prefix}_duckdb_s", floor_s, "s", f"best of {FLOOR_REPEATS}")
    report.add(f"{case.prefix}_duckdb_events_per_s", n / floor_s, "ev/s")
    db = open_db(case.create_mv)
    try:
        insert_s, total_s = stream_batches(db, batches)
        engine_row = db.execute(case.summary.format(rel=case.mv_name)).fetchall()[0]
    finally:
        close_db(db)
    eps, ratio = n / total_s, total_s / floor_s
    report.add(f"{case.prefix}_engine_insert_s", insert_s, "s", f"{len(batches)} db.insert calls")
    report.add(f"{case.prefix}_engine_total_s", total_s, "s", "inserts + FLUSH")
    report.add(f"{case.prefix}_engine_events_per_s", eps, "ev/s")
    report.add(f"{case.prefix}_ratio_vs_duckdb", ratio, "x", "engine_total_s / duckdb_s")
    target = eps >= THROUGHPUT_TARGET_EPS and ratio <= FLOOR_RATIO_TARGET
    report.add(f"{case.prefix}_target", _ok(target), "", ">= 2M ev/s and <= 20x DuckDB")
    matches = same_summary(engine_row, floor_row)
    note = "" if matches else f"engine {engine_row} vs duckdb {floor_row}"
    report.add(f"{case.prefix}_check", "OK" if matches else "MISMATCH", "", note)


# --- e: visibility latency --------------------------------------------------------------------


class VisibilityWatcher:
    """Polls the user-spend MV from a background thread and times when each batch shows up."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._pending: deque[tuple[int, float]] = deque()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="visibility-poller", daemon=True)
        self.latencies_s: list[float] = []
        self.error: BaseException | None = None

    def start(self) -> None:
        """Start polling."""
        self._thread.start()

    def expect(self, total_events: int, inserted_at: float) -> None:
        """A batch whose insert returned at ``inserted_at`` brings the total to ``total_events``."""
        with self._lock:
            self._pending.append((total_events, inserted_at))

    def finish(self, timeout_s: float) -> int:
        """Wait for every expected batch (up to ``timeout_s``), stop; return batches never seen."""
        deadline = time.perf_counter() + timeout_s
        while time.perf_counter() < deadline and self.error is None and self._pending_count():
            time.sleep(0.01)
        self._stop.set()
        self._thread.join()
        if self.error is not None:
            raise self.error
        return self._pending_count()

    def _pending_count(self) -> int:
        with self._lock:
            return len(self._pending)

    def _poll(self) -> None:
        try:
            while not self._stop.is_set():
                visible = int(scalar(self._db, VISIBLE_EVENTS) or 0)
                seen_at = time.perf_counter()
                with self._lock:
                    while self._pending and self._pending[0][0] <= visible:
                        self.latencies_s.append(seen_at - self._pending.popleft()[1])
                time.sleep(LATENCY_POLL_S)
        except BaseException as exc:  # re-raised in finish()
            self.error = exc


def bench_visibility(report: Report) -> None:
    """Figure e: insert 100-row batches at ~20/s for ~5 s; p50/p99 time until visible in the MV."""
    count = int(LATENCY_RATE_HZ * LATENCY_SECONDS)
    events = make_events(count * LATENCY_BATCH_ROWS, first_id=EVENTS + 1, seed=SEED + 1)
    batches = split(events, LATENCY_BATCH_ROWS)
    db = open_db(CREATE_USER_SPEND)
    watcher = VisibilityWatcher(db)
    try:
        watcher.start()
        started, expected = time.perf_counter(), 0
        for i, batch in enumerate(batches):
            time.sleep(max(0.0, started + i / LATENCY_RATE_HZ - time.perf_counter()))
            db.insert("cons_events", batch)
            expected += batch.num_rows
            watcher.expect(expected, time.perf_counter())
        rate = len(batches) / (time.perf_counter() - started)
        missing = watcher.finish(LATENCY_DRAIN_S + BARRIER_INTERVAL_MS / 1000)
    finally:
        close_db(db)
    report_latencies(report, watcher.latencies_s, rate, missing)


def report_latencies(report: Report, latencies_s: list[float], rate: float, missing: int) -> None:
    """Print and record the visibility figures."""
    ms = np.array(latencies_s) * 1000
    target_ms = BARRIER_INTERVAL_MS + 200
    report.add("visibility_batches", len(latencies_s), "", f"{LATENCY_BATCH_ROWS} rows each")
    report.add("visibility_insert_rate_hz", rate, "/s")
    report.add("visibility_missing", missing, "", "batches never seen")
    if len(ms) == 0:
        report.add("visibility_check", "MISS", "", "no batch became visible")
        return
    p99 = float(np.percentile(ms, 99))
    report.add("visibility_p50_ms", float(np.percentile(ms, 50)), "ms")
    report.add("visibility_p99_ms", p99, "ms")
    report.add("visibility_max_ms", float(ms.max()), "ms")
    report.add("visibility_target_ms", target_ms, "ms", "barrier_interval_ms + 200")
    report.add("visibility_check", _ok(p99 < target_ms and missing == 0), "", "p99 < target")


# --- f: INSERT ... VALUES ---------------------------------------------------------------------


def bench_insert_values(report: Report) -> None:
    """Figure f: 1000-row ``INSERT ... VALUES`` statements as SQL text, end to end with FLUSH."""
    rows = VALUES_ROWS * VALUES_STATEMENTS
    events = make_events(rows, first_id=1, seed=SEED + 3)
    statements = [values_statement(batch) for batch in split(events, VALUES_ROWS)]
    db = open_db(CREATE_USER_SPEND)
    try:
        # warm-up, untimed: the first statement imports what the path needs (pyarrow loads
        # pandas lazily), a one-off cost of ~0.15 s that is not throughput
        db.execute(CREATE_TABLE.replace("cons_events", "warm_up"))
        db.execute(statements[0].replace("cons_events", "warm_up", 1))
        db.execute("FLUSH")
        started = time.perf_counter()
        for statement in statements:
            db.execute(statement)
        db.execute("FLUSH")
        elapsed = time.perf_counter() - started
        visible = int(scalar(db, VISIBLE_EVENTS) or 0)
    finally:
        close_db(db)
    rps = rows / elapsed
    note = f"{VALUES_STATEMENTS} x {VALUES_ROWS} rows"
    report.add("insert_values_rows_per_s", rps, "rows/s", note)
    report.add("insert_values_target", _ok(rps >= VALUES_TARGET_RPS), "", ">= 50k rows/s")
    report.add("insert_values_check", "OK" if visible == rows else "MISMATCH", "", f"{visible}")


# --- g: memory --------------------------------------------------------------------------------


def rss_key_counts() -> list[int]:
    """Key counts for the RSS figures: those not above the event count (at least one)."""
    return [k for k in RSS_KEYS if k <= max(EVENTS, RSS_KEYS[0])]


def rss_child(keys: int) -> dict[str, int]:
    """In a fresh process: RSS growth from before ``connect()`` to after ``keys`` keys + FLUSH."""
    batches = split(with_distinct_users(make_events(keys, first_id=1, seed=SEED + 2)), BATCH_ROWS)
    process = psutil.Process()
    gc.collect()
    before = process.memory_info().rss
    db = open_db(CREATE_USER_SPEND)
    stream_batches(db, batches)
    gc.collect()
    after = process.memory_info().rss
    mv_rows = int(scalar(db, "SELECT count(*) FROM cons_user_spend"))
    db.close()
    return {"keys": keys, "rss_before": before, "rss_after": after, "mv_rows": mv_rows}


def run_rss_child(keys: int) -> dict[str, int]:
    """Run :func:`rss_child` in a subprocess and parse its JSON line."""
    command = [sys.executable, str(SCRIPT), RSS_CHILD_FLAG, str(keys)]
    done = subprocess.run(
        command, capture_output=True, text=True, check=False, timeout=RSS_CHILD_TIMEOUT_S
    )
    if done.returncode != 0:
        raise RuntimeError(f"RSS child for {keys} keys failed:\n{done.stderr[-4000:]}")
    parsed: dict[str, int] = json.loads(done.stdout.strip().splitlines()[-1])
    return parsed


def bench_memory(report: Report) -> None:
    """Figure g: RSS growth of the user-spend MV per key count, each in its own process."""
    previous: tuple[int, int] | None = None
    for keys in rss_key_counts():
        child = run_rss_child(keys)
        delta = child["rss_after"] - child["rss_before"]
        ok = "" if child["mv_rows"] == keys else f"MISMATCH: {child['mv_rows']} MV rows"
        report.add(f"rss_delta_mb_{keys}_keys", delta / 2**20, "MB", ok)
        report.add(f"rss_bytes_per_key_{keys}_keys", delta / keys, "B/key", "incl. fixed cost")
        if previous is not None:
            slope = (delta - previous[1]) / (keys - previous[0])
            note = f"from {previous[0]:,} keys"
            report.add(f"rss_marginal_bytes_per_key_{keys}_keys", slope, "B/key", note)
        previous = (keys, delta)


# --- main -------------------------------------------------------------------------------------


def git_commit() -> str | None:
    """The short commit hash of the work tree, if it is a git checkout."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=SCRIPT.parent,
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return done.stdout.strip() or None


def run_config() -> dict[str, Any]:
    """What the figures were measured with."""
    return {
        "events": EVENTS,
        "batch_rows": BATCH_ROWS,
        "users": USERS,
        "seed": SEED,
        "barrier_interval_ms": BARRIER_INTERVAL_MS,
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "duckdb": duckdb.__version__,
        "pyarrow": pa.__version__,
        "numpy": np.__version__,
        "kernel_engine": getattr(kernel_engine, "__version__", None),
        "git_commit": git_commit(),
        "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run every figure, print them and write ``bench/results/core.json``; 1 if any failed."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == [RSS_CHILD_FLAG]:
        print(json.dumps(rss_child(int(args[1]))), flush=True)
        return 0
    config = run_config()
    print(
        f"rwmagic core bench: {EVENTS:,} events in {BATCH_ROWS:,}-row batches, "
        f"{USERS:,} users, {config['cpu_count']} cores",
        flush=True,
    )
    events = make_events(EVENTS, first_id=1, seed=SEED)
    batches = split(events, BATCH_ROWS)
    report = Report()
    for case in (USER_SPEND, WINDOW_COUNTS):
        report.run(case.prefix, functools.partial(bench_mv, report, case, events, batches))
    report.run("visibility", functools.partial(bench_visibility, report))
    report.run("insert_values", functools.partial(bench_insert_values, report))
    report.run("rss", functools.partial(bench_memory, report))
    report.write(RESULTS_PATH, config)
    return 1 if report.failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
