"""Durable epochs on a local folder: layout, incremental checkpoints, recovery, faults.

Every test works in its own `tmp_path` folder. The engines run with a very
long barrier interval, so epochs end only where a test asks (FLUSH, DDL,
UPDATE/DELETE) and a crash lands exactly where it is armed. The expected
content of every table and view is the same statements run in memory
without storage and without a crash.
"""

from __future__ import annotations

import functools
import hashlib
import os
import threading
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

import kernel_engine
from kernel_engine.errors import BindError, CatalogError, Error
from kernel_engine.meta.coordinator import EngineCrashed, _Command
from kernel_engine.meta.crashlab import ARTICLE_WORKLOAD, run_crash_lab
from kernel_engine.meta.durability import CRASH_POINTS
from kernel_engine.state.checkpoint import (
    COMPACT_AFTER,
    Manifest,
    list_manifests,
    load_manifest,
    manifest_path,
)
from kernel_engine.state.storage import Storage, StorageError

SLOW = 3_600_000  # no timed barriers: epochs end where the test says
RARE_CHECKPOINTS = "ALTER SYSTEM SET checkpoint_frequency = 1000000"  # only FLUSH and DDL

SCHEMA = [
    "CREATE TABLE orders (id INT PRIMARY KEY, cust INT, amount INT)",
    "CREATE TABLE custs (cust INT, name VARCHAR)",
    "CREATE MATERIALIZED VIEW per_cust AS SELECT cust, COUNT(*) AS n, SUM(amount) AS total, "
    "MIN(amount) AS lo, MAX(amount) AS hi FROM orders GROUP BY cust",
    "CREATE MATERIALIZED VIEW big_custs AS SELECT cust, total FROM per_cust WHERE n > 1",
    "CREATE MATERIALIZED VIEW named AS SELECT o.id, c.name, o.amount FROM orders o "
    "JOIN custs c ON o.cust = c.cust",
    "CREATE MATERIALIZED VIEW totals AS SELECT COUNT(*) AS n, SUM(amount) AS s FROM orders",
]
RELATIONS = ("orders", "custs", "per_cust", "big_custs", "named", "totals")

BATCH1 = [
    "INSERT INTO orders VALUES (1, 10, 5), (2, 10, 7), (3, 20, 1), (4, 30, 9)",
    "INSERT INTO custs VALUES (10, 'ann'), (20, 'bob'), (30, 'cy'), (30, 'cy2')",
]
BATCH2 = [
    "UPDATE orders SET amount = amount + 100 WHERE cust = 10",
    "DELETE FROM orders WHERE id = 3",
    "INSERT INTO orders VALUES (5, 20, 2), (6, 20, 4)",
    "DELETE FROM custs WHERE name = 'cy2'",
    "UPDATE custs SET name = 'bobby' WHERE cust = 20",
    "INSERT INTO orders VALUES (7, 30, 1), (8, 40, 3)",
]
BATCH3 = [
    "INSERT INTO custs VALUES (40, 'dee')",
    "UPDATE orders SET amount = 0 WHERE id = 4",
    "INSERT INTO orders VALUES (9, 10, 50)",
]


# ---- helpers --------------------------------------------------------------------------------

def contents(db: kernel_engine.Connection,
             names: tuple[str, ...] = RELATIONS) -> dict[str, Counter[tuple[Any, ...]]]:
    """Every table and view as a multiset of rows."""
    return {name: Counter(db.execute(f"SELECT * FROM {name}").fetchall()) for name in names}


def in_memory(statements: list[str],
              names: tuple[str, ...] = RELATIONS) -> dict[str, Counter[tuple[Any, ...]]]:
    """What the statements leave behind in an engine without storage and without a crash."""
    return _in_memory(tuple(statements), names)


@functools.lru_cache
def _in_memory(statements: tuple[str, ...],
               names: tuple[str, ...]) -> dict[str, Counter[tuple[Any, ...]]]:
    with kernel_engine.connect(barrier_interval_ms=SLOW) as ref:
        for sql in statements:
            ref.execute(sql)
        ref.execute("FLUSH")
        return contents(ref, names)


def run(db: kernel_engine.Connection, statements: list[str]) -> None:
    """Execute statements one by one."""
    for sql in statements:
        db.execute(sql)


def files_under(folder: Path, sub: str) -> dict[str, bytes]:
    """Relative path -> content of every file under folder/sub."""
    base = folder / sub
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(base.rglob("*")) if p.is_file()}


def objects(manifest: Manifest) -> list[dict[str, Any]]:
    """Every stored object a manifest refers to: {path, sha256, bytes, ...}."""
    return [part for info in manifest.tables.values() for entry in info["files"]
            for part in entry.get("parts", [entry])]


def referenced(folder: Path, prefix: str = "data/") -> set[str]:
    """Objects under `prefix` that the manifests present refer to."""
    storage = Storage.local_folder(str(folder))
    live: set[str] = set()
    for epoch in list_manifests(storage):
        manifest = load_manifest(storage, epoch)
        assert manifest is not None
        live |= {o["path"] for o in objects(manifest) if o["path"].startswith(prefix)}
    return live


def assert_intact(folder: Path) -> None:
    """Every object every manifest present refers to exists with its recorded checksum."""
    storage = Storage.local_folder(str(folder))
    for epoch in list_manifests(storage):
        manifest = load_manifest(storage, epoch)
        assert manifest is not None, f"manifest {epoch} is damaged"
        for o in objects(manifest):
            data = (folder / o["path"]).read_bytes()
            assert hashlib.sha256(data).hexdigest() == o["sha256"], o["path"]
            assert len(data) == o["bytes"], o["path"]


def newest_manifest(folder: Path) -> Manifest:
    """The newest intact manifest in the folder."""
    manifest = load_manifest(Storage.local_folder(str(folder)))
    assert manifest is not None
    return manifest


def crash_and_recover(db: kernel_engine.Connection, at: str, trigger: list[str]) -> None:
    """Arm a crash at `at`, run `trigger` until the engine dies, then RECOVER."""
    db.crash(at=at)
    with pytest.raises(EngineCrashed):
        run(db, [*trigger, "FLUSH"])
    assert db.wait_crashed(timeout=10)
    assert db.crashed
    with pytest.raises(EngineCrashed):
        db.execute("SELECT * FROM orders")
    db.execute("RECOVER")
    assert not db.crashed


# ---- storage layout -------------------------------------------------------------------------

def test_layout_manifest_lists_every_file_and_offsets(tmp_path: Path) -> None:
    with kernel_engine.connect(str(tmp_path), barrier_interval_ms=SLOW) as db:
        run(db, [*SCHEMA, *BATCH1, "FLUSH"])
        log_seq = {t: max(int(p.stem) for p in (tmp_path / "log" / t).iterdir())
                   for t in ("orders", "custs")}
        fingerprint = newest_manifest(tmp_path).fingerprint
    assert {"manifests", "data", "log"} <= {p.name for p in tmp_path.iterdir()}
    manifest = newest_manifest(tmp_path)
    assert manifest.epoch == list_manifests(Storage.local_folder(str(tmp_path)))[-1]
    assert manifest.fingerprint == fingerprint and len(manifest.fingerprint) == 16
    assert manifest.sources == log_seq
    assert "__t_orders" in manifest.tables and "__mv_per_cust" in manifest.tables
    assert objects(manifest)
    assert_intact(tmp_path)
    assert set(files_under(tmp_path, "data")) == referenced(tmp_path)  # no stray file
    assert any("CREATE MATERIALIZED VIEW big_custs" in sql for sql in manifest.ddl)


def test_files_are_never_rewritten(tmp_path: Path) -> None:
    def stamp() -> dict[Path, tuple[str, int, int]]:
        return {p: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns,
                    p.stat().st_ino)
                for sub in ("data", "manifests", "log")
                for p in (tmp_path / sub).rglob("*") if p.is_file()}

    with kernel_engine.connect(str(tmp_path), barrier_interval_ms=SLOW) as db:
        run(db, [*SCHEMA, *BATCH1, "FLUSH", *BATCH2, "FLUSH", RARE_CHECKPOINTS])
        before = stamp()
        for i in range(COMPACT_AFTER + 2):  # enough deltas for a compaction and GC
            run(db, [f"UPDATE orders SET amount = amount + 1 WHERE id = {1 + i % 4}", "FLUSH"])
    after = stamp()
    assert any(p not in after for p in before), "nothing was garbage-collected"
    for path, seen in before.items():
        if path in after:
            assert after[path] == seen, f"{path} was modified in place"


# ---- FLUSH and incremental checkpoints ------------------------------------------------------

@pytest.mark.parametrize("end", ["close", "crash"])
def test_flush_returns_only_when_durable(tmp_path: Path, end: str) -> None:
    db = kernel_engine.connect(str(tmp_path), barrier_interval_ms=SLOW)
    run(db, [*SCHEMA, *BATCH1, *BATCH2])
    db.execute("FLUSH")
    committed = db.progress.committed_epoch
    assert list_manifests(db.storage)[-1] >= committed
    assert newest_manifest(tmp_path).epoch >= committed
    if end == "crash":
        db.crash()
    else:
        db.close()
    with kernel_engine.connect(str(tmp_path), barrier_interval_ms=SLOW) as again:
        assert contents(again) == in_memory(SCHEMA + BATCH1 + BATCH2)


def test_checkpoint_bytes_follow_changed_keys(tmp_path: Path) -> None:
    ids = list(range(10_000))
    with kernel_engine.connect(str(tmp_path), barrier_interval_ms=SLOW) as db:
        run(db, ["CREATE TABLE t (id INT PRIMARY KEY, v INT)",
                 "CREATE MATERIALIZED VIEW per_id AS SELECT id, COUNT(*) AS n, SUM(v) AS s "
                 "FROM t GROUP BY id"])
        db.insert("t", pa.table({"id": ids, "v": ids}))
        db.execute("FLUSH")
        assert db.execute("SELECT COUNT(*) FROM per_id").fetchone() == (10_000,)
        history = db.durability.writer.history
        first = max(history, key=lambda h: h["bytes"])
        seen = len(history)
        run(db, ["UPDATE t SET v = v + 1 WHERE id < 10", "FLUSH"])
        later = history[seen:]
    assert first["files"] >= 2 and first["duration_ms"] > 0
    assert later and any(h["files"] for h in later)
    assert all(h["duration_ms"] > 0 for h in later)
    small = sum(h["bytes"] for h in later)
    assert small < first["bytes"] / 10, (small, first)


def test_compaction_bounds_files_and_recovers_exactly(tmp_path: Path) -> None:
    db = kernel_engine.connect(str(tmp_path), barrier_interval_ms=SLOW)
    statements = [*SCHEMA[:1], *SCHEMA[2:4], BATCH1[0]]  # orders, per_cust, big_custs
    names = ("orders", "per_cust", "big_custs")
    run(db, [*statements, "FLUSH", RARE_CHECKPOINTS])
    most = 0
    for i in range(COMPACT_AFTER + 3):
        step = [f"INSERT INTO orders VALUES ({100 + i}, {i % 5}, {i})",
                f"UPDATE orders SET amount = amount + {i} WHERE cust = {i % 3}"]
        run(db, [*step, "FLUSH"])
        statements += step
        # compaction runs after a checkpoint lands, off its path: a manifest lists at most
        # one file more than COMPACT_AFTER, and the next one the merged files
        for info in newest_manifest(tmp_path).tables.values():
            assert len(info["files"]) <= COMPACT_AFTER + 1
            most = max(most, len(info["files"]))
    assert most == COMPACT_AFTER + 1  # deltas did pile up, and were merged
    compacted = [h for h in db.durability.writer.history if h.get("compaction_bytes")]
    assert compacted, "no checkpoint reported compaction bytes"
    assert_intact(tmp_path)
    db.crash()
    with kernel_engine.connect(str(tmp_path), barrier_interval_ms=SLOW) as again:
        assert contents(again, names) == in_memory(statements, names)


@pytest.mark.parametrize("retention", [2, 3])
def test_retention_keeps_newest_manifests_and_collects_files(tmp_path: Path,
                                                            retention: int) -> None:
    with kernel_engine.connect(str(tmp_path), barrier_interval_ms=SLOW,
                               checkpoint_retention=retention) as db:
        run(db, [*SCHEMA, *BATCH1, "FLUSH"])
        for i in range(retention + 4):
            run(db, [f"INSERT INTO orders VALUES ({100 + i}, 10, {i})", "FLUSH"])
        last = db.progress.committed_epoch
    epochs = [int(p.stem) for p in (tmp_path / "manifests").iterdir()]
    assert sorted(epochs) == list(range(last - retention + 1, last + 1))
    assert set(files_under(tmp_path, "data")) == referenced(tmp_path)
    assert_intact(tmp_path)  # and every object they need is still there


# ---- recovery ---------------------------------------------------------------------------------

def test_connect_restores_views_and_replays_the_log(tmp_path: Path) -> None:
    db = kernel_engine.connect(str(tmp_path), barrier_interval_ms=SLOW)
    run(db, [*SCHEMA, *BATCH1, "FLUSH", RARE_CHECKPOINTS, *BATCH2])
    checkpointed = newest_manifest(tmp_path).sources
    db.crash()
    logged = {t: max(int(p.stem) for p in (tmp_path / "log" / t).iterdir()) for t in checkpointed}
    assert all(logged[t] > checkpointed[t] for t in checkpointed), "nothing left to replay"
    with kernel_engine.connect(str(tmp_path), barrier_interval_ms=SLOW) as again:
        assert again.progress.errors == []
        assert contents(again) == in_memory(SCHEMA + BATCH1 + BATCH2)
        run(again, BATCH3)
        again.execute("FLUSH")
        assert contents(again) == in_memory(SCHEMA + BATCH1 + BATCH2 + BATCH3)


@pytest.mark.parametrize("crash_first", [False, True])
def test_recover_statement_in_a_running_engine(tmp_path: Path, crash_first: bool) -> None:
    with kernel_engine.connect(str(tmp_path), barrier_interval_ms=SLOW) as db:
        run(db, [*SCHEMA, *BATCH1, "FLUSH", *BATCH2])
        if crash_first:
            db.crash()
        db.execute("RECOVER")
        assert contents(db) == in_memory(SCHEMA + BATCH1 + BATCH2)
        run(db, [*BATCH3, "FLUSH"])
        assert contents(db) == in_memory(SCHEMA + BATCH1 + BATCH2 + BATCH3)
        assert db.progress.errors == []


def test_a_statement_that_returned_survives_a_crash(tmp_path: Path) -> None:
    with (kernel_engine.connect(str(tmp_path), barrier_interval_ms=SLOW) as db,
          kernel_engine.connect(barrier_interval_ms=SLOW) as ref):
        run(db, [*SCHEMA, *BATCH1])
        run(ref, [*SCHEMA, *BATCH1])
        for sql in BATCH2:
            db.execute(sql)
            ref.execute(sql)
            db.crash()
            db.execute("RECOVER")
            ref.execute("FLUSH")
            assert contents(db) == contents(ref), f"after {sql}"
        rows = pa.table({"cust": [50, 50], "name": ["eve", "eve"]})
        db.insert("custs", rows)
        ref.insert("custs", rows)
        db.crash()
        db.execute("RECOVER")
        ref.execute("FLUSH")
        assert contents(db) == contents(ref), "after db.insert"


def test_nothing_is_written_after_a_crash(tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    db = kernel_engine.connect(str(tmp_path), barrier_interval_ms=SLOW)
    run(db, [*SCHEMA, *BATCH1, "FLUSH"])
    write = db.storage.write

    def slow_write(rel: str, data: bytes) -> None:
        if rel.startswith("data/"):
            time.sleep(0.2)  # a slow upload: checkpoints are still being written at the crash
        write(rel, data)

    monkeypatch.setattr(db.storage, "write", slow_write)
    run(db, BATCH2)  # UPDATE/DELETE end epochs: their checkpoints go to the writer
    db.crash()
    listing = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    time.sleep(1.0)
    assert sorted(p for p in tmp_path.rglob("*") if p.is_file()) == listing, (
        "a dead engine went on writing to its location")
    monkeypatch.undo()
    db.execute("RECOVER")
    assert contents(db) == in_memory(SCHEMA + BATCH1 + BATCH2)
    db.close()


def test_a_statement_racing_a_crash_fails_instead_of_hanging(tmp_path: Path) -> None:
    db = kernel_engine.connect(str(tmp_path), barrier_interval_ms=SLOW)
    run(db, [*SCHEMA, *BATCH1, "FLUSH"])
    coordinator = db.coordinator
    put = coordinator._queue.put

    def die_first(msg: Any, *args: Any, **kwargs: Any) -> None:
        if isinstance(msg, _Command):  # the engine dies after the caller's check, before this
            coordinator._queue.put = put  # type: ignore[method-assign]
            coordinator.kill()
        put(msg, *args, **kwargs)

    coordinator._queue.put = die_first  # type: ignore[method-assign]
    outcome: list[BaseException | None] = []

    def flush() -> None:
        try:
            db.execute("FLUSH")
            outcome.append(None)
        except BaseException as err:  # noqa: BLE001 - inspected below
            outcome.append(err)

    caller = threading.Thread(target=flush, daemon=True)
    caller.start()
    caller.join(timeout=10)
    assert not caller.is_alive(), "FLUSH hangs on an engine that died under it"
    assert isinstance(outcome[0], EngineCrashed)
    db.execute("RECOVER")
    assert contents(db) == in_memory(SCHEMA + BATCH1)
    db.close()


@pytest.mark.parametrize("at", CRASH_POINTS)
def test_every_crash_point_recovers_exactly(tmp_path: Path, at: str) -> None:
    with kernel_engine.connect(str(tmp_path), barrier_interval_ms=SLOW) as db:
        run(db, [*SCHEMA, *BATCH1, "FLUSH"])
        if at == "processing":  # the INSERT returns; the engine dies processing it
            trigger = ["INSERT INTO orders VALUES (50, 40, 8)"]
            db.crash(at=at)
            db.execute(trigger[0])
            with pytest.raises(EngineCrashed):
                db.execute("FLUSH")
            assert db.wait_crashed(timeout=10)
            db.execute("RECOVER")
            done = [*SCHEMA, *BATCH1, *trigger]
        else:  # the checkpoint of the epoch holding BATCH2 dies at `at`
            run(db, BATCH2)
            crash_and_recover(db, at, [])
            done = [*SCHEMA, *BATCH1, *BATCH2]
        assert contents(db) == in_memory(done)
        run(db, [*BATCH3, "FLUSH"])
        assert contents(db) == in_memory(done + BATCH3)
        assert db.progress.errors == []


@pytest.mark.parametrize("at", ["after_snapshot", "after_manifest"])
def test_ddl_cut_by_a_crash_is_there_entirely_or_not_at_all(tmp_path: Path, at: str) -> None:
    with kernel_engine.connect(str(tmp_path), barrier_interval_ms=SLOW) as db:
        run(db, [*SCHEMA[:2], *BATCH1, "FLUSH", *BATCH2, "FLUSH"])  # no checkpoint in flight
        db.crash(at=at)
        with pytest.raises(EngineCrashed):
            db.execute(SCHEMA[2])
        assert db.wait_crashed(timeout=10)
        db.execute("RECOVER")
        views = [name for (name,) in db.execute("SHOW MATERIALIZED VIEWS").fetchall()]
        assert views == ([] if at == "after_snapshot" else ["per_cust"])  # manifest = commit
        if not views:  # not acknowledged, not there: the client runs it again
            db.execute(SCHEMA[2])
        run(db, SCHEMA[3:])
        assert contents(db) == in_memory(SCHEMA + BATCH1 + BATCH2)


@pytest.mark.parametrize("at", CRASH_POINTS)
def test_crash_lab_exactly_once_at_every_point(at: str) -> None:
    result = run_crash_lab(ARTICLE_WORKLOAD, at, "exactly_once")
    assert result.ok, result.summary()
    assert [(s["duplicated"], s["lost"]) for s in result.summary()] == [(0, 0), (0, 0)]


# ---- crashes mid-write and damaged checkpoints ------------------------------------------------

def test_stray_files_are_removed_at_the_next_start(tmp_path: Path) -> None:
    db = kernel_engine.connect(str(tmp_path), barrier_interval_ms=SLOW)
    run(db, [*SCHEMA, *BATCH1, "FLUSH", *BATCH2])
    db.crash(at="mid_upload")  # one data file of the epoch is up, no manifest
    with pytest.raises(EngineCrashed):
        db.execute("FLUSH")
    assert db.wait_crashed(timeout=10)
    orphans = set(files_under(tmp_path, "data")) - referenced(tmp_path)
    assert orphans, "the crash left no partial checkpoint behind"
    table_dir = tmp_path / "data" / "__t_orders"
    junk = [table_dir / "x.parquet", table_dir / "00000000000000000099-0badf00d.parquet",
            table_dir / "00000000000000000099-0badf00d.parquet.tmp-1234",
            tmp_path / "manifests" / f"{manifest_path(99)[10:]}.tmp-1234"]
    real = next(table_dir.iterdir()).read_bytes()
    junk[0].write_bytes(b"PAR1 not really parquet")
    junk[1].write_bytes(real[: len(real) // 2])
    junk[2].write_bytes(real[: len(real) // 3])
    junk[3].write_bytes(b'{"body": {"epoch": 99')
    with kernel_engine.connect(str(tmp_path), barrier_interval_ms=SLOW) as again:
        assert contents(again) == in_memory(SCHEMA + BATCH1 + BATCH2)
    assert not [p for p in junk if p.exists()]
    assert set(files_under(tmp_path, "data")) == referenced(tmp_path)
    assert not orphans & set(files_under(tmp_path, "data"))


def test_corrupt_data_file_falls_back_to_the_previous_checkpoint(tmp_path: Path) -> None:
    db = kernel_engine.connect(str(tmp_path), barrier_interval_ms=SLOW)
    run(db, [*SCHEMA, *BATCH1, "FLUSH", *BATCH2, "FLUSH"])
    db.close()
    newest = newest_manifest(tmp_path)
    entries = [f for info in newest.tables.values() for f in info["files"]
               if f["epoch"] == newest.epoch]
    target = tmp_path / max(entries, key=lambda f: f["bytes"])["path"]
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size: only the checksum can tell
    target.write_bytes(bytes(data))
    with pytest.warns(UserWarning, match=f"skipping checkpoint {newest.epoch}.*checksum"):
        again = kernel_engine.connect(str(tmp_path), barrier_interval_ms=SLOW)
    with again:
        assert contents(again) == in_memory(SCHEMA + BATCH1 + BATCH2)
        run(again, [*BATCH3, "FLUSH"])
        assert contents(again) == in_memory(SCHEMA + BATCH1 + BATCH2 + BATCH3)


@pytest.mark.parametrize("damaged", [1, 2])
def test_truncated_manifests_fall_back_to_an_older_checkpoint(tmp_path: Path,
                                                             damaged: int) -> None:
    statements = [*SCHEMA, *BATCH1, "FLUSH", *BATCH2, "FLUSH", *BATCH3]
    with kernel_engine.connect(str(tmp_path), barrier_interval_ms=SLOW) as db:
        run(db, [*statements, "FLUSH"])  # every DML statement ends a checkpointed epoch
    epochs = list_manifests(Storage.local_folder(str(tmp_path)))[-damaged:]
    for epoch in epochs:
        path = tmp_path / manifest_path(epoch)
        path.write_bytes(path.read_bytes()[:200])
    with pytest.warns(UserWarning) as caught:
        again = kernel_engine.connect(str(tmp_path), barrier_interval_ms=SLOW)
    skipped = {str(w.message).split(":")[0] for w in caught}
    assert skipped >= {f"skipping checkpoint {e}" for e in epochs}
    with warnings.catch_warnings():
        # one damaged checkpoint is replaced cleanly; of two, the newer stays (and is
        # warned about again by the checkpoint writer's housekeeping)
        warnings.simplefilter("error" if damaged == 1 else "ignore")
        with again:  # the DML logs reach back to the oldest kept checkpoint
            assert contents(again) == in_memory(statements)
        with kernel_engine.connect(str(tmp_path), barrier_interval_ms=SLOW) as third:
            assert contents(third) == in_memory(statements)


def test_no_intact_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    with kernel_engine.connect(str(tmp_path), barrier_interval_ms=SLOW) as db:
        run(db, [*SCHEMA, *BATCH1, "FLUSH", *BATCH2, "FLUSH"])
    storage = Storage.local_folder(str(tmp_path))
    manifests = [load_manifest(storage, e) for e in list_manifests(storage)]
    shared = set.intersection(*({o["path"] for o in objects(m)} for m in manifests if m))
    target = tmp_path / min(p for p in shared if p.startswith("data/"))
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.warns(UserWarning, match="checksum"), \
            pytest.raises(Error, match="no intact checkpoint"):
        kernel_engine.connect(str(tmp_path), barrier_interval_ms=SLOW)
    assert len(list_manifests(storage)) == len(manifests)  # nothing was thrown away


def test_manifest_of_a_different_plan_is_refused(tmp_path: Path) -> None:
    with kernel_engine.connect(str(tmp_path), barrier_interval_ms=SLOW) as db:
        run(db, [*SCHEMA, *BATCH1, "FLUSH"])
    manifest = newest_manifest(tmp_path)
    manifest.fingerprint = "0123456789abcdef"
    (tmp_path / manifest_path(manifest.epoch)).write_bytes(manifest.to_bytes())
    with pytest.raises(CatalogError, match="different streaming plan.*0123456789abcdef"):
        kernel_engine.connect(str(tmp_path), barrier_interval_ms=SLOW)


def test_unwritable_location_is_a_clear_error_at_connect(tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    with pytest.raises(StorageError, match="checkpoint folder"):
        kernel_engine.connect(str(afile / "sub"))
    if os.geteuid() != 0:  # root ignores permission bits
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(StorageError, match="not writable"):
            kernel_engine.connect(str(locked))
        with pytest.raises(StorageError):
            kernel_engine.connect(str(locked / "sub"))


# ---- parameters and the crash lab -------------------------------------------------------------

def parameters(db: kernel_engine.Connection) -> dict[str, str]:
    return {name: value for name, value, _ in db.execute("SHOW PARAMETERS").fetchall()}


def test_show_parameters_and_set_delivery_guarantee(tmp_path: Path) -> None:
    with kernel_engine.connect() as mem:
        assert "memory" in parameters(mem)["state_store"]
        assert parameters(mem)["delivery_guarantee"] == "exactly_once"
        with pytest.raises(Error, match="checkpoint storage"):
            mem.crash(at="processing")
    with kernel_engine.connect(str(tmp_path), delivery_guarantee="at_most_once") as db:
        shown = parameters(db)
        assert shown["state_store"] == str(tmp_path)
        assert shown["delivery_guarantee"] == "at_most_once"
        db.execute("SET delivery_guarantee = 'at_least_once'")
        assert parameters(db)["delivery_guarantee"] == "at_least_once"
        assert db.durability.guarantee == "at_least_once"
        with pytest.raises(BindError, match="exactly_once, at_least_once, at_most_once"):
            db.execute("SET delivery_guarantee = 'twice'")
        assert parameters(db)["delivery_guarantee"] == "at_least_once"
        with pytest.raises(BindError, match="unknown crash point"):
            db.crash(at="nowhere")
    with pytest.raises(BindError, match="delivery_guarantee"):
        kernel_engine.connect(str(tmp_path), delivery_guarantee="maybe")


def test_crash_lab_weaker_guarantees_duplicate_and_lose() -> None:
    found: dict[str, list[tuple[int, int]]] = {}
    for guarantee in ("at_least_once", "at_most_once"):
        for at in CRASH_POINTS:
            result = run_crash_lab(ARTICLE_WORKLOAD, at, guarantee)
            assert set(result.outcomes) == {"cons_events", "cons_user_spend"}
            found.setdefault(guarantee, []).extend(
                (s["duplicated"], s["lost"]) for s in result.summary())
    assert any(dup > 0 for dup, _ in found["at_least_once"])
    assert all(lost == 0 for _, lost in found["at_least_once"])
    assert any(lost > 0 for _, lost in found["at_most_once"])
    assert all(dup == 0 for dup, _ in found["at_most_once"])


def test_crash_lab_helper_on_a_connection() -> None:
    with kernel_engine.connect() as db:
        result = db.crash_lab()
        assert db.execute("SHOW TABLES").fetchall() == []  # this connection is untouched
    assert result.guarantee == "exactly_once" and result.at in CRASH_POINTS
    summary = {s["relation"]: s for s in result.summary()}
    assert set(summary) == {"cons_events", "cons_user_spend"}
    assert all(s["ok"] and s["duplicated"] == 0 and s["lost"] == 0 for s in summary.values())
    outcome = result.outcomes["cons_user_spend"]
    assert sorted(outcome.observed) == sorted(outcome.expected) and len(outcome.expected) == 5


def test_merged_statements_meet_a_primary_key_table_in_order(tmp_path: Path) -> None:
    """With storage, the batches of several statements reach the engine merged; a DELETE
    followed by an INSERT of an existing key must still overwrite it, as in memory."""
    script = ["CREATE TABLE t (k INT PRIMARY KEY, v INT)",
              "INSERT INTO t VALUES (8, 12), (0, 64)", "FLUSH",
              "INSERT INTO t VALUES (6, 53)", "DELETE FROM t WHERE k = 0",
              "INSERT INTO t VALUES (8, 17)", "UPDATE t SET v = v + 1 WHERE k = 6",
              "INSERT INTO t VALUES (6, 1), (0, 2)", "FLUSH"]
    want = [(0, 2), (6, 1), (8, 17)]
    for location in (None, str(tmp_path)):
        with kernel_engine.connect(location, barrier_interval_ms=SLOW) as db:
            for sql in script:
                db.execute(sql)
            assert db.execute("SELECT * FROM t ORDER BY k").fetchall() == want, location


def test_an_insert_whose_log_write_failed_after_landing_does_not_replay(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A log write can land and still fail (an S3 PUT whose answer is lost): the statement
    fails, so after a crash its rows must not come back from the log."""
    db = kernel_engine.connect(str(tmp_path), barrier_interval_ms=SLOW)
    db.execute("CREATE TABLE ev (id INT, v INT); INSERT INTO ev VALUES (1, 10); FLUSH")
    write = Storage.write

    def lands_then_fails(self: Storage, rel: str, data: bytes) -> None:
        write(self, rel, data)
        if rel.startswith("log/"):
            raise StorageError(f"cannot write {rel}: the answer was lost")

    monkeypatch.setattr(Storage, "write", lands_then_fails)
    with pytest.raises(StorageError, match="answer was lost"):
        db.execute("INSERT INTO ev VALUES (2, 20)")
    monkeypatch.setattr(Storage, "write", write)
    db.crash()
    db.execute("RECOVER")
    try:
        assert db.execute("SELECT * FROM ev ORDER BY id").fetchall() == [(1, 10)]
        db.execute("INSERT INTO ev VALUES (3, 30); FLUSH")
        db.crash()
        db.execute("RECOVER")
        assert db.execute("SELECT * FROM ev ORDER BY id").fetchall() == [(1, 10), (3, 30)]
    finally:
        db.close()
