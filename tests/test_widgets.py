"""Widgets without a browser: build them against a real engine, drive it, read their state."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytest.importorskip("ipywidgets")

import kernel_engine  # noqa: E402
import rwmagic  # noqa: E402
from rwmagic.widgets import (  # noqa: E402
    CrashLab,
    CrashLabCompare,
    crash_lab,
    crash_lab_compare,
    monitor,
    show_plan,
    watch,
)
from rwmagic.widgets._common import RATE_HZ, refresher  # noqa: E402

SLOW = 3_600_000  # barriers only on FLUSH: epochs advance when the test says so
SCHEMA = """
CREATE TABLE orders (id INT PRIMARY KEY, customer VARCHAR, amount INT);
CREATE MATERIALIZED VIEW spend AS
  SELECT customer, COUNT(*) AS orders, SUM(amount) AS total FROM orders GROUP BY customer;
INSERT INTO orders VALUES (1, 'ann', 10), (2, 'bob', 20);
FLUSH;
"""


@pytest.fixture
def db() -> Iterator[kernel_engine.Connection]:
    with kernel_engine.connect(barrier_interval_ms=SLOW) as conn:
        conn.execute(SCHEMA)
        yield conn


@pytest.fixture
def durable_db(tmp_path: Path) -> Iterator[kernel_engine.Connection]:
    with kernel_engine.connect(str(tmp_path), barrier_interval_ms=SLOW) as conn:
        conn.execute(SCHEMA)
        yield conn


def eventually(check: Callable[[], bool], timeout: float = 5.0) -> bool:
    """True once `check()` holds (the refresh thread got there), False after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


# ---- watch ---------------------------------------------------------------------------------

def test_watch_shows_the_view_at_the_committed_epoch(db) -> None:
    w = watch("spend", db)
    try:
        assert w.epoch == db.progress.committed_epoch
        assert w.row_count == 2
        assert f'class="rw-epoch">{w.epoch}<' in w.header.value
        assert ">ann<" in w.table.value and ">bob<" in w.table.value
        assert "first read" in w.header.value
    finally:
        w.close()


def test_watch_refreshes_from_its_thread_and_highlights_changes(db) -> None:
    w = watch("spend", db)
    try:
        first = w.epoch
        db.execute("INSERT INTO orders VALUES (3, 'ann', 5), (4, 'cy', 7); FLUSH")
        assert eventually(lambda: w.epoch > first), "the refresh thread never caught up"
        assert (w.inserted, w.updated, w.removed) == (1, 1, 0)  # cy new, ann updated
        assert "rgba(46,160,67" in w.table.value and "rgba(230,170,20" in w.table.value
        assert ">15<" in w.table.value  # ann's total
        db.execute("DELETE FROM orders WHERE customer = 'bob'; FLUSH")
        assert eventually(lambda: w.removed == 1)
        assert "line-through" in w.table.value and w.row_count == 2
    finally:
        w.close()


def test_watch_keeps_highlights_over_empty_epochs(db) -> None:
    w = watch("spend", db)
    try:
        db.execute("INSERT INTO orders VALUES (9, 'dee', 1); FLUSH")
        w.refresh()
        assert w.inserted == 1
        db.execute("FLUSH")  # an epoch with no change
        assert w.refresh() and w.inserted == 1 and "rgba(46,160,67" in w.table.value
    finally:
        w.close()


def test_watch_is_throttled(db) -> None:
    w = watch("spend", db)
    try:
        start, before = time.monotonic(), w.refreshes
        for i in range(30):
            db.execute(f"INSERT INTO orders VALUES ({100 + i}, 'x', 1); FLUSH")
        elapsed = time.monotonic() - start
        assert eventually(lambda: w.row_count == 3)
        made = w.refreshes - before
        assert made <= elapsed * RATE_HZ + 3, (made, elapsed)
    finally:
        w.close()


def test_watch_rejects_unknown_relations(db) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        watch("nope", db)


def test_watch_through_a_crash_and_recovery(durable_db) -> None:
    db = durable_db
    w = watch("spend", db)
    try:
        epoch = w.epoch
        db.crash()
        w.refresh()
        assert "engine crashed" in w.header.value and ">ann<" in w.table.value
        db.execute("RECOVER")
        db.execute("INSERT INTO orders VALUES (5, 'ann', 1); FLUSH")
        w.refresh()
        assert w.epoch > epoch and ">11<" in w.table.value
    finally:
        w.close()


def test_closed_widgets_leave_the_refresh_thread(db) -> None:
    w = watch("spend", db)
    assert w.alive()
    w.close()
    assert not w.alive()
    refresher().tick()  # does not touch the closed widget
    assert w not in list(refresher()._widgets)


def test_widgets_never_print(db, capsys) -> None:
    w, m, p = watch("spend", db), monitor(db), show_plan("spend", db)
    db.execute("INSERT INTO orders VALUES (7, 'eve', 3); FLUSH")
    refresher().tick()
    for x in (w, m, p):
        x.close()
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""


# ---- monitor -------------------------------------------------------------------------------

def test_monitor_tracks_epochs_checkpoints_and_sources(durable_db) -> None:
    db = durable_db
    m = monitor(db)
    try:
        committed, durable = m.committed_epoch, m.durable_epoch
        assert durable >= 1 and committed >= durable
        for i in range(3):
            db.execute(f"INSERT INTO orders VALUES ({10 + i}, 'fay', {i}); FLUSH")
        assert eventually(lambda: m.durable_epoch >= durable + 3)
        assert m.committed_epoch >= committed + 3 and m.current_epoch > m.committed_epoch
        assert f'class="rw-durable-epoch" style="font-size:20px;font-weight:bold">' \
               f'{m.durable_epoch}<' in m.counters.value
        svg = m.chart.value
        assert svg.startswith("<svg") and svg.count("<polyline") == 3
        assert "barrier latency" in svg and "bytes written" in svg
        assert 'class="rw-sources"' in m.sources.value and ">orders<" in m.sources.value
        assert "0 batches" in m.sources.value  # no lag once flushed
    finally:
        m.close()


def test_monitor_in_memory_engine_and_errors(db) -> None:
    m = monitor(db)
    try:
        assert "memory (no checkpoints)" in m.counters.value
        assert "no data yet" in m.chart.value  # no checkpoints without storage
        db.progress.errors.append("epoch 3: boom")
        m.refresh()
        assert "boom" in m.errors.value
    finally:
        m.close()


def test_monitor_reads_sinks_defensively(db) -> None:
    m = monitor(db)
    try:
        assert m.sinks.value == ""
        db.progress.sinks = {"pg": {"committed_epoch": 4, "pending_epochs": [5, 6]}}
        db.execute("FLUSH")
        m.refresh()
        assert 'class="rw-sinks"' in m.sinks.value
        assert ">pg<" in m.sinks.value and "2 [5, 6]" in m.sinks.value
    finally:
        m.close()


def test_monitor_shows_a_real_file_sink(tmp_path: Path) -> None:
    with kernel_engine.connect(str(tmp_path / "state"), barrier_interval_ms=SLOW) as db:
        db.execute(SCHEMA)
        try:
            db.execute(f"CREATE SINK out FROM spend WITH (connector = 'fs', "
                       f"path = '{tmp_path / 'out'}', type = 'append-only', "
                       "force_append_only = 'true') FORMAT PLAIN ENCODE JSON")
        except kernel_engine.Error as err:
            pytest.skip(f"file sinks are not available: {err}")
        db.execute("INSERT INTO orders VALUES (20, 'hal', 4); FLUSH")
        m = monitor(db)
        try:
            assert 'class="rw-sinks"' in m.sinks.value and ">out<" in m.sinks.value
            assert "pending_epochs" in m.sinks.value and "delivered_epoch" in m.sinks.value
        finally:
            m.close()


# ---- crash lab -----------------------------------------------------------------------------

def press(lab: CrashLab | CrashLabCompare) -> None:
    lab.crash_button.click()
    assert lab.phase == "crashed", getattr(lab, "status", lab).value if hasattr(lab, "status") \
        else lab.phase
    lab.recover_button.click()
    assert lab.phase == "recovered"


def test_crash_lab_exactly_once_verdict_is_zero_zero() -> None:
    lab = crash_lab(guarantee="exactly_once", at="after_snapshot")
    assert lab.recover_button.disabled and not lab.crash_button.disabled
    lab.crash_button.click()
    assert lab.phase == "crashed" and not lab.recover_button.disabled
    assert "before the crash" in lab.views.value and lab.epoch_before > 0
    lab.recover_button.click()
    assert lab.phase == "recovered" and lab.result is not None and lab.result.ok
    assert (lab.duplicated, lab.lost) == (0, 0)
    assert lab.epoch_after > lab.epoch_before
    assert "0 duplicated / 0 lost" in lab.verdict.value
    assert "cons_user_spend" in lab.verdict.value and "after recovery" in lab.views.value


@pytest.mark.parametrize(("guarantee", "attr"), [("at_least_once", "duplicated"),
                                                  ("at_most_once", "lost")])
def test_crash_lab_weaker_guarantees_show_the_damage(guarantee: str, attr: str) -> None:
    lab = crash_lab(guarantee=guarantee, at="mid_upload")
    press(lab)
    assert getattr(lab, attr) > 0
    assert lab.result is not None and not lab.result.ok
    assert "WRONG" in lab.verdict.value and "✗ differs" in lab.verdict.value


def test_crash_lab_pickers_and_a_second_run() -> None:
    lab = crash_lab()
    lab.guarantee_picker.value = "at_least_once"
    lab.point_picker.value = "now"
    press(lab)
    assert lab.result is not None and lab.result.guarantee == "at_least_once"
    assert lab.result.at == "now"
    lab.guarantee_picker.value = "exactly_once"
    press(lab)  # Crash again starts a fresh run
    assert lab.result.ok and lab.result.guarantee == "exactly_once"
    lab.close()


def test_crash_lab_compares_a_file_sink_too() -> None:
    from rwmagic.widgets._crashlab import SINK_POINTS, sinks_available

    if not (sinks_available() and SINK_POINTS):
        pytest.skip("the engine has no file sinks for the crash lab")
    lab = crash_lab(guarantee="exactly_once", at=SINK_POINTS[0], sink=True)
    assert set(SINK_POINTS) <= set(lab.point_picker.options)
    press(lab)
    assert lab.result is not None and lab.result.ok and (lab.duplicated, lab.lost) == (0, 0)
    sinks = [name for name in lab.result.outcomes if name not in lab.run.before]
    assert sinks and sinks[0] in lab.views.value and "file sink of" in lab.views.value
    weak = crash_lab(guarantee="at_most_once", at="mid_upload", sink=False)
    assert not set(SINK_POINTS) & set(weak.point_picker.options)
    press(weak)
    assert weak.lost > 0 and "line-through" in weak.views.value  # missing rows struck out


def test_recover_before_crash_says_so() -> None:
    lab = crash_lab()
    lab.recover()
    assert lab.phase == "ready" and "press Crash first" in lab.status.value


def test_crash_lab_compare_runs_the_three_guarantees() -> None:
    lab = crash_lab(compare=True, at="before_manifest")
    assert isinstance(lab, CrashLabCompare)
    press(lab)
    results = lab.results
    assert set(results) == {"exactly_once", "at_least_once", "at_most_once"}
    assert results["exactly_once"].ok
    assert any(o.duplicated for o in results["at_least_once"].outcomes.values())
    assert any(o.lost for o in results["at_most_once"].outcomes.values())
    assert "Verdicts" in lab.summary.value and "at_most_once" in lab.summary.value
    assert isinstance(crash_lab_compare(), CrashLabCompare)


# ---- plan ----------------------------------------------------------------------------------

def test_show_plan_draws_operators_state_and_barriers(db) -> None:
    p = show_plan("spend", db)
    try:
        svg = p.svg.value
        ops = [op.identity for op in db.catalog.get("spend").operators]
        assert p.operators == len(ops) + 1  # plus the upstream table
        for identity in [*ops, "orders"]:
            assert f'data-op="{identity}"' in svg
        assert "StreamHashAgg" in svg and "state: 2 rows" in svg and "stateless" in svg
        assert svg.count('class="rw-barrier"') == len(ops)  # one edge into each operator
        assert "<animateMotion" in svg
        epoch = p.epoch
        db.execute("INSERT INTO orders VALUES (8, 'gus', 2); FLUSH")
        assert eventually(lambda: p.epoch > epoch)
        assert "state: 3 rows" in p.svg.value
    finally:
        p.close()


def test_show_plan_join_has_two_inputs(db) -> None:
    db.execute("CREATE TABLE names (customer VARCHAR PRIMARY KEY, name VARCHAR); "
               "CREATE MATERIALIZED VIEW named AS SELECT s.customer, n.name, s.total "
               "FROM spend s JOIN names n ON s.customer = n.customer")
    p = show_plan("named", db, live=False)
    assert "StreamHashJoin" in p.svg.value and "upstream StreamMaterialize" in p.svg.value
    with pytest.raises(ValueError, match="does not exist"):
        show_plan("nope", db)


# ---- package entry points ------------------------------------------------------------------

def test_rwmagic_exports_use_the_kernel_engine() -> None:
    rwmagic.close_engine()
    try:
        db = rwmagic.engine(barrier_interval_ms=SLOW)
        db.execute(SCHEMA)
        w = rwmagic.watch("spend")
        assert w.db is db and w.row_count == 2
        m = rwmagic.monitor()
        p = rwmagic.show_plan("spend")
        assert m.db is db and p.db is db
        lab = rwmagic.crash_lab()
        assert isinstance(lab, CrashLab)
        for x in (w, m, p):
            x.close()
    finally:
        rwmagic.close_engine()
