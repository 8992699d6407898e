"""Exactly-once, in-process: workloads x crash points x moments.

Hypothesis draws a workload (INSERT, `db.insert`, UPDATE, DELETE over a table
with a primary key and one without, FLUSHes), two to four materialized views (an aggregate
with MIN/MAX, a join, a view on a view, a global aggregate), a crash point
(any of CRASH_POINTS, or an immediate `db.crash()`) and the statement before
which the crash strikes. The workload runs against a checkpoint folder and,
alongside, in memory without a crash. At the chosen moment the crash is armed
and triggered by an INSERT of fresh rows and a FLUSH; then RECOVER, and the
rest of the workload. Right after recovery and at the end, every table and
view must equal the run without a crash, and every view must equal DuckDB's
batch evaluation of its query over the recovered tables.

Every inserted row carries a unique id. A statement that raised EngineCrashed
was not acknowledged: its rows must be there entirely or not at all; when
they are not, the client retries it, as a client would.
"""

from __future__ import annotations

import itertools
import tempfile
from collections import Counter
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa
import sqlglot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kernel_engine
from kernel_engine.meta.coordinator import EngineCrashed
from kernel_engine.meta.durability import CRASH_POINTS
from kernel_engine.query.adhoc import translate_query

SLOW = 3_600_000
NOW = "now"  # db.crash() with no point: die between two statements

TABLES = {
    "p": "CREATE TABLE p (id INT PRIMARY KEY, k INT, v INT)",
    "n": "CREATE TABLE n (id INT, k INT, w INT)",
}
# name -> query, in creation order (big reads agg).
VIEWS = {
    "agg": "SELECT k, COUNT(*) AS cnt, SUM(v) AS sv, MIN(v) AS lo, MAX(v) AS hi FROM p GROUP BY k",
    "jn": "SELECT p.id AS pid, n.id AS nid, p.v, n.w FROM p JOIN n ON p.k = n.k",
    "big": "SELECT k, cnt, sv FROM agg WHERE cnt > 1",
    "tot": "SELECT COUNT(*) AS c, SUM(w) AS s, MAX(w) AS hi FROM n",
}

Rows = Counter[tuple[Any, ...]]

# ---- workloads --------------------------------------------------------------------------------

keys = st.integers(0, 3)
values = st.integers(-5, 5)
statements = st.one_of(
    st.tuples(st.just("ins_p"), st.lists(st.tuples(keys, values), min_size=1, max_size=3)),
    st.tuples(st.just("ins_n"), st.lists(st.tuples(keys, values), min_size=1, max_size=3)),
    st.tuples(st.just("arrow_n"), st.lists(st.tuples(keys, values), min_size=1, max_size=3)),
    st.tuples(st.just("upd_p"), keys, values),
    st.tuples(st.just("del_p"), keys),
    st.tuples(st.just("upd_n"), keys, values),
    st.tuples(st.just("del_n"), keys),
    st.tuples(st.just("flush")),
)


@dataclass
class Insert:
    """An INSERT of rows with fresh ids (so it can be found, and retried); with `arrow`,
    a bulk `db.insert` of the same rows."""

    table: str
    ids: list[int]
    sql: str
    arrow: pa.Table | None = None

    def run(self, db: kernel_engine.Connection) -> None:
        """Execute it."""
        if self.arrow is None:
            db.execute(self.sql)
        else:
            db.insert(self.table, self.arrow)


def to_sql(step: tuple[Any, ...], ids: itertools.count[int]) -> str | Insert:
    """One drawn step as SQL; inserts get unique ids."""
    kind = step[0]
    if kind in ("ins_p", "ins_n", "arrow_n"):
        rows = [(next(ids), k, x) for k, x in step[1]]
        table = kind[-1]
        values = ", ".join(f"({i}, {k}, {x})" for i, k, x in rows)
        arrow = (pa.table({"id": [r[0] for r in rows], "k": [r[1] for r in rows],
                           "w": [r[2] for r in rows]}) if kind == "arrow_n" else None)
        return Insert(table, [r[0] for r in rows], f"INSERT INTO {table} VALUES {values}", arrow)
    if kind == "upd_p":
        return f"UPDATE p SET v = v + {step[2]} WHERE k = {step[1]}"
    if kind == "upd_n":
        return f"UPDATE n SET w = w * 2 + {step[2]} WHERE k = {step[1]}"
    if kind == "del_p":
        return f"DELETE FROM p WHERE k = {step[1]}"
    if kind == "del_n":
        return f"DELETE FROM n WHERE k = {step[1]} AND w < 0"
    return "FLUSH"


# ---- comparing ----------------------------------------------------------------------------------

def contents(db: kernel_engine.Connection, views: list[str]) -> dict[str, Rows]:
    """Every table and view as a multiset of rows."""
    return {name: Counter(db.execute(f"SELECT * FROM {name}").fetchall())
            for name in [*TABLES, *views]}


def batch_views(db: kernel_engine.Connection, views: list[str]) -> dict[str, Rows]:
    """DuckDB's batch answer of every view's query over the engine's current tables."""
    con = duckdb.connect()
    try:
        for table in TABLES:
            con.register(table, db.execute(f"SELECT * FROM {table}").arrow())
        out: dict[str, Rows] = {}
        for name in views:
            sql = translate_query(sqlglot.parse_one(VIEWS[name], read="risingwave"), db.catalog)
            result = con.sql(sql).to_arrow_table()
            con.register(name, result)  # a view on this view reads its expected rows
            out[name] = Counter(tuple(r.values()) for r in result.to_pylist())
        return out
    finally:
        con.close()


def check(db: kernel_engine.Connection, ref: kernel_engine.Connection, views: list[str],
          when: str) -> None:
    """The crashed-and-recovered engine equals the run without a crash and the batch answer."""
    db.execute("FLUSH")
    ref.execute("FLUSH")
    got, want = contents(db, views), contents(ref, views)
    for name in want:
        assert got[name] == want[name], (f"{when}: {name} differs from the run without a "
                                         f"crash\n got  {sorted(got[name].items())}\n want "
                                         f"{sorted(want[name].items())}")
    batch = batch_views(db, views)
    for name in views:
        assert got[name] == batch[name], (f"{when}: {name} differs from batch evaluation\n"
                                          f" got  {sorted(got[name].items())}\n want "
                                          f"{sorted(batch[name].items())}")
    assert db.progress.errors == [], f"{when}: {db.progress.errors}"


# ---- crashing -----------------------------------------------------------------------------------

def execute(db: kernel_engine.Connection, step: str | Insert) -> bool:
    """Run a statement; False when the engine died under it (not acknowledged)."""
    try:
        if isinstance(step, Insert):
            step.run(db)
        else:
            db.execute(step)
    except EngineCrashed:
        return False
    return True


def present(db: kernel_engine.Connection, insert: Insert) -> int:
    """How many of an INSERT's rows are in its table."""
    ids = ", ".join(map(str, insert.ids))
    count = db.execute(f"SELECT COUNT(*) FROM {insert.table} WHERE id IN ({ids})").fetchone()
    return int(count[0])


def crash_and_recover(db: kernel_engine.Connection, at: str, trigger: Insert) -> None:
    """Crash at `at` while `trigger` and a FLUSH run; RECOVER; settle the unacknowledged."""
    if at == NOW:
        acknowledged = execute(db, trigger)
        db.crash()
    else:
        db.crash(at=at)
        acknowledged = execute(db, trigger)
        assert not execute(db, "FLUSH"), f"the crash armed at {at} did not fire"
        assert db.wait_crashed(timeout=10)
    assert acknowledged or at != NOW
    db.execute("RECOVER")
    found = present(db, trigger)
    if acknowledged:
        assert found == len(trigger.ids), f"an acknowledged INSERT was lost after {at}"
    else:  # applied entirely or not at all; if not, the client retries
        assert found in (0, len(trigger.ids)), f"an INSERT was half applied after {at}"
        if found == 0:
            db.execute(trigger.sql)


def run_workload(steps: list[tuple[Any, ...]], views: list[str], at: str, moment: int,
                 interval: int) -> None:
    """Run `steps` with a crash at `at` before step `moment`; compare after recovery and
    at the end."""
    ids = itertools.count(1)
    workload = [to_sql(s, ids) for s in steps]
    a, b = next(ids), next(ids)
    trigger = Insert("p", [a, b], f"INSERT INTO p VALUES ({a}, 1, 7), ({b}, 2, -7)")
    ddl = list(TABLES.values()) + [f"CREATE MATERIALIZED VIEW {v} AS {VIEWS[v]}" for v in views]
    with (tempfile.TemporaryDirectory(prefix="ke-exactly-once-") as folder,
          kernel_engine.connect(barrier_interval_ms=SLOW) as ref,
          kernel_engine.connect(folder, barrier_interval_ms=interval) as db):
        for sql in ddl:
            db.execute(sql)
            ref.execute(sql)
        for index, step in enumerate([*workload, None]):
            if index == moment:
                ref.execute(trigger.sql)
                crash_and_recover(db, at, trigger)
                check(db, ref, views, f"right after recovering from a crash at {at}")
            if step is None:
                break
            for engine in (db, ref):
                if isinstance(step, Insert):
                    step.run(engine)
                else:
                    engine.execute(step)
        check(db, ref, views, f"after finishing the workload (crash at {at})")


view_sets = st.sets(st.sampled_from(list(VIEWS)), min_size=2, max_size=4).map(
    lambda chosen: [v for v in VIEWS if v in chosen or (v == "agg" and "big" in chosen)])


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(steps=st.lists(statements, min_size=1, max_size=10), views=view_sets,
       at=st.sampled_from([*CRASH_POINTS, NOW]), moment_frac=st.floats(0, 1),
       interval=st.sampled_from([SLOW, 40]))
def test_every_view_is_exact_after_any_crash(steps: list[tuple[Any, ...]], views: list[str],
                                              at: str, moment_frac: float,
                                              interval: int) -> None:
    run_workload(steps, views, at, round(moment_frac * len(steps)), interval)


def test_every_crash_point_at_a_fixed_moment() -> None:
    """Each crash point once, deterministically, on a workload touching every view."""
    steps: list[tuple[Any, ...]] = [
        ("ins_p", [(0, 1), (1, 2), (1, 3)]), ("ins_n", [(1, 4), (1, -1), (2, 5)]), ("flush",),
        ("upd_p", 1, 2), ("del_n", 1), ("ins_p", [(2, -3)]), ("upd_n", 2, 1),
        ("del_p", 0), ("arrow_n", [(0, 3), (3, 3)]), ("flush",),
    ]
    for at in [*CRASH_POINTS, NOW]:
        run_workload(steps, list(VIEWS), at, 6, SLOW)
