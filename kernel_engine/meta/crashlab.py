"""The crash lab: run a workload, crash the engine at a chosen point, recover, compare.

The same workload runs twice: once in memory without a crash (the expected
result) and once against a fresh checkpoint folder with the chosen delivery
guarantee, crashing at `at` after statement `crash_after`, then recovering and
finishing the workload. Each table and view is compared; duplicated and lost
events are counted per relation.
"""

from __future__ import annotations

import tempfile
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kernel_engine.article import statements

__all__ = ["ARTICLE_WORKLOAD", "CrashLabResult", "CrashLabRun", "Outcome", "run_crash_lab"]

ARTICLE_WORKLOAD: list[str] = [
    statements(1)[0],  # CREATE TABLE cons_events
    statements(2)[0],  # CREATE MATERIALIZED VIEW cons_user_spend
    statements(1)[1],  # the first five events
    "FLUSH",
    statements(2)[2],  # events 1006 and 1007
    "FLUSH",
    """INSERT INTO cons_events VALUES
    (1008, 45, 'purchase', 12.00,  '2026-04-01 09:02:00'),
    (1009, 43, 'refund',   -29.50, '2026-04-01 09:02:05')""",
    "FLUSH",
    """INSERT INTO cons_events VALUES
    (1010, 42, 'purchase', 20.00,  '2026-04-01 09:03:00'),
    (1011, 46, 'purchase', 75.25,  '2026-04-01 09:03:10')""",
    "FLUSH",
]

_SLOW = 3_600_000  # barriers only where the workload asks for them (FLUSH, DDL)


@dataclass
class Outcome:
    """Expected and observed content of one table or view."""

    name: str
    expected: list[tuple[Any, ...]]
    observed: list[tuple[Any, ...]]
    duplicated: int
    lost: int

    @property
    def ok(self) -> bool:
        """True when the observed content equals the expected one."""
        return self.duplicated == 0 and self.lost == 0 and _same(self.expected, self.observed)


@dataclass
class CrashLabResult:
    """What a crash-lab run found."""

    guarantee: str
    at: str
    crash_after: int
    outcomes: dict[str, Outcome] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when every relation came out as without the crash."""
        return all(o.ok for o in self.outcomes.values())

    def summary(self) -> list[dict[str, Any]]:
        """One row per relation: name, duplicated, lost, ok."""
        return [{"relation": o.name, "duplicated": o.duplicated, "lost": o.lost, "ok": o.ok}
                for o in self.outcomes.values()]


def _rounded(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(round(v, 6) if isinstance(v, float) else v for v in row)


def _same(a: list[tuple[Any, ...]], b: list[tuple[Any, ...]]) -> bool:
    return Counter(map(_rounded, a)) == Counter(map(_rounded, b))


def _events(db: Any, name: str, kind: str) -> int:
    """How many events a relation counts: rows of a table, COUNT columns of a view."""
    if kind == "table":
        return int(db.execute(f'SELECT COUNT(*) FROM "{name}"').fetchone()[0])
    cols = [r[0] for r in db.execute(f'DESCRIBE "{name}"').fetchall()
            if r[0] is not None and "count" in str(r[0]).lower()]
    if not cols:
        return int(db.execute(f'SELECT COUNT(*) FROM "{name}"').fetchone()[0])
    total = " + ".join(f'COALESCE(SUM("{c}"), 0)' for c in cols)
    return int(db.execute(f'SELECT {total} FROM "{name}"').fetchone()[0])


def _snapshot(db: Any) -> dict[str, tuple[str, list[tuple[Any, ...]], int]]:
    out: dict[str, tuple[str, list[tuple[Any, ...]], int]] = {}
    for kind, show in (("table", "SHOW TABLES"), ("view", "SHOW MATERIALIZED VIEWS")):
        for (name,) in db.execute(show).fetchall():
            rows = db.execute(f'SELECT * FROM "{name}"').fetchall()
            out[name] = (kind, rows, _events(db, name, kind))
    return out


def run_crash_lab(workload: list[str], at: str, guarantee: str = "exactly_once",
                  crash_after: int | None = None, *, sink: bool = False) -> CrashLabResult:
    """Run `workload` with a crash at `at` after statement `crash_after`; compare.

    With `sink`, an append-only file sink of the first table is compared too.
    """
    run = CrashLabRun(workload, at, guarantee, crash_after, sink=sink)
    try:
        run.start()
        run.crash()
        return run.recover()
    finally:
        run.close()


Snapshot = dict[str, tuple[str, list[tuple[Any, ...]], int]]


def _track_settled(db: Any) -> Callable[[], None]:
    """A function that waits until every checkpoint taken so far is durable and the work the
    writer does after each (committing source offsets, truncating logs) is done.

    Called after each statement before the crash, it keeps the writer from merging queued
    checkpoints (as it does when it falls behind), so that the checkpoints, the offset
    commits and thus a crash point's outcome are the same on every run, loaded or not."""
    writer = db.durability.writer
    done = threading.Condition()
    settled = [writer.durable_epoch]
    inner = writer.on_durable

    def on_durable(manifest: Any) -> None:
        try:
            inner(manifest)
        finally:
            with done:
                settled[0] = max(settled[0], int(manifest.epoch))
                done.notify_all()

    writer.on_durable = on_durable

    def wait(timeout: float = 10.0) -> None:
        with done:
            done.wait_for(lambda: settled[0] >= max(writer.durable_epoch,
                                                    db.progress.checkpoint_epoch), timeout)

    return wait


class CrashLabRun:
    """A crash-lab run in steps, for widgets: `start()`, `crash()`, then `recover()`.

    `start()` computes the expected result (the workload without a crash, in
    memory) and runs the first `crash_after` statements against a fresh
    checkpoint folder; `crash()` arms the crash point and lets it fire (`at="now"`
    kills the engine at once); `recover()` runs RECOVER, finishes the workload
    and returns the `CrashLabResult`. `close()` (called by `recover()` too)
    stops the engine and removes the folder.

        >>> run = CrashLabRun(ARTICLE_WORKLOAD, "after_snapshot", "exactly_once")
        >>> before = run.start(); run.crash(); run.recover().ok
        True
    """

    def __init__(self, workload: list[str], at: str, guarantee: str = "exactly_once",
                 crash_after: int | None = None, *, sink: bool = False) -> None:
        from kernel_engine.meta.durability import CRASH_POINTS, SINK_CRASH_POINTS

        points = (*CRASH_POINTS, *SINK_CRASH_POINTS) if sink else CRASH_POINTS
        if at not in (*points, "now"):
            raise ValueError(f"unknown crash point {at!r}; known: {', '.join(points)}, "
                             "now")
        self.sink = sink  # an append-only file sink of the first table, compared too
        self._sink_table: str | None = None
        self.workload = list(workload)
        self.at = at
        self.guarantee = guarantee
        self.crash_after = crash_after if crash_after is not None else max(len(workload) - 3, 1)
        self.phase = "new"  # new -> running -> crashed -> done
        self.expected: Snapshot = {}
        self.before: Snapshot = {}
        self.recovered: Snapshot = {}
        self.columns: dict[str, list[str]] = {}  # visible columns of each relation
        self.epochs: dict[str, int] = {}  # committed epoch: "before_crash", "after_recovery"
        self._rest: list[str] = []
        self._db: Any = None
        self._folder: tempfile.TemporaryDirectory[str] | None = None

    def start(self) -> dict[str, list[tuple[Any, ...]]]:
        """Compute the expected result, run up to the crash point; the content before it."""
        import kernel_engine

        if self.phase != "new":
            raise RuntimeError(f"start() needs a new run, this one is {self.phase}")
        with kernel_engine.connect(barrier_interval_ms=_SLOW) as ref:
            for sql in self.workload:
                ref.execute(sql)
            ref.execute("FLUSH")
            self.expected = _snapshot(ref)
            self.columns = {name: [d[0] for d in ref.execute(
                f'SELECT * FROM "{name}" LIMIT 0').description or []] for name in self.expected}
        self._folder = tempfile.TemporaryDirectory(prefix="rwmagic-crashlab-")
        self._db = kernel_engine.connect(self._folder.name, barrier_interval_ms=_SLOW,
                                         delivery_guarantee=self.guarantee)
        settled = _track_settled(self._db)
        for sql in self.workload[: self.crash_after]:
            self._db.execute(sql)
            self._add_sink()
            settled()
        self._rest = list(self.workload[self.crash_after:])
        self.before = _snapshot(self._db)
        self.epochs["before_crash"] = int(self._db.progress.committed_epoch)
        self.phase = "running"
        return {name: rows for name, (_, rows, _) in self.before.items()}

    def crash(self) -> None:
        """Arm the crash point and run until it fires; the engine's memory is gone."""
        from kernel_engine.meta.coordinator import EngineCrashed

        if self.phase != "running":
            raise RuntimeError(f"crash() needs a started run, this one is {self.phase}")
        db = self._db
        if self.at == "now":
            db.crash()
        else:
            if self.at == "processing":  # every batch issued so far processed first: the
                db.coordinator.call(lambda: None)  # crash hits the trigger's batch, always
            db.crash(at=self.at)
            triggered = self.at == "processing" or self.at.startswith("sink_")
            trigger = [self._rest.pop(0)] if triggered and self._rest else []
            while self.at == "processing" and trigger[-1:] == ["FLUSH"] and self._rest:
                trigger.append(self._rest.pop(0))  # the crash needs a batch to process
            try:
                for sql in trigger + ["FLUSH"]:
                    db.execute(sql)
            except EngineCrashed:
                pass
            if not db.wait_crashed(timeout=10):
                db.crash()
        self.phase = "crashed"

    def recover(self) -> CrashLabResult:
        """RECOVER, finish the workload and compare with the expected result."""
        if self.phase != "crashed":
            raise RuntimeError(f"recover() needs a crashed run, this one is {self.phase}")
        db = self._db
        try:
            db.execute("RECOVER")
            self.recovered = _snapshot(db)
            for sql in self._rest:
                db.execute(sql)
            db.execute("FLUSH")
            observed = _snapshot(db)
            self._read_sink(observed)
            self.epochs["after_recovery"] = int(db.progress.committed_epoch)
        finally:
            self.close()
        self.phase = "done"
        return self._result(observed)

    def _result(self, observed: Snapshot) -> CrashLabResult:
        result = CrashLabResult(self.guarantee, self.at, self.crash_after)
        for name, (kind, rows, events) in self.expected.items():
            _, got_rows, got_events = observed.get(name, (kind, [], 0))
            result.outcomes[name] = Outcome(name, rows, got_rows, max(0, got_events - events),
                                            max(0, events - got_events))
        if self._sink_table is not None:
            from kernel_engine.sinks.lab import SINK_NAME, compare_lab_sink

            want = self.expected[self._sink_table][1]
            got = observed.get(SINK_NAME, ("sink", [], 0))[1]
            duplicated, lost = compare_lab_sink(want, got)
            result.outcomes[SINK_NAME] = Outcome(SINK_NAME, want, got, duplicated, lost)
        return result

    def _add_sink(self) -> None:
        """Once the first table exists, attach the lab's file sink to it."""
        if not self.sink or self._sink_table is not None or self._folder is None:
            return
        tables = [n for n, (kind, _, _) in self.expected.items() if kind == "table"]
        if tables and self._db.catalog.get(tables[0]) is not None:
            from kernel_engine.sinks.lab import add_lab_sink

            self._sink_table = tables[0]
            add_lab_sink(self._db, self._folder.name + "/sink-files", tables[0])

    def _read_sink(self, observed: Snapshot) -> None:
        if self._sink_table is not None and self._folder is not None:
            from kernel_engine.sinks.lab import SINK_NAME, read_lab_sink

            rows = read_lab_sink(self._folder.name + "/sink-files")
            observed[SINK_NAME] = ("sink", rows, len(rows))

    def close(self) -> None:
        """Stop the run's engine and remove its checkpoint folder."""
        if self._db is not None:
            self._db.close()
            self._db = None
        if self._folder is not None:
            self._folder.cleanup()
            self._folder = None
