"""The one module that talks to DuckDB.

The engine owns one in-memory DuckDB database. The engine thread works on its
own connection inside one transaction per epoch; readers get their own
cursors, so a SELECT sees the last committed epoch (snapshot isolation).
Arrow tables are registered zero-copy under a name for the length of a call.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import duckdb
import pyarrow as pa

from kernel_engine.errors import BindError, CatalogError, ExecutionError, ParseError

__all__ = ["Duck", "translate_error"]

_counter = itertools.count()


def translate_error(err: Exception) -> Exception:
    """Turn a DuckDB exception into the engine's error of the same meaning."""
    text = str(err).split("\n\nLINE")[0].strip()
    for prefix in ("Binder Error: ", "Catalog Error: ", "Parser Error: ", "Conversion Error: ",
                   "Invalid Input Error: ", "Out of Range Error: ", "Constraint Error: ",
                   "Not implemented Error: ", "Invalid Error: "):
        text = text.replace(prefix, "")
    if isinstance(err, duckdb.CatalogException):
        return CatalogError(text)
    if isinstance(err, duckdb.BinderException):
        return BindError(text)
    if isinstance(err, duckdb.ParserException):
        return ParseError(text)
    return ExecutionError(text)


class Duck:
    """A DuckDB connection with helpers to run SQL over registered Arrow tables."""

    def __init__(self, con: duckdb.DuckDBPyConnection | None = None, *,
                 streaming: bool = False) -> None:
        self.con = con if con is not None else duckdb.connect(":memory:")
        self.con.execute("SET TimeZone = 'UTC'")
        self.con.execute("SET python_enable_replacements = false")
        if streaming:
            # Inside streaming operators an expression error yields NULL, as in RisingWave.
            self.con.execute("SET error_on_division_by_zero = false")
        self._local = threading.local()
        self._lock = threading.Lock()

    @contextmanager
    def _registered(self, tables: dict[str, pa.Table]) -> Iterator[None]:
        for name, table in tables.items():
            self.con.register(name, table)
        try:
            yield
        finally:
            for name in tables:
                self.con.unregister(name)

    def arrow(self, sql: str, **tables: pa.Table) -> pa.Table:
        """Run a query over the given Arrow tables and return the result as Arrow."""
        try:
            with self._registered(tables):
                return self.con.sql(sql).to_arrow_table()
        except duckdb.Error as err:
            raise translate_error(err) from err

    def run(self, sql: str, **tables: pa.Table) -> None:
        """Run a statement (DDL or DML) over the given Arrow tables."""
        try:
            with self._registered(tables):
                self.con.execute(sql)
        except duckdb.Error as err:
            raise translate_error(err) from err

    def describe(self, sql: str) -> list[tuple[str, str]]:
        """Column names and DuckDB types of a query, without running it."""
        try:
            rel = self.con.sql(sql)
            return [(name, str(typ)) for name, typ in zip(rel.columns, rel.types, strict=True)]
        except duckdb.Error as err:
            raise translate_error(err) from err

    def describe_arrow(self, table: pa.Table) -> list[tuple[str, str]]:
        """DuckDB column types of an Arrow table."""
        with self._registered({"_described": table}):
            return self.describe("SELECT * FROM _described")

    def begin(self) -> None:
        """Open the epoch's transaction."""
        self.con.execute("BEGIN TRANSACTION")

    def commit(self) -> None:
        """Commit the epoch: everything written since begin() becomes visible at once."""
        self.con.execute("COMMIT")

    def rollback(self) -> None:
        """Discard everything written since begin()."""
        self.con.execute("ROLLBACK")

    def reader(self) -> Duck:
        """A cursor for the calling thread, reading committed state only."""
        cur = getattr(self._local, "reader", None)
        if cur is None:
            with self._lock:
                cur = Duck(self.con.cursor())
            self._local.reader = cur
        return cur

    def close(self) -> None:
        """Close the connection."""
        self.con.close()


def temp_name(prefix: str = "_t") -> str:
    """A fresh name for a registered Arrow table."""
    return f"{prefix}{next(_counter)}"
