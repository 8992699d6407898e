"""CREATE / DROP / ALTER SINK, SHOW SINKS, SHOW CREATE SINK and EXPLAIN CREATE SINK.

The connection's statement handlers delegate here. A sink is a catalog relation of kind
"sink": its operators (a sink operator, after the planned query's operators for
`AS SELECT`), the statement that recreates it on recovery (with its id and options,
secrets included: the catalog must be able to reconnect), and its delivery runner.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from kernel_engine.catalog import Relation
from kernel_engine.errors import BindError, CatalogError, UnsupportedError
from kernel_engine.result import Result
from kernel_engine.sinks.files import FileTarget
from kernel_engine.sinks.operator import SinkOperator
from kernel_engine.sinks.postgres import PostgresTarget
from kernel_engine.sinks.runner import SinkRunner, Target
from kernel_engine.sinks.spec import ID_OPTION, SinkSpec, render_options
from kernel_engine.sql import statements as st
from kernel_engine.sql.explain import explain
from kernel_engine.stream.build import arrow_schema, build_view

__all__ = ["alter_sink", "close_sinks", "create_sink", "drop_sink", "explain_sink",
           "show_create_sink", "show_sinks", "wait_sinks"]

FLUSH_WAIT_S = 120.0
STRUCTURAL = ("connector", "type", "primary_key", "force_append_only", ID_OPTION)


def make_target(spec: SinkSpec, columns: list[tuple[str, str]]) -> Target:
    """The target object of a sink spec."""
    if spec.pg is not None:
        return PostgresTarget(spec, columns)
    return FileTarget(spec, columns)


def _sql(stmt: st.CreateSink, options: dict[str, str], masked: bool) -> str:
    text = f"{stmt.head} WITH ({render_options(options, masked)})"
    if stmt.encode is not None:
        text += f" FORMAT {stmt.format or 'PLAIN'} ENCODE {stmt.encode}"
        if stmt.format_options:
            text += f" ({render_options(stmt.format_options, masked)})"
    return text


def _columns(db: Any, stmt: st.CreateSink) -> list[tuple[str, str]]:
    """The sink's columns: the upstream relation's, or the query's."""
    if stmt.source is not None:
        rel = db.catalog.get(stmt.source)
        if rel is None or rel.kind == "sink":
            raise CatalogError(f'table, source or materialized view "{stmt.source}" does not '
                               "exist")
        return list(rel.visible)
    assert stmt.query is not None
    query = stmt.query

    def plan() -> list[tuple[str, str]]:
        p = db._planner().plan_view(stmt.name, query)
        return [(out, c.type) for (_, out, hidden), c in zip(p.columns, p.cols, strict=True)
                if not hidden]

    columns: list[tuple[str, str]] = db._call(plan)
    return columns


def create_sink(db: Any, stmt: st.CreateSink) -> Result:
    """CREATE SINK: validate options and target, then build the sink on the engine thread."""
    spec = SinkSpec.from_options(stmt.name, stmt.options, stmt.encode, stmt.format_options)
    exists = db.catalog.get(stmt.name)
    if exists is not None:
        if stmt.if_not_exists and exists.kind == "sink":
            return Result(status="CREATE_SINK")
        raise CatalogError(f'relation "{stmt.name}" already exists')
    columns = _columns(db, stmt)
    names = [c for c, _ in columns]
    for k in spec.primary_key:
        if k not in names:
            raise BindError(f'sink {stmt.name}: primary_key column "{k}" is not a column of '
                            f"the sink ({', '.join(names)})")
    target = make_target(spec, columns)
    if not db._restoring:
        target.check()
    stored = _sql(stmt, spec.stored_options(), masked=False)

    def create() -> Result:
        if db.catalog.get(stmt.name) is not None:
            if stmt.if_not_exists:
                return Result(status="CREATE_SINK")
            raise CatalogError(f'relation "{stmt.name}" already exists')
        operators, upstream, deps = _upstream(db, stmt)
        schema = arrow_schema(db.duck, columns)
        schema = schema.append(pa.field("_op", pa.int16()))
        op = SinkOperator(db.duck, stmt.name, columns, schema, upstream.state_tables()[0],
                          spec.primary_key, spec.upsert, spec.force_append_only)
        upstream.outputs.append((op, 0))
        db.graph.add(op)
        if not db._restoring and spec.snapshot:
            op.snapshot_rows()
        c = db.coordinator
        durability = db.durability
        runner = SinkRunner(spec, target, op, lambda: db.guarantee, durability is not None,
                            durability.crash_point if durability is not None else _no_crash,
                            c.crash_soon, c.progress.sinks, c.progress.errors)
        runner.display_sql = _sql(stmt, {k: v for k, v in spec.options.items()
                                         if k != ID_OPTION}, masked=True)
        runner.statement = stmt
        db.catalog.add(Relation(stmt.name, "sink", [(n, t, False) for n, t in columns],
                                list(spec.primary_key), stored, op,
                                operators=[*operators, op], deps=deps, reader=runner))
        c.sinks[stmt.name] = runner
        if db._restoring:
            db._pending_sinks.append(runner)
        else:
            runner.start(c.progress.current_epoch - 1, c.progress.committed_epoch,
                         c.progress.durable_epoch, restored=False)
        return Result(status="CREATE_SINK")

    result: Result = db._ddl_call(create)
    return result


def _no_crash(name: str) -> None:
    del name


def _upstream(db: Any, stmt: st.CreateSink) -> tuple[list[Any], Any, set[str]]:
    """(operators built for the sink, the operator the sink reads, dependencies)."""
    if stmt.source is not None:
        rel = db.catalog.get(stmt.source)
        if rel is None or rel.kind == "sink":
            raise CatalogError(f'relation "{stmt.source}" does not exist')
        return [], rel.op, {stmt.source}
    assert stmt.query is not None
    planner = db._planner()
    plan = planner.plan_view(stmt.name, stmt.query)
    built = build_view(db.duck, plan)
    try:
        db._start_view(built)
    except Exception:
        db.graph.remove(built.operators)
        for o in built.operators:
            o.drop()
        raise
    return list(built.operators), built.materialize, set(planner.deps)


def start_restored(db: Any) -> None:
    """Start the runners of sinks recreated while restoring a checkpoint."""
    pending, db._pending_sinks = db._pending_sinks, []
    p = db.coordinator.progress
    for runner in pending:
        runner.start(0, p.committed_epoch, p.durable_epoch, restored=True)


def _sink(db: Any, name: str) -> Relation:
    rel = db.catalog.get(name)
    if rel is None or rel.kind != "sink":
        if rel is not None:
            raise CatalogError(f'"{name}" is a {rel.kind}, not a sink')
        raise CatalogError(f'sink "{name}" does not exist')
    return rel


def drop_sink(db: Any, stmt: st.DropSink) -> Result:
    """DROP SINK [IF EXISTS]: stop delivering, forget the target's progress record."""

    def drop() -> Result:
        rel = db.catalog.get(stmt.name)
        if (rel is None or rel.kind != "sink") and stmt.if_exists:
            return Result(status="DROP_SINK")
        rel = _sink(db, stmt.name)
        rel.reader.close(forget=True)
        db.coordinator.sinks.pop(stmt.name, None)
        db._drop(stmt.name)
        return Result(status="DROP_SINK")

    result: Result = db._ddl_call(drop)
    return result


def alter_sink(db: Any, stmt: st.AlterSink) -> Result:
    """ALTER SINK name RESUME | CONNECTOR WITH (...): retry after an error, optionally with
    changed connection options (validated against the target first)."""
    rel = _sink(db, stmt.name)
    runner: SinkRunner = rel.reader
    if not stmt.options:
        runner.resume()
        return Result(status="ALTER_SINK")
    fixed = [k for k in stmt.options if k in STRUCTURAL]
    if fixed:
        raise UnsupportedError(f"ALTER SINK cannot change {fixed[0]}; DROP and CREATE the sink")
    old: st.CreateSink = runner.statement
    options = {**runner.spec.stored_options(), **stmt.options}
    spec = SinkSpec.from_options(stmt.name, options, old.encode, old.format_options)
    columns = [(c, t) for c, t, _ in rel.columns]
    target = make_target(spec, columns)
    target.check()

    def alter() -> Result:
        rel.sql = _sql(old, spec.stored_options(), masked=False)
        runner.display_sql = _sql(old, {k: v for k, v in spec.options.items()
                                        if k != ID_OPTION}, masked=True)
        runner.spec = spec
        runner.resume(target)
        return Result(status="ALTER_SINK")

    result: Result = db._ddl_call(alter)
    return result


def show_sinks(db: Any) -> pa.Table:
    """SHOW SINKS."""
    return pa.table({"Name": pa.array(db.catalog.names("sink"), pa.string())})


def show_create_sink(db: Any, name: str) -> pa.Table:
    """SHOW CREATE SINK name (secrets masked)."""
    rel = _sink(db, name)
    return pa.table({"Name": [rel.name], "Create Sql": [rel.reader.display_sql]})


def explain_sink(db: Any, stmt: st.CreateSink) -> list[str]:
    """EXPLAIN CREATE SINK: the sink over the upstream scan or the query's plan."""
    spec = SinkSpec.from_options(stmt.name, stmt.options, stmt.encode, stmt.format_options)
    key = f", primary_key: [{', '.join(spec.primary_key)}]" if spec.primary_key else ""
    head = (f"StreamSink {{ type: {spec.type}{key}, target: {spec.target()}, "
            f"delivery: per checkpoint, log: __sink_{stmt.name} }}")
    if stmt.source is not None:
        _columns(db, stmt)
        return [head, f"└─StreamTableScan {{ table: {stmt.source} }}"]
    query = stmt.query
    assert query is not None
    lines: list[str] = db._call(lambda: explain(db._planner().plan_view(stmt.name, query)))
    return [head, "└─" + lines[0], *("  " + line for line in lines[1:])]


def wait_sinks(db: Any, epoch: int) -> None:
    """FLUSH: wait until healthy sinks delivered everything up to `epoch`."""
    for runner in list(db.coordinator.sinks.values()):
        runner.wait_delivered(epoch, FLUSH_WAIT_S)


def close_sinks(db: Any, timeout: float = 10.0) -> None:
    """Closing the connection: let sinks deliver what is durable, then stop them."""
    for runner in list(db.coordinator.sinks.values()):
        runner.wait_delivered(runner.durable_epoch if db.durability is not None
                              else runner.committed_epoch, timeout)
        runner.close()
