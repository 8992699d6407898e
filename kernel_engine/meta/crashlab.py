"""The crash lab: run a workload, crash the engine at a chosen point, recover, compare.

The same workload runs twice: once in memory without a crash (the expected
result) and once against a fresh checkpoint folder with the chosen delivery
guarantee, crashing at `at` after statement `crash_after`, then recovering and
finishing the workload. Each table and view is compared; duplicated and lost
events are counted per relation.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from kernel_engine.article import statements

__all__ = ["ARTICLE_WORKLOAD", "CrashLabResult", "Outcome", "run_crash_lab"]

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
    out = {}
    for kind, show in (("table", "SHOW TABLES"), ("view", "SHOW MATERIALIZED VIEWS")):
        for (name,) in db.execute(show).fetchall():
            rows = db.execute(f'SELECT * FROM "{name}"').fetchall()
            out[name] = (kind, rows, _events(db, name, kind))
    return out


def run_crash_lab(workload: list[str], at: str, guarantee: str = "exactly_once",
                  crash_after: int | None = None) -> CrashLabResult:
    """Run `workload` with a crash at `at` after statement `crash_after`; compare."""
    import kernel_engine
    from kernel_engine.meta.coordinator import EngineCrashed
    from kernel_engine.meta.durability import CRASH_POINTS

    if at not in CRASH_POINTS:
        raise ValueError(f"unknown crash point {at!r}; known: {', '.join(CRASH_POINTS)}")
    k = crash_after if crash_after is not None else max(len(workload) - 3, 1)
    slow = 3_600_000  # barriers only where the workload asks for them (FLUSH, DDL)
    with kernel_engine.connect(barrier_interval_ms=slow) as ref:
        for sql in workload:
            ref.execute(sql)
        ref.execute("FLUSH")
        expected = _snapshot(ref)
    result = CrashLabResult(guarantee, at, k)
    with tempfile.TemporaryDirectory(prefix="rwmagic-crashlab-") as folder:
        db = kernel_engine.connect(folder, barrier_interval_ms=slow,
                                   delivery_guarantee=guarantee)
        try:
            for sql in workload[:k]:
                db.execute(sql)
            rest = list(workload[k:])
            db.crash(at=at)
            trigger = [rest.pop(0)] if at == "processing" and rest else []
            try:
                for sql in trigger + ["FLUSH"]:
                    db.execute(sql)
            except EngineCrashed:
                pass
            if not db.wait_crashed(timeout=10):
                db.crash()
            db.execute("RECOVER")
            for sql in rest:
                db.execute(sql)
            db.execute("FLUSH")
            observed = _snapshot(db)
        finally:
            db.close()
    for name, (kind, rows, events) in expected.items():
        got_kind, got_rows, got_events = observed.get(name, (kind, [], 0))
        del got_kind
        result.outcomes[name] = Outcome(name, rows, got_rows, max(0, got_events - events),
                                        max(0, events - got_events))
    return result
