"""The ``%%stream_sql`` cell magic and ``%stream_sql`` line magic.

The magic is thin: it parses its line into a command (``_command``), picks the
kernel's engine (``_engine``), runs the SQL and shows the last result
(``_display``). Defaults are traitlets, so ``%config StreamSqlMagic.<option>``
sets them for the session (or ``c.StreamSqlMagic.<option>`` in a config file).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, NoReturn

import sqlglot
from IPython.core.magic import (
    Magics,
    line_cell_magic,
    magics_class,
    needs_local_scope,
    no_var_expand,
)
from IPython.core.magic_arguments import argument, magic_arguments
from sqlglot import exp
from traitlets import Bool, Dict, Enum, Int, Unicode
from traitlets.config import Configurable

import kernel_engine
from kernel_engine.sql.parse import parse
from kernel_engine.sql.split import Piece, split_statements
from rwmagic import _engine
from rwmagic._command import Command, parse_command
from rwmagic._display import Plan, error_line, present

__all__ = ["GUARANTEES", "StreamSqlMagic", "watched_relation"]

GUARANTEES = ("exactly_once", "at_least_once", "at_most_once")
MEMORY = ":memory:"


def watched_relation(sql: str) -> str | None:
    """The table or view a statement reads from one relation (or creates as a view)."""
    try:
        tree = sqlglot.parse_one(sql, read="risingwave")
    except sqlglot.errors.SqlglotError:
        return None
    if isinstance(tree, exp.Create):
        target = tree.this.find(exp.Table) if tree.kind in ("VIEW", "TABLE") else None
        return target.name if target is not None else None
    if not isinstance(tree, exp.Select) or tree.args.get("joins"):
        return None
    tables = list(tree.find_all(exp.Table))
    return tables[0].name if len(tables) == 1 and tables[0].name else None


class _Failed(Exception):
    """An engine error already shown to the user as one line."""


@magics_class
class StreamSqlMagic(Magics, Configurable):
    """Streaming SQL (RisingWave dialect) on the kernel's in-process engine.

    Every option below is a default for the session: ``%config StreamSqlMagic.<option> = ...``.
    """

    location = Unicode(None, allow_none=True, config=True, help=(
        "Where the engine keeps its checkpoints when the magic starts it: None for memory "
        "only, a local folder, or s3://bucket/prefix. --connect overrides it."))
    storage_options = Dict(config=True, help=(
        "Options for S3 storage (key, secret, endpoint_url, region, ...); the AWS_* "
        "environment variables are used for what is not given here."))
    guarantee = Enum(GUARANTEES, default_value="exactly_once", config=True, help=(
        "Delivery guarantee of an engine the magic starts; --guarantee changes it."))
    barrier_interval_ms = Int(1000, config=True, help=(
        "Milliseconds between barriers (epochs) of an engine the magic starts."))
    short_errors = Bool(True, config=True, help=(
        "Show an engine error as one line with its position in the cell; False raises it "
        "with the full traceback (for debugging the engine)."))
    feedback = Bool(True, config=True, help=(
        "Print the command tag (CREATE_TABLE, INSERT 0 5, ...) when a cell ends with a "
        "statement that returns no rows."))

    @no_var_expand
    @needs_local_scope
    @line_cell_magic
    @magic_arguments()
    @argument("-o", "--out", metavar="NAME", default=None,
              help="Keep the result in the Python variable NAME (a DataFrame for rows, the "
                   "command tag for other statements). `NAME << SQL` does the same.")
    @argument("--connect", metavar="LOCATION", default=None,
              help="Switch the kernel's engine to LOCATION: a local folder, s3://bucket/prefix "
                   "or :memory:. The old engine is closed; a location holding checkpoints "
                   "is recovered from.")
    @argument("--guarantee", choices=GUARANTEES, default=None,
              help="Delivery guarantee: exactly_once (default), at_least_once or "
                   "at_most_once.")
    @argument("--watch", action="store_true",
              help="Show the last SELECT as a live table that refreshes at every "
                   "committed epoch (rwmagic.watch).")
    @argument("--explain", action="store_true",
              help="Show the plan of the last statement (EXPLAIN) instead of running it; "
                   "the statements before it run.")
    def stream_sql(self, line: str = "", cell: str | None = None,
                   local_ns: dict[str, Any] | None = None) -> Any:
        """Run RisingWave SQL on the kernel's streaming engine.

        A cell may hold many statements separated by `;`. The last result is shown:
        rows as a pandas DataFrame, other statements as their command tag
        (CREATE_MATERIALIZED_VIEW, INSERT 0 5, FLUSH). An engine error is shown as
        one line with its line and column in the cell; the engine keeps running.

        `{{name}}` in the SQL is replaced with the value of the Python variable
        `name` as a SQL literal (strings quoted, numbers as they are, lists as
        comma-separated literals); inside a quoted string, with the value's text.
        An option's value may be `{{name}}` too (`--connect {{folder}}`).

        Examples::

            %%stream_sql
            CREATE TABLE t (a INT);
            INSERT INTO t VALUES (1), (2);
            FLUSH;
            SELECT * FROM t;

            %stream_sql -o rows SELECT * FROM t WHERE a > {{threshold}}
            %%stream_sql --connect state/ --guarantee at_least_once

        Session defaults (`%config StreamSqlMagic` prints each with its help):
        location, storage_options, guarantee, barrier_interval_ms, short_errors,
        feedback; e.g. `%config StreamSqlMagic.location = 'state/'`.
        The same engine is `rwmagic.engine()` in Python.
        """
        namespace = {**self._user_ns, **(local_ns or {})}
        command = parse_command(self.stream_sql, line, cell, namespace)
        try:
            return self._run(command)
        except _Failed:
            return None

    @property
    def _user_ns(self) -> dict[str, Any]:
        """The user's namespace (where `-o NAME` puts results and `{{name}}` looks)."""
        assert self.shell is not None
        namespace: dict[str, Any] = self.shell.user_ns
        return namespace

    # ---- running -------------------------------------------------------------------------

    def _run(self, command: Command) -> Any:
        """Run a parsed command; return what the cell shows (None after a tag or an error)."""
        db = self._engine(command)
        pieces = split_statements(command.sql)
        if not pieces:
            return None
        if command.args.explain:
            value = self._explain(db, command, pieces)
        else:
            value = present(self._execute(db, command, command.sql, pieces))
        if command.out:
            self._user_ns[command.out] = value
        if command.args.watch and not command.args.explain:
            return self._watch(pieces[-1], value)
        if isinstance(value, str) and not isinstance(value, Plan):
            if self.feedback:
                print(value)
            return None
        return value

    def _execute(self, db: kernel_engine.Connection, command: Command, sql: str,
                 pieces: list[Piece]) -> kernel_engine.Result:
        """Run ``sql``; an engine error is shown as one line (or raised, without short_errors)."""
        try:
            return db.execute(sql)
        except kernel_engine.Error as err:
            self._fail(err, command, pieces)

    def _fail(self, err: kernel_engine.Error, command: Command, pieces: list[Piece]) -> NoReturn:
        """Show an engine error as one line and end the cell (or raise it as it is)."""
        if not self.short_errors:
            raise err
        print(error_line(err, command, pieces), file=sys.stderr)
        raise _Failed from None

    def _explain(self, db: kernel_engine.Connection, command: Command,
                 pieces: list[Piece]) -> Plan:
        """Run every statement but the last, then show the last one's plan.

        The whole cell is parsed first, so a syntax error anywhere runs nothing
        (as without --explain) and is positioned in the cell.
        """
        last = pieces[-1]
        try:
            parse(command.sql)
        except kernel_engine.ParseError as err:
            self._fail(err, command, pieces)
        if len(pieces) > 1:
            lines = command.sql.split("\n")
            start = sum(len(text) + 1 for text in lines[:last.line - 1]) + last.col - 1
            self._execute(db, command, command.sql[:start], pieces[:-1])
        try:
            result = db.execute(f"EXPLAIN {last.text}")
        except kernel_engine.Error as err:
            self._fail(err.with_statement(len(pieces), last.text), command, pieces)
        return Plan("\n".join(str(row[0]) for row in result.fetchall()))

    def _watch(self, last: Piece, value: Any) -> Any:
        """A live table of the relation the cell's last statement reads (or creates).

        The live table follows a whole table or materialized view; a SELECT
        that joins or reads no relation is shown once, with a note.
        """
        name = watched_relation(last.text)
        if name is None:
            print("--watch follows one table or materialized view (SELECT ... FROM name, or "
                  "CREATE MATERIALIZED VIEW name); showing this result once", file=sys.stderr)
            return value
        try:
            import rwmagic

            watch: Callable[[str], Any] = rwmagic.watch
        except (ImportError, AttributeError) as err:
            print(f"--watch needs the rwmagic widgets (pip install 'rwmagic[notebook]'; "
                  f"{err}); showing this result once", file=sys.stderr)
            return value
        return watch(name)

    # ---- the engine ----------------------------------------------------------------------

    def _engine(self, command: Command) -> kernel_engine.Connection:
        """The kernel's engine, switched by --connect and --guarantee when given."""
        args = command.args
        try:
            if args.connect is not None:
                db = self._connect(args.connect, args.guarantee)
            elif _engine.current_engine() is None:
                db = self._connect(self.location, args.guarantee, announce=False)
            else:
                db = _engine.engine()
            if args.guarantee is not None and db.guarantee != args.guarantee:
                db.execute(f"SET delivery_guarantee = {args.guarantee}")
        except kernel_engine.Error as err:
            if not self.short_errors:
                raise
            print(f"{type(err).__name__}: {err}", file=sys.stderr)
            raise _Failed from None
        return db

    def _connect(self, location: str | None, guarantee: str | None,
                 announce: bool = True) -> kernel_engine.Connection:
        """The engine for a location with the session defaults (the running one if it fits)."""
        location = None if location in (None, "", MEMORY) else location
        options: dict[str, Any] = {"delivery_guarantee": guarantee or self.guarantee,
                                   "barrier_interval_ms": self.barrier_interval_ms}
        if location is not None and location.startswith("s3://") and self.storage_options:
            options["storage_options"] = dict(self.storage_options)
        before = _engine.current_engine()
        db = _engine.engine(location, **options)
        if announce and db is not before and self.feedback:
            print(f"Connected: {location or 'memory (no checkpoints)'} "
                  f"({options['delivery_guarantee']})")
        return db
