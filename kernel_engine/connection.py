"""The public connection: `kernel_engine.connect()` and `Connection.execute(sql)`.

The connection parses statements and hands each to its handler. Handlers that
change the catalog or read current state run on the engine thread; queries
run on a reader cursor and see the last committed epoch.
"""

from __future__ import annotations

import atexit
import re
import warnings
import weakref
from typing import Any

import numpy as np
import pyarrow as pa
from sqlglot import exp

from kernel_engine._duck import Duck
from kernel_engine._values import literal_columns
from kernel_engine.catalog import Catalog, Relation
from kernel_engine.errors import BindError, CatalogError, Error, ExecutionError, UnsupportedError
from kernel_engine.meta.coordinator import Coordinator, EngineCrashed
from kernel_engine.meta.durability import (
    CRASH_POINTS,
    SINK_CRASH_POINTS,
    Durability,
    check_guarantee,
    fingerprint,
)
from kernel_engine.query.adhoc import translate_query, typed_string_literals
from kernel_engine.query.timetravel import resolve_time_travel, rewrite_epoch_form
from kernel_engine.result import Result
from kernel_engine.sql import statements as st
from kernel_engine.sql.explain import explain
from kernel_engine.sql.expr import to_duck_query
from kernel_engine.sql.parse import parse
from kernel_engine.sql.plan import Planner
from kernel_engine.state.checkpoint import (
    ChecksumError,
    Manifest,
    fold,
    list_manifests,
    load_manifest,
    read_table_files,
    remove_unreferenced,
)
from kernel_engine.state.storage import Storage
from kernel_engine.state.table import quote
from kernel_engine.stream.build import arrow_schema, build_view
from kernel_engine.stream.graph import Graph
from kernel_engine.stream.message import with_weight
from kernel_engine.stream.operators import TableSource
from kernel_engine.types import display_name

__all__ = ["Connection", "connect"]

_OPEN: weakref.WeakSet[Connection] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    """Stop every engine thread before the interpreter (and DuckDB) shuts down."""
    for db in list(_OPEN):
        try:
            db.close()
        except Exception:  # noqa: BLE001 - best effort at exit
            pass

ROW_ID = "_row_id"
SOURCE_KEY = "connector:"
POLL_ROWS = 1_048_576  # rows a connector hands the engine per poll (the engine coalesces)
_UNKNOWN_COLUMN = re.compile(
    r'(?:Referenced column|^Column) "([^"]+)" (?:not found|referenced that)'
    r'|^Values list "([^"]+)" does not have a column named "([^"]+)"')


def connect(location: str | None = None, *, storage_options: dict[str, Any] | None = None,
            barrier_interval_ms: int = 1000, delivery_guarantee: str = "exactly_once",
            checkpoint_retention: int = 3) -> Connection:
    """Start an engine.

    With no location, state lives in memory only. With a local folder or an
    `s3://bucket/prefix` URL, DML is logged and state checkpointed there; if the
    location already holds checkpoints, the engine recovers from the newest one.
    """
    storage = Storage.open(location, storage_options) if location is not None else None
    return Connection(barrier_interval_ms=barrier_interval_ms, storage=storage,
                      delivery_guarantee=delivery_guarantee,
                      checkpoint_retention=checkpoint_retention)


class Connection:
    """A running engine and the session that talks to it."""

    def __init__(self, barrier_interval_ms: int = 1000, storage: Storage | None = None,
                 delivery_guarantee: str = "exactly_once", checkpoint_retention: int = 3
                 ) -> None:
        self.storage = storage
        self.guarantee = check_guarantee(delivery_guarantee)
        self.retention = max(checkpoint_retention, 2)  # the newest two are always kept
        self.barrier_interval_ms = barrier_interval_ms
        self.implicit_flush = False
        self.session: dict[str, str] = {}
        self._closed = False
        self._restoring = False
        self._python_readers: dict[str, Any] = {}
        self._restored_offsets: dict[str, Any] = {}
        self._pending_sinks: list[Any] = []  # sink runners to start once a restore is done
        _OPEN.add(self)
        self._start_engine(first_epoch=1)
        if storage is not None:
            remove_unreferenced(storage)
            if list_manifests(storage):
                self._recover()

    def _start_engine(self, first_epoch: int) -> None:
        """Fresh in-memory engine state: DuckDB, catalog, graph, engine thread."""
        self.duck = Duck(streaming=True)
        self.catalog = Catalog()
        self.graph = Graph()
        self._schemas: dict[str, pa.Schema] = {}
        self.durability = (Durability(self.storage, self.guarantee, self.retention)
                           if self.storage is not None else None)
        self.coordinator = Coordinator(self.duck, self.graph, self.barrier_interval_ms,
                                       self.durability, self._ddl, first_epoch)

    def _ddl(self) -> list[str]:
        with self.catalog.lock:
            return [rel.sql for rel in self.catalog.relations.values()]

    # ---- public API ----------------------------------------------------------------------

    def execute(self, sql: str) -> Result:
        """Run one or more statements; return the result of the last."""
        statements = parse(rewrite_epoch_form(sql))
        if not (statements and isinstance(statements[0][1], st.Recover)):
            self._check_open()
        result = Result()
        for index, (_, stmt) in enumerate(statements, start=1):
            try:
                result = self._run(stmt)
            except Error as err:
                if len(statements) > 1:
                    raise err.with_statement(index, stmt.sql) from None
                raise
        return result

    def sql(self, sql: str) -> Result:
        """Alias of execute (DuckDB habit)."""
        return self.execute(sql)

    def insert(self, table: str, data: Any) -> None:
        """Bulk INSERT of a pyarrow Table/RecordBatch or pandas DataFrame into `table`."""
        self._check_open()
        if isinstance(data, pa.RecordBatch):
            data = pa.Table.from_batches([data])
        elif not isinstance(data, pa.Table):
            data = pa.Table.from_pandas(data, preserve_index=False)
        rel = self._table(table)
        unknown = [c for c in data.column_names if c not in dict(rel.visible)]
        if unknown:
            raise CatalogError(f'column "{unknown[0]}" of relation "{table}" does not exist')
        self._submit(rel, self._conform(rel, data))
        if self.implicit_flush:
            self._flush()

    def flush(self) -> None:
        """Wait until everything issued before is visible (and durable, with storage)."""
        self._flush()

    def _flush(self) -> None:
        epoch = self.coordinator.flush()
        self._wait_durable(epoch)
        if self.coordinator.sinks and not self._restoring:
            from kernel_engine.sinks.ddl import wait_sinks

            wait_sinks(self, epoch)

    def _wait_durable(self, epoch: int | None = None) -> None:
        if self.durability is None or self._restoring:
            return
        epoch = epoch if epoch is not None else self.coordinator.progress.checkpoint_epoch
        while not self.durability.writer.wait_durable(epoch, timeout=1.0):
            if self.coordinator.crashed or self.durability.writer.crashed is not None:
                raise EngineCrashed()

    # ---- crashes and recovery -----------------------------------------------------------

    @property
    def crashed(self) -> bool:
        """True once the engine died (an injected crash); RECOVER brings it back."""
        return self.coordinator.crashed

    def crash(self, at: str | None = None) -> None:
        """Kill the engine now, or arm a crash at a named point (see CRASH_POINTS).

        A crash discards all in-memory state, as a process death would.
        """
        if at is None:
            self.coordinator.kill()
            self._discard()
            return
        if at not in CRASH_POINTS + SINK_CRASH_POINTS:
            raise BindError(f"unknown crash point {at!r}; known: "
                            f"{', '.join(CRASH_POINTS + SINK_CRASH_POINTS)}")
        if self.durability is None:
            raise UnsupportedError("crash points need checkpoint storage: "
                                   "kernel_engine.connect('folder/')")
        self.durability.crash_at = at

    def wait_crashed(self, timeout: float = 10.0) -> bool:
        """Wait for an armed crash to fire; True when the engine is dead."""
        if self.coordinator.wait_crashed(timeout):
            self._discard()
            return True
        return False

    def _discard(self) -> None:
        self.coordinator.crashed = True
        for runner in list(self.coordinator.sinks.values()):  # nothing more reaches targets
            runner.abandon()
        self._pending_sinks = []
        if self.durability is not None:
            self.durability.writer.abandon()
        try:
            self.duck.close()
        except Exception:  # noqa: BLE001 - already gone
            pass

    def crash_lab(self, workload: list[str] | None = None, at: str = "after_snapshot",
                  guarantee: str | None = None, crash_after: int | None = None) -> Any:
        """Run a workload (default: the article's example 2) with a crash and compare.

        Runs in its own engines and temporary folder; this connection is untouched.
        Returns a `CrashLabResult` with expected vs observed content, duplicated and
        lost events per table and view.
        """
        from kernel_engine.meta.crashlab import ARTICLE_WORKLOAD, run_crash_lab

        return run_crash_lab(workload or ARTICLE_WORKLOAD, at, guarantee or self.guarantee,
                             crash_after)

    def recover(self) -> None:
        """Rebuild the engine from the newest complete checkpoint and replay the logs."""
        if self.storage is None:
            raise UnsupportedError("RECOVER is not supported without checkpoint storage: this "
                                   "engine keeps its "
                                   "state in memory only")
        if not self.coordinator.crashed:
            self.coordinator.kill()
        self._discard()
        self._recover()

    def _recover(self) -> None:
        assert self.storage is not None
        epochs = list_manifests(self.storage)
        for epoch in reversed(epochs):
            manifest = load_manifest(self.storage, epoch)
            if manifest is None:
                continue
            try:
                self._restore(manifest)
                return
            except ChecksumError as err:
                warnings.warn(f"skipping checkpoint {epoch}: {err}", stacklevel=2)
        if epochs:  # starting empty would lose everything, and GC would drop the new epochs
            raise ChecksumError(f"no intact checkpoint in {self.storage.url}: all "
                                f"{len(epochs)} are damaged (epochs {epochs[0]}..{epochs[-1]}); "
                                "refusing to start empty over them")
        self._start_engine(first_epoch=1)

    def _restore(self, manifest: Manifest) -> None:
        if not self.coordinator.crashed:
            self.coordinator.kill()
            self._discard()
        self._start_engine(first_epoch=manifest.epoch + 1)
        try:
            self._call(lambda: self._restore_on_engine(manifest))
        except BaseException:
            self.coordinator.kill()
            self._discard()
            raise
        if self._pending_sinks:
            from kernel_engine.sinks.ddl import start_restored

            start_restored(self)
        self._flush()

    def _restore_on_engine(self, manifest: Manifest) -> None:
        assert self.durability is not None and self.storage is not None
        self._restoring = True
        try:
            for sql in manifest.ddl:
                for _, stmt in parse(sql):
                    self._run(stmt)
            found = fingerprint(self.graph.operators)
            if found != manifest.fingerprint:
                raise CatalogError(
                    f"checkpoint {manifest.epoch} was written by a different streaming plan "
                    f"(fingerprint {manifest.fingerprint}, this engine builds {found}); "
                    "refusing to restore it")
            tables = Durability.state_tables(self.graph.operators)
            for name, info in manifest.tables.items():
                if name not in tables:
                    raise CatalogError(f"checkpoint {manifest.epoch} has state table {name} "
                                       "that the plan does not")
                try:
                    parts = read_table_files(self.storage, info["files"])
                except ValueError as err:
                    raise ChecksumError(str(err)) from None
                tables[name].restore(fold(self.duck, parts, info["key"]) if parts
                                     else tables[name].snapshot().slice(0, 0))
            self._restored_offsets = {k: v for k, v in manifest.sources.items()
                                      if not isinstance(v, dict)}
            self._replay(self.durability.recovery_offsets(manifest))
            self.durability.writer.start_from(manifest)
        finally:
            self._restoring = False

    def _replay(self, offsets: dict[str, Any]) -> None:
        assert self.durability is not None
        self.durability.offsets = dict(offsets)
        self.durability.checkpointed = {k: int(v) for k, v in offsets.items()
                                        if not isinstance(v, dict)}
        for rel in list(self.catalog.relations.values()):
            if rel.kind not in ("table", "source"):
                continue
            top = 0
            saved = offsets.get(SOURCE_KEY + rel.name)
            if rel.reader is not None and isinstance(saved, dict):
                saved = dict(saved)
                top = int(saved.pop(ROW_ID, 0))
                rel.reader.seek(saved)
            state = rel.op.state_tables()[0]
            if not rel.primary_key:
                top = max(top, self.duck.arrow(
                    f"SELECT COALESCE(MAX({ROW_ID}) + 1, 0) AS n "
                    f"FROM {quote(state.name)}").column(0)[0].as_py())
            log = self.durability.log(rel.name)
            log.next_seq = max(log.next_seq, int(offsets.get(rel.name, 0)) + 1,
                               int(self._restored_offsets.get(rel.name, 0)) + 1)
            for seq, chunk in log.read_after(int(offsets.get(rel.name, 0))):
                if not rel.primary_key and chunk.num_rows:
                    top = max(top, int(pa.compute.max(chunk[ROW_ID]).as_py()) + 1)
                self.coordinator.submit(rel.op, chunk, seq)
            rel.next_row_id = top

    @property
    def progress(self) -> Any:
        """Epochs, barrier latencies, errors (see meta.Progress)."""
        return self.coordinator.progress

    def operator_rows(self) -> dict[str, tuple[int, int]]:
        """Rows in and out of every operator."""
        return {op.identity: (op.rows_in, op.rows_out) for op in self.graph.operators}

    def close(self) -> None:
        """Stop the engine."""
        if not self._closed:
            self._closed = True
            self.coordinator.stop()
            if self.coordinator.sinks and not self.coordinator.crashed:
                from kernel_engine.sinks.ddl import close_sinks

                close_sinks(self)

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise Error("connection is closed")
        if self.coordinator.crashed:
            raise EngineCrashed()

    # ---- dispatch ------------------------------------------------------------------------

    def _run(self, stmt: st.Statement) -> Result:
        handler = getattr(self, f"_do_{type(stmt).__name__}", None)
        if handler is None:
            raise UnsupportedError(f"{type(stmt).__name__} is not supported")
        result: Result = handler(stmt)
        return result

    def _ddl_call(self, fn: Any) -> Result:
        """Run DDL on the engine thread; return once it is committed (and durable)."""
        result: Result = self._call(fn, barrier=True)
        self._wait_durable()
        return result

    def _call(self, fn: Any, barrier: bool = False, fresh: bool = False) -> Any:
        return self.coordinator.call(fn, barrier=barrier, fresh=fresh)

    # ---- DDL -----------------------------------------------------------------------------

    def _do_CreateTable(self, stmt: st.CreateTable) -> Result:  # noqa: N802
        kind = "source" if stmt.source else "table"
        reader = self._make_reader(stmt) if stmt.options.get("connector") else None
        names = [c for c, _ in stmt.columns]
        if len(set(names)) != len(names):
            raise BindError(f"column name duplicated in table {stmt.name}")
        for k in stmt.primary_key:
            if k not in names:
                raise CatalogError(f'primary key column "{k}" is not a column of {stmt.name}')
        if stmt.append_only and stmt.primary_key:
            raise BindError("an APPEND ONLY table cannot have a primary key")

        def create() -> Result:
            if self.catalog.get(stmt.name) is not None:
                if stmt.if_not_exists:
                    return Result(status=f"CREATE_{kind.upper()}")
                raise CatalogError(f'relation "{stmt.name}" already exists')
            hidden = [] if stmt.primary_key else [(ROW_ID, "BIGINT")]
            cols = list(stmt.columns) + hidden
            key = list(stmt.primary_key) or [ROW_ID]
            op = TableSource(self.duck, stmt.name, cols, key, bool(stmt.primary_key),
                             stmt.on_conflict)
            # a source stores nothing durable: its connector replays from the checkpointed
            # offset, and the views over it keep their own state
            op.state.persisted = not stmt.source
            self._create_view(stmt.name, op.state.name, names)
            self.graph.add(op)
            self.coordinator.sources.append(op)
            columns = [(c, t, False) for c, t in stmt.columns] + [(c, t, True) for c, t in hidden]
            rel = Relation(stmt.name, kind, columns, key, stmt.sql, op, operators=[op],
                           primary_key=list(stmt.primary_key),
                           append_only=stmt.append_only or stmt.source, reader=reader)
            self.catalog.add(rel)
            if reader is not None:
                self.coordinator.pollers[stmt.name] = self._poller(rel)
            elif self.durability is not None and not stmt.primary_key:
                self.durability.log_backed[op.state.name] = stmt.name
            return Result(status=f"CREATE_{kind.upper()}")

        return self._ddl_call(create)

    def _make_reader(self, stmt: st.CreateTable) -> Any:
        from kernel_engine.connectors import make_reader

        options = dict(stmt.options)
        if options.get("connector") == "python":
            reader = self._python_readers.get(stmt.name)
            if reader is None:
                warnings.warn(f"python source {stmt.name} is not registered in this process; "
                              "call db.create_source again to feed it", stacklevel=2)
            return reader
        return make_reader(options, list(stmt.columns), stmt.format, stmt.encode)

    def _poller(self, rel: Relation) -> Any:
        """Read what a connector has now and push it into its table (engine thread)."""

        def poll() -> bool:
            batch = rel.reader.next_batch(POLL_ROWS)
            if batch is None or batch.num_rows == 0:
                return False
            rows = self._conform(rel, batch)
            chunk = with_weight(self._with_row_ids(rel, rows), 1)
            offset = rel.reader.offset()
            if not rel.primary_key:  # row ids go on after a recovery, even for a source
                offset = {**offset, ROW_ID: rel.next_row_id}
            self.coordinator.source_batch(rel.op, chunk, offset)
            return batch.num_rows >= POLL_ROWS  # a full batch: more is probably waiting

        return poll

    def create_source(self, name: str, data: Any, *, schema: Any = None,
                      event_time: str | None = None, speed: float | None = None) -> None:
        """A source fed from Python: a DataFrame/Arrow table (optionally paced by an
        event-time column at `speed` event-seconds per second) or a generator factory
        `gen(offset)` that can restart at a row offset. Replays after a crash.

        After a restart (connect() recovered a checkpoint that has this source), calling it
        again with the same data feeds the recovered source from its checkpointed offset.
        """
        from kernel_engine.connectors.python import PythonSource

        reader = PythonSource(data, schema=schema, event_time=event_time, speed=speed)
        described = self.duck.reader().describe_arrow(reader.schema.empty_table())
        rel = self.catalog.get(name)
        if rel is not None and rel.kind == "source" and rel.reader is None:
            self._reattach(rel, reader, described)
            return
        cols = ", ".join(f"{quote(c)} {t}" for c, t in described)
        self._python_readers[name] = reader
        self.execute(f"CREATE SOURCE {quote(name)} ({cols}) WITH (connector = 'python')")

    def _reattach(self, rel: Relation, reader: Any, described: list[tuple[str, str]]) -> None:
        """Feed a recovered Python source that has no reader in this process."""
        have = [(c, t.upper()) for c, t in rel.visible]
        want = [(c, t.upper()) for c, t in described]
        if have != want:
            raise BindError(f"python source {rel.name} was created with columns "
                            f"({', '.join(f'{c} {t}' for c, t in have)}); the data given has "
                            f"({', '.join(f'{c} {t}' for c, t in want)})")

        def attach() -> None:
            saved = (self.durability.offsets.get(SOURCE_KEY + rel.name)
                     if self.durability is not None else None)
            if isinstance(saved, dict):
                reader.seek({k: v for k, v in saved.items() if k != ROW_ID})
            rel.reader = reader
            self._python_readers[rel.name] = reader
            self.coordinator.pollers[rel.name] = self._poller(rel)

        self._call(attach)

    def _create_view(self, name: str, table: str, visible: list[str]) -> None:
        cols = ", ".join(quote(c) for c in visible)
        self.duck.run(f"CREATE VIEW {quote(name)} AS SELECT {cols} FROM {quote(table)}")

    def _planner(self) -> Planner:
        return Planner(self.catalog, self.duck.describe)

    def _do_CreateMaterializedView(self, stmt: st.CreateMaterializedView) -> Result:  # noqa: N802
        self._check_literals(stmt.query, self.catalog.schema())

        def create() -> Result:
            if self.catalog.get(stmt.name) is not None:
                if stmt.if_not_exists:
                    return Result(status="CREATE_MATERIALIZED_VIEW")
                raise CatalogError(f'relation "{stmt.name}" already exists')
            planner = self._planner()
            plan = planner.plan_view(stmt.name, stmt.query)
            built = build_view(self.duck, plan)
            try:
                self._start_view(built)
                visible = [out for _, out, hidden in plan.columns if not hidden]
                self._create_view(stmt.name, built.materialize.state.name, visible)
            except Exception:
                self.graph.remove(built.operators)
                for op in built.operators:
                    op.drop()
                raise
            columns = [(out, c.type, hidden) for (_, out, hidden), c in
                       zip(plan.columns, plan.cols, strict=True)]
            key = [out for c, out, _ in plan.columns if c in plan.key]
            self.catalog.add(Relation(stmt.name, "materialized view", columns, key, stmt.sql,
                                      built.materialize, operators=built.operators,
                                      deps=set(planner.deps), plan=plan))
            return Result(status="CREATE_MATERIALIZED_VIEW")

        return self._ddl_call(create)

    def _start_view(self, built: Any) -> None:
        """Emit initial rows, backfill from upstream snapshots, then attach to upstream.

        While restoring a checkpoint the state comes from storage instead.
        """
        from kernel_engine.stream.operators import Scan

        for op in built.operators if not self._restoring else []:
            self.graph.push(op, op.initial())
        for relation, op, port in built.attach:
            if isinstance(op, Scan) and not self._restoring:
                upstream = self.catalog.get(relation)
                assert upstream is not None
                snapshot = upstream.op.state_tables()[0].snapshot()
                if snapshot.num_rows:
                    self.graph.deliver(op, port, snapshot)
        for relation, op, port in built.attach:
            upstream = self.catalog.get(relation)
            assert upstream is not None
            upstream.op.outputs.append((op, port))
        for op in built.operators:
            self.graph.add(op)

    def _do_CreateSink(self, stmt: st.CreateSink) -> Result:  # noqa: N802
        from kernel_engine.sinks.ddl import create_sink

        return create_sink(self, stmt)

    def _do_DropSink(self, stmt: st.DropSink) -> Result:  # noqa: N802
        from kernel_engine.sinks.ddl import drop_sink

        return drop_sink(self, stmt)

    def _do_AlterSink(self, stmt: st.AlterSink) -> Result:  # noqa: N802
        from kernel_engine.sinks.ddl import alter_sink

        return alter_sink(self, stmt)

    def _do_Drop(self, stmt: st.Drop) -> Result:  # noqa: N802
        kind = {"TABLE": "table", "SOURCE": "source"}.get(stmt.kind, "materialized view")
        if stmt.kind not in ("TABLE", "MATERIALIZED VIEW", "SOURCE"):
            raise UnsupportedError(f"DROP {stmt.kind} is not supported")

        def drop() -> Result:
            for name in stmt.names:
                rel = self.catalog.get(name)
                if rel is None or rel.kind != kind:
                    if stmt.if_exists:
                        continue
                    if rel is not None:
                        raise CatalogError(f'"{name}" is a {rel.kind}, not a {kind}; use '
                                           f"DROP {rel.kind.upper()}")
                    raise CatalogError(f'{kind} "{name}" does not exist')
                deps = self.catalog.dependents(name)
                if deps and not stmt.cascade:
                    raise CatalogError(f'cannot drop {kind} "{name}" because '
                                       f"{', '.join(deps)} depend(s) on it; use DROP ... CASCADE")
                self._drop(name)
            return Result(status=f"DROP_{stmt.kind.replace(' ', '_')}")

        return self._ddl_call(drop)

    def _drop(self, name: str) -> None:
        for dep in self.catalog.dependents(name):
            self._drop(dep)
        rel = self.catalog.get(name)
        if rel is None:
            return
        self.graph.remove(rel.operators)
        self.coordinator.sources = [s for s in self.coordinator.sources if s is not rel.op]
        self.coordinator.pollers.pop(name, None)
        if rel.reader is not None:
            rel.reader.close()
        self.duck.run(f"DROP VIEW IF EXISTS {quote(name)}")
        for op in rel.operators:
            op.drop()
        self.catalog.remove(name)
        self._schemas.pop(name, None)
        if rel.kind == "table" and self.durability is not None:
            self.durability.log(name).drop()
            self.durability.logs.pop(name, None)

    # ---- DML -----------------------------------------------------------------------------

    def _table(self, name: str) -> Relation:
        rel = self.catalog.get(name)
        if rel is None:
            raise CatalogError(f'table "{name}" does not exist')
        if rel.kind != "table":
            raise BindError(f'cannot change "{name}": it is a {rel.kind}, not a table')
        return rel

    def _schema(self, rel: Relation) -> pa.Schema:
        schema = self._schemas.get(rel.name)
        if schema is None:
            schema = self._schemas[rel.name] = arrow_schema(self.duck.reader(), rel.visible)
        return schema

    def _conform(self, rel: Relation, data: pa.Table) -> pa.Table:
        """The rows as the table's visible columns, cast to their types (or an error)."""
        schema = self._schema(rel)
        arrays = []
        for field in schema:
            if field.name not in data.column_names:
                arrays.append(pa.nulls(data.num_rows, field.type))
                continue
            col = data[field.name]
            if _is_text(col.type) and (pa.types.is_binary(field.type) or
                                       pa.types.is_list(field.type)):
                return self._conform_sql(rel, data)  # PostgreSQL text forms '\x..' and '{..}'
            if col.type != field.type:
                try:
                    col = col.cast(field.type)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
                    return self._conform_sql(rel, data)
            arrays.append(col)
        return pa.table(arrays, schema=schema)

    def _conform_sql(self, rel: Relation, data: pa.Table) -> pa.Table:
        items = []
        for name, typ in rel.visible:
            if name in data.column_names:
                text = _is_text(data.schema.field(name).type)
                items.append(f"{_cast(quote(name), typ, text)} AS {quote(name)}")
            else:
                items.append(f"CAST(NULL AS {typ}) AS {quote(name)}")
        try:
            return self.duck.reader().arrow(f"SELECT {', '.join(items)} FROM _src", _src=data)
        except Error as err:
            raise ExecutionError(f"cannot insert into {rel.name}: {err.message}") from None

    def _with_row_ids(self, rel: Relation, rows: pa.Table) -> pa.Table:
        if rel.primary_key:
            return rows
        with rel.lock:
            start = rel.next_row_id
            rel.next_row_id += rows.num_rows
        return rows.append_column(ROW_ID, pa.array(np.arange(start, start + rows.num_rows,
                                                             dtype=np.int64)))

    def _submit(self, rel: Relation, rows: pa.Table) -> None:
        if rows.num_rows == 0:
            return
        self._check_not_null_keys(rel, rows)
        self._enqueue(rel, with_weight(self._with_row_ids(rel, rows), 1))

    def _enqueue(self, rel: Relation, chunk: pa.Table) -> None:
        """Log a change batch durably (with storage), then queue it for the table."""
        if self.durability is None:
            self.coordinator.submit(rel.op, chunk)
            return
        log = self.durability.log(rel.name)
        with log.lock:
            seq = log.append(chunk)
            self.coordinator.submit(rel.op, chunk, seq)

    def _deliver_dml(self, rel: Relation, chunk: pa.Table) -> None:
        """Apply a change batch computed on the engine thread (UPDATE, DELETE, INSERT SELECT)."""
        if self.durability is None:
            self.graph.deliver(rel.op, 0, chunk)
        else:
            self._enqueue(rel, chunk)

    def _check_not_null_keys(self, rel: Relation, rows: pa.Table) -> None:
        for k in rel.primary_key:
            if rows[k].null_count:
                raise ExecutionError(f'null value in primary key column "{k}" of table '
                                     f'"{rel.name}"')

    def _positional(self, rel: Relation, data: pa.Table, columns: list[str] | None) -> pa.Table:
        names = columns if columns is not None else [c for c, _ in rel.visible]
        for c in names:
            if c not in dict(rel.visible):
                raise CatalogError(f'column "{c}" of relation "{rel.name}" does not exist')
        if data.num_columns != len(names):
            more = "more" if data.num_columns > len(names) else "fewer"
            raise BindError(f"INSERT has {more} expressions than target columns "
                            f"({data.num_columns} values for {len(names)} columns of "
                            f"{rel.name})")
        return data.rename_columns(names)

    def _do_Insert(self, stmt: st.Insert) -> Result:  # noqa: N802
        rel = self._table(stmt.table)
        if stmt.values_sql is not None:
            width = len(stmt.columns) if stmt.columns is not None else len(rel.visible)
            arrays = literal_columns(stmt.values_sql, width)
            if arrays is not None:
                data = pa.table(arrays, names=[f"c{i}" for i in range(width)])
            else:
                data = self.duck.reader().arrow(f"SELECT * FROM (VALUES {stmt.values_sql})")
            rows = self._conform(rel, self._positional(rel, data, stmt.columns))
            self._submit(rel, rows)
            count = rows.num_rows
        else:
            assert stmt.query is not None
            query = stmt.query

            def run() -> int:
                sql = translate_query(query, self.catalog)
                self._check_literals(query, self.catalog.schema())
                data = self.duck.reader().arrow(sql)
                rows = self._conform(rel, self._positional(rel, data, stmt.columns))
                if rows.num_rows:
                    self._check_not_null_keys(rel, rows)
                    self._deliver_dml(rel, with_weight(self._with_row_ids(rel, rows), 1))
                return int(rows.num_rows)

            count = self._call(run, fresh=True)
        if self.implicit_flush:
            self._flush()
        return Result(status=f"INSERT 0 {count}")  # PostgreSQL's command tag

    def _changed_rows(self, rel: Relation, where: exp.Expr | None,
                      extra: list[tuple[str, exp.Expr]]) -> tuple[pa.Table, list[str]]:
        state = rel.op.state_tables()[0]
        cols = state.column_names
        select = exp.select(*[exp.column(c, table=rel.name) for c in cols])
        for name, e in extra:
            select = select.select(exp.alias_(e.copy(), name))
        select = select.from_(exp.alias_(exp.to_table(state.name), rel.name, table=True))
        if where is not None:
            select = select.where(where.copy())
        schema = self.catalog.schema()
        schema[state.name] = {c: t for c, t, _ in rel.columns}
        self._check_literals(select, schema)
        return self.duck.reader().arrow(to_duck_query(select, schema)), cols

    def _do_Update(self, stmt: st.Update) -> Result:  # noqa: N802
        rel = self._table(stmt.table)
        if rel.append_only:
            raise BindError(f'table "{rel.name}" is append-only: UPDATE is not allowed')
        types = dict(rel.visible)
        for name, _ in stmt.assignments:
            if name not in types:
                raise CatalogError(f'column "{name}" of relation "{rel.name}" does not exist')
            if name in rel.primary_key:
                raise BindError(f'cannot UPDATE primary key column "{name}" of "{rel.name}"; '
                                "DELETE and INSERT the row instead")
        for name, e in stmt.assignments:
            if isinstance(e, exp.Literal) and e.is_string:
                self._check_cast(e.this, types[name], f'assigned to column "{name}"')
        extra: list[tuple[str, exp.Expr]] = [
            (f"__new_{n}", exp.Cast(this=e, to=exp.DataType.build(types[n], dialect="duckdb")))
            for n, e in stmt.assignments]

        def run() -> int:
            rows, cols = self._changed_rows(rel, stmt.where, extra)
            if rows.num_rows == 0:
                return 0
            old = rows.select(cols)
            new = old
            for name, _ in stmt.assignments:
                idx = new.column_names.index(name)
                new = new.set_column(idx, name, rows[f"__new_{name}"].cast(
                    new.schema.field(name).type))
            for k in rel.primary_key:
                if new[k].null_count:
                    raise ExecutionError(f'null value in primary key column "{k}"')
            change = pa.concat_tables([with_weight(old, -1), with_weight(new, 1)])
            self._deliver_dml(rel, change)
            return int(rows.num_rows)

        count = self._call(run, fresh=True)
        if self.implicit_flush:
            self._flush()
        return Result(status=f"UPDATE {count}")

    def _do_Delete(self, stmt: st.Delete) -> Result:  # noqa: N802
        rel = self._table(stmt.table)
        if rel.append_only:
            raise BindError(f'table "{rel.name}" is append-only: DELETE is not allowed')

        def run() -> int:
            rows, cols = self._changed_rows(rel, stmt.where, [])
            if rows.num_rows:
                self._deliver_dml(rel, with_weight(rows.select(cols), -1))
            return int(rows.num_rows)

        count = self._call(run, fresh=True)
        if self.implicit_flush:
            self._flush()
        return Result(status=f"DELETE {count}")

    # ---- session, system, introspection ----------------------------------------------------

    def _do_Recover(self, stmt: st.Recover) -> Result:  # noqa: N802
        self.recover()
        return Result(status="RECOVER")

    def _do_Flush(self, stmt: st.Flush) -> Result:  # noqa: N802
        self._flush()
        return Result(status="FLUSH")

    def _do_SetVariable(self, stmt: st.SetVariable) -> Result:  # noqa: N802
        value = stmt.value.lower()
        if stmt.name == "delivery_guarantee":
            self.guarantee = check_guarantee(stmt.value)
            if self.durability is not None:
                self.durability.guarantee = self.guarantee
        if stmt.name == "rw_implicit_flush":
            if value not in ("true", "false", "on", "off"):
                raise BindError(f"RW_IMPLICIT_FLUSH takes true or false, not {stmt.value!r}")
            self.implicit_flush = value in ("true", "on")
        self.session[stmt.name] = stmt.value
        return Result(status="SET")

    def _do_AlterSystem(self, stmt: st.AlterSystem) -> Result:  # noqa: N802
        if stmt.name not in ("barrier_interval_ms", "checkpoint_frequency"):
            raise CatalogError(f'unrecognized system parameter "{stmt.name}"; known: '
                               "barrier_interval_ms, checkpoint_frequency")
        try:
            value = int(stmt.value)
        except ValueError:
            raise BindError(f"{stmt.name} takes a positive integer, not {stmt.value!r}") from None
        if value <= 0:
            raise BindError(f"{stmt.name} must be positive, not {value}")
        setattr(self.coordinator, stmt.name, value)
        return Result(status="ALTER_SYSTEM")

    def _parameters(self) -> pa.Table:
        c = self.coordinator
        rows = [("barrier_interval_ms", str(c.barrier_interval_ms), True),
                ("checkpoint_frequency", str(c.checkpoint_frequency), True),
                ("state_store", self.storage.url if self.storage is not None
                 else "memory (no checkpoint storage configured)", False),
                ("delivery_guarantee", self.guarantee, True),
                ("checkpoint_retention", str(self.retention), False),
                ("rw_implicit_flush", str(self.implicit_flush).lower(), True)]
        return pa.table({"Name": [r[0] for r in rows], "Value": [r[1] for r in rows],
                         "Mutable": [r[2] for r in rows]})

    def _do_Show(self, stmt: st.Show) -> Result:  # noqa: N802
        what = stmt.what
        if what == "TABLES":
            return Result(pa.table({"Name": pa.array(self.catalog.names("table"), pa.string())}))
        if what == "MATERIALIZED VIEWS":
            return Result(pa.table({"Name": pa.array(self.catalog.names("materialized view"),
                                                     pa.string())}))
        if what == "SOURCES":
            return Result(pa.table({"Name": pa.array(self.catalog.names("source"),
                                                     pa.string())}))
        if what == "PARAMETERS":
            return Result(self._parameters())
        if what == "SINKS" or what == "CREATE SINK" or (
                what.startswith("CREATE") and stmt.name and
                getattr(self.catalog.get(stmt.name.lower()), "kind", "") == "sink"):
            from kernel_engine.sinks.ddl import show_create_sink, show_sinks

            if what == "SINKS":
                return Result(show_sinks(self))
            assert stmt.name is not None
            return Result(show_create_sink(self, _name(stmt.name)))
        if what.startswith("CREATE") and stmt.name:
            rel = self.catalog.get(stmt.name.lower())
            if rel is None:
                raise CatalogError(f'relation "{stmt.name}" does not exist')
            return Result(pa.table({"Name": [rel.name], "Create Sql": [rel.sql]}))
        raise UnsupportedError(f"SHOW {what} is not supported; try SHOW TABLES, SHOW "
                               "MATERIALIZED VIEWS or SHOW PARAMETERS")

    def _do_Describe(self, stmt: st.Describe) -> Result:  # noqa: N802
        rel = self.catalog.get(stmt.name)
        if rel is None:
            raise CatalogError(f'relation "{stmt.name}" does not exist')
        names = [c for c, _, _ in rel.columns]
        types = [display_name(t) for _, t, _ in rel.columns]
        hidden: list[bool | None] = [h for _, _, h in rel.columns]
        key = "primary key" if rel.kind == "table" else "stream key"
        names.append(key)
        types.append(", ".join(rel.key))
        hidden.append(None)
        return Result(pa.table({"Name": names, "Type": types,
                                "Is Hidden": pa.array(hidden, pa.bool_())}))

    def _do_Explain(self, stmt: st.Explain) -> Result:  # noqa: N802
        inner = stmt.inner
        if isinstance(inner, st.CreateMaterializedView):
            name, query = inner.name, inner.query
        elif isinstance(inner, st.Query):
            name, query = "query", inner.query
        elif isinstance(inner, st.CreateSink):
            from kernel_engine.sinks.ddl import explain_sink

            return Result(pa.table({"QUERY PLAN": pa.array(explain_sink(self, inner),
                                                           pa.string())}))
        else:
            raise UnsupportedError("EXPLAIN supports CREATE MATERIALIZED VIEW, CREATE SINK and "
                                   "SELECT")

        def plan() -> list[str]:
            return explain(self._planner().plan_view(name, query))

        lines = self._call(plan)
        return Result(pa.table({"QUERY PLAN": pa.array(lines, pa.string())}))

    def _do_Query(self, stmt: st.Query) -> Result:  # noqa: N802
        reader = self.duck.reader()
        query, snapshots, extra = resolve_time_travel(stmt.query, self.storage, self.catalog,
                                                      reader, self._state_table_name)
        sql = translate_query(query, self.catalog, extra)
        self._check_literals(query, {**self.catalog.schema(), **extra})
        try:
            table = reader.arrow(sql, **snapshots)
        except BindError as err:
            raise _bind_error(err) from None
        json_columns: list[int] = []
        if any(pa.types.is_string(f.type) for f in table.schema):
            json_columns = [i for i, (_, t) in enumerate(reader.describe(sql)) if t == "JSON"]
        return Result(table, json_columns=json_columns)

    def _state_table_name(self, name: str) -> str:
        rel = self.catalog.get(name)
        assert rel is not None
        return rel.op.state_tables()[0].name

    def _check_literals(self, query: exp.Query, schema: dict[str, dict[str, str]]) -> None:
        """Reject `int_col = 'abc'` while binding, as PostgreSQL does.

        The cast is tried on a reader cursor: a failing cast on the engine's
        connection would abort the epoch's transaction.
        """
        for text, typ, column in typed_string_literals(query, schema):
            self._check_cast(text, typ, f'compared with column "{column}"')

    def _check_cast(self, text: str, typ: str, context: str) -> None:
        cast = exp.cast(exp.Literal.string(text), exp.DataType.build(typ, dialect="duckdb"))
        try:
            self.duck.reader().arrow(f"SELECT {cast.sql('duckdb')}")
        except Error:
            name = display_name({"INT": "INTEGER"}.get(typ.upper(), typ))
            raise BindError(f'invalid input syntax for type {name}: "{text}" '
                            f"({context})") from None


def _is_text(typ: pa.DataType) -> bool:
    return bool(pa.types.is_string(typ) or pa.types.is_large_string(typ))


def _cast(col: str, typ: str, text: bool) -> str:
    """DuckDB SQL casting `col` to `typ`; text in PostgreSQL's bytea and array forms too."""
    if text and typ.upper() == "BLOB":  # '\xdeadbeef' is hex; anything else escaped bytes
        return (f"CASE WHEN starts_with({col}, '\\x') THEN unhex({col}[3:]) "
                f"ELSE CAST({col} AS BLOB) END")
    if text and typ.endswith("[]"):  # '{1,2}' reads as '[1,2]'
        return (f"CAST(CASE WHEN trim({col}) LIKE '{{%}}' THEN '[' || trim({col})[2:-2] || ']' "
                f"ELSE {col} END AS {typ})")
    return f"CAST({col} AS {typ})"


def _name(text: str) -> str:
    """An identifier as written: quoted keeps its case, otherwise lower-cased."""
    return text[1:-1] if text.startswith('"') and text.endswith('"') else text.lower()


def _bind_error(err: BindError) -> Error:
    """DuckDB's binder message in the engine's words: unknown columns, one line."""
    m = _UNKNOWN_COLUMN.search(err.message)
    if m is None:
        return BindError(err.message.split("\n")[0])
    name = m.group(1) or f"{m.group(2)}.{m.group(3)}"
    return CatalogError(f'column "{name}" does not exist')
