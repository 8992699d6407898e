"""Errors as a user meets them: each names what and where, and nothing half-happens.

Every error is a `kernel_engine.Error` whose message names the statement's
object (table, column, function) or its line and column; a failing statement
applies nothing; the engine keeps working after every error, with no error
recorded on the engine thread (`db.progress.errors`).
"""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
import pyarrow as pa
import pytest

import kernel_engine
from kernel_engine import (
    BindError,
    CatalogError,
    Connection,
    Error,
    ExecutionError,
    ParseError,
    UnsupportedError,
)


@pytest.fixture
def db() -> Iterator[Connection]:
    con = kernel_engine.connect(barrier_interval_ms=50)
    try:
        yield con
    finally:
        con.close()


@pytest.fixture
def orders(db: Connection) -> Connection:
    """A table `t (g VARCHAR, x INT)` with two committed rows and a view counting them."""
    db.execute("CREATE TABLE t (g VARCHAR, x INT); CREATE TABLE u (g VARCHAR, y INT); "
               "CREATE MATERIALIZED VIEW m AS SELECT g, COUNT(*) AS n, SUM(x) AS s FROM t "
               "GROUP BY g")
    db.execute("INSERT INTO t VALUES ('a', 1), ('b', 2); FLUSH")
    return db


def state(db: Connection) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    db.execute("FLUSH")
    return (db.execute("SELECT g, x FROM t ORDER BY g, x").fetchall(),
            db.execute("SELECT g, n, s FROM m ORDER BY g").fetchall())


def assert_still_working(db: Connection) -> None:
    """A later INSERT + FLUSH is visible in the table and the view; no engine errors."""
    before = db.execute("SELECT COUNT(*) FROM t").fetchone()
    assert before is not None
    db.execute("INSERT INTO t VALUES ('later', 100); FLUSH")
    assert db.execute("SELECT COUNT(*) FROM t").fetchone() == (before[0] + 1,)
    assert db.execute("SELECT n, s FROM m WHERE g = 'later'").fetchall() == [(1, 100)]
    assert db.progress.errors == []


# ---- parse errors --------------------------------------------------------------------------


def test_parse_error_names_line_and_column() -> None:
    with kernel_engine.connect(barrier_interval_ms=50) as db:
        with pytest.raises(ParseError) as info:
            db.execute("SELECT g,\n       x\nFROM t WHER x = 1")
        err = info.value
        assert (err.line, err.col) == (3, 13)  # the `x` after the alias WHER
        assert "line 3, column 13" in str(err)
        assert isinstance(err, Error)


def test_parse_error_position_counts_from_the_start_of_the_whole_text(db: Connection) -> None:
    with pytest.raises(ParseError) as info:
        db.execute("CREATE TABLE a (x INT);\nINSERT INTO a VALUES (1);\n"
                   "SELECT x FROM a WHERE x = = 1")
    assert (info.value.line, info.value.col) == (3, 27)
    with pytest.raises(ParseError) as info:
        db.execute("SELECT 1; SELECT (1")
    assert (info.value.line, info.value.col) == (1, 19)
    with pytest.raises(ParseError) as info:
        db.execute("-- a comment\n/* and another */ SELECT 1 +")
    assert (info.value.line, info.value.col) == (2, 28)
    with pytest.raises(ParseError, match="end of input"):
        db.execute("SELECT 1 FROM")


@pytest.mark.parametrize(("sql", "where"), [
    ("SELECT x FROM a WHERE x >", (1, 25)),
    ("EXPLAIN SELECT x FROM a WHERE x >", (1, 33)),
    ("EXPLAIN\n  SELECT x FROM a WHERE x >", (2, 27)),
    ("SELECT 1;\nEXPLAIN SELECT x\nFROM a WHERE )", (3, 14)),
])
def test_a_parse_error_inside_explain_is_placed_in_the_whole_text(
        db: Connection, sql: str, where: tuple[int, int]) -> None:
    db.execute("CREATE TABLE a (x INT)")
    with pytest.raises(ParseError) as info:
        db.execute(sql)
    assert (info.value.line, info.value.col) == where
    assert f"at line {where[0]}, column {where[1]}:" in str(info.value)


def test_a_parse_error_anywhere_runs_no_statement(db: Connection) -> None:
    with pytest.raises(ParseError):
        db.execute("CREATE TABLE a (x INT); INSERT INTO a VALUES (1); SELEC 1")
    assert db.execute("SHOW TABLES").fetchall() == []


# ---- catalog, binding and type errors ------------------------------------------------------


@pytest.mark.parametrize("sql", [
    "SELECT * FROM nosuch",
    "SELECT t.g FROM t JOIN nosuch ON true",
    "INSERT INTO nosuch VALUES (1)",
    "INSERT INTO t SELECT * FROM nosuch",
    "UPDATE nosuch SET a = 1",
    "DELETE FROM nosuch",
    "CREATE MATERIALIZED VIEW v AS SELECT * FROM nosuch",
    "DROP TABLE nosuch",
    "DESCRIBE nosuch",
])
def test_unknown_table_is_named(orders: Connection, sql: str) -> None:
    with pytest.raises(CatalogError, match='"nosuch" does not exist'):
        orders.execute(sql)
    assert_still_working(orders)


@pytest.mark.parametrize("sql", [
    "SELECT nosuch FROM t",
    "SELECT g FROM t WHERE nosuch > 1",
    "SELECT t.nosuch FROM t",
    "CREATE MATERIALIZED VIEW v AS SELECT nosuch FROM t",
    "CREATE MATERIALIZED VIEW v AS SELECT g FROM t GROUP BY g HAVING SUM(nosuch) > 1",
    "INSERT INTO t (g, nosuch) VALUES ('a', 1)",
    "UPDATE t SET nosuch = 1",
])
def test_unknown_column_is_named(orders: Connection, sql: str) -> None:
    with pytest.raises(CatalogError, match=r'column "(t\.)?nosuch"'):
        orders.execute(sql)
    assert_still_working(orders)


@pytest.mark.parametrize("sql", [
    "SELECT g FROM t JOIN u ON t.x = u.y",
    "CREATE MATERIALIZED VIEW v AS SELECT g FROM t JOIN u ON t.x = u.y",
])
def test_ambiguous_column_is_named(orders: Connection, sql: str) -> None:
    with pytest.raises(BindError, match=r'(?i)ambiguous.*"g"|"g".*ambiguous'):
        orders.execute(sql)
    assert_still_working(orders)


@pytest.mark.parametrize("sql", [
    "SELECT * FROM t WHERE x = 'abc'",
    "SELECT * FROM t WHERE 'abc' < x OR x IN (1, 'two')",
    "CREATE MATERIALIZED VIEW v AS SELECT g FROM t WHERE x = 'abc'",
    "UPDATE t SET g = 'z' WHERE x = 'abc'",
    "DELETE FROM t WHERE x >= 'abc'",
    "INSERT INTO t SELECT g, x FROM t WHERE x = 'abc'",
])
def test_string_compared_with_an_int_column_names_the_column(orders: Connection,
                                                              sql: str) -> None:
    before = state(orders)
    with pytest.raises(BindError, match=r'type integer: "(abc|two)" .*column "x"'):
        orders.execute(sql)
    assert state(orders) == before
    assert_still_working(orders)


def test_bad_value_assigned_by_update_names_the_column(orders: Connection) -> None:
    orders.execute("INSERT INTO t VALUES ('c', 3)")  # not flushed: must survive the error
    with pytest.raises(BindError, match=r'type integer: "abc" \(assigned to column "x"\)'):
        orders.execute("UPDATE t SET x = 'abc' WHERE g = 'a'")
    assert state(orders) == ([("a", 1), ("b", 2), ("c", 3)],
                             [("a", 1, 1), ("b", 1, 2), ("c", 1, 3)])
    assert_still_working(orders)


@pytest.mark.parametrize("sql", [
    "SELECT SUM(g) FROM t",
    "CREATE MATERIALIZED VIEW v AS SELECT SUM(g) AS s FROM t",
])
def test_aggregate_over_the_wrong_type_names_the_function(orders: Connection, sql: str) -> None:
    with pytest.raises(BindError, match=r"(?i)sum\(varchar\)") as info:
        orders.execute(sql)
    assert "\n" not in str(info.value)
    assert_still_working(orders)


# ---- unsupported constructs ----------------------------------------------------------------


@pytest.mark.parametrize(("sql", "says", "suggests"), [
    ("CREATE VIEW v AS SELECT 1", "CREATE VIEW", "CREATE MATERIALIZED VIEW"),
    ("DROP VIEW v", "DROP VIEW", "DROP MATERIALIZED VIEW"),
    ("CREATE SOURCE s (a INT) WITH (connector = 'kafka') FORMAT PLAIN ENCODE JSON",
     "kafka", "datagen"),
    ("GRANT SELECT ON t TO bob", "GRANT", "CREATE TABLE / MATERIALIZED VIEW"),
    ("TRUNCATE t", "TRUNCATE", "DELETE"),
    ("SHOW CONNECTIONS", "SHOW CONNECTIONS", "SHOW TABLES"),
    ("CREATE TABLE c (a INT) WITH (connector = 'kafka')", "connector", "datagen"),
    ("CREATE TABLE c (a POINT)", "POINT", "INT"),
])
def test_unsupported_construct_says_what_and_suggests_the_supported_form(
        orders: Connection, sql: str, says: str, suggests: str) -> None:
    with pytest.raises(UnsupportedError) as info:
        orders.execute(sql)
    assert says in str(info.value) and suggests in str(info.value)
    assert_still_working(orders)


@pytest.mark.parametrize("sql", [
    "VACUUM t",
    "REFRESH MATERIALIZED VIEW m",
    "ALTER MATERIALIZED VIEW m SET PARALLELISM = 2",
    "CREATE USER bob",
    "CREATE CONNECTION c WITH (type = 'privatelink')",
    "CREATE TABLE c (a INT) APPEND ONLY WITH GIBBERISH",
    "RECOVER",
])
def test_statements_sqlglot_cannot_parse_are_rejected_not_ignored(orders: Connection,
                                                                   sql: str) -> None:
    tables = orders.execute("SHOW TABLES").fetchall()
    with pytest.raises(UnsupportedError, match="not supported|could not understand"):
        orders.execute(sql)
    assert orders.execute("SHOW TABLES").fetchall() == tables
    assert_still_working(orders)


# ---- failing DML applies nothing -----------------------------------------------------------


@pytest.mark.parametrize(("sql", "error", "match"), [
    ("INSERT INTO t VALUES ('c', 3), ('d', 'four')", ExecutionError, "'four'"),
    ("INSERT INTO t VALUES ('c', 3), ('d', 99999999999)", ExecutionError, "99999999999"),
    ("INSERT INTO t VALUES ('c', 3, 'extra')", BindError, "more expressions"),
    ("INSERT INTO t VALUES ('c')", BindError, "fewer expressions"),
    ("INSERT INTO t VALUES ('c', 3), ('d')", ParseError, "same length"),
    ("INSERT INTO t (g) VALUES ('c', 3)", BindError, "more expressions"),
    ("INSERT INTO t SELECT 'c', 'four'", ExecutionError, "'four'"),
    ("INSERT INTO t SELECT g FROM u", BindError, "fewer expressions"),
])
def test_a_failing_insert_applies_nothing(orders: Connection, sql: str, error: type[Error],
                                          match: str) -> None:
    orders.execute("INSERT INTO t VALUES ('pending', 7)")  # issued before, not yet flushed
    with pytest.raises(error, match=match):
        orders.execute(sql)
    assert state(orders) == ([("a", 1), ("b", 2), ("pending", 7)],
                             [("a", 1, 1), ("b", 1, 2), ("pending", 1, 7)])
    assert_still_working(orders)


def test_a_failing_bulk_insert_applies_nothing(orders: Connection) -> None:
    before = state(orders)
    with pytest.raises(ExecutionError, match="cannot insert into t"):
        orders.insert("t", pa.table({"g": ["c", "d"], "x": ["3", "four"]}))
    with pytest.raises(ExecutionError, match="cannot insert into t"):
        orders.insert("t", pd.DataFrame({"g": ["c"], "x": [2**40]}))
    assert state(orders) == before
    assert_still_working(orders)


def test_a_primary_key_must_not_be_null(db: Connection) -> None:
    db.execute("CREATE TABLE kv (k INT PRIMARY KEY, v INT)")
    with pytest.raises(ExecutionError, match='null value in primary key column "k"'):
        db.execute("INSERT INTO kv VALUES (1, 1), (NULL, 2)")
    db.execute("FLUSH")
    assert db.execute("SELECT COUNT(*) FROM kv").fetchall() == [(0,)]


@pytest.mark.parametrize("sql", [
    "INSERT INTO t SELECT g, g::int FROM t",
    "UPDATE t SET x = g::int",
    "DELETE FROM t WHERE g::int > 0",
])
def test_a_failing_statement_on_the_engine_thread_keeps_the_epoch(orders: Connection,
                                                                  sql: str) -> None:
    orders.execute("INSERT INTO t VALUES ('pending', 7)")
    with pytest.raises(ExecutionError, match="'a'"):
        orders.execute(sql)
    assert state(orders)[0] == [("a", 1), ("b", 2), ("pending", 7)]
    assert_still_working(orders)


# ---- several statements ----------------------------------------------------------------------


def test_failing_statement_of_several_is_named_by_number(orders: Connection) -> None:
    with pytest.raises(ExecutionError) as info:
        orders.execute("INSERT INTO t VALUES ('c', 3);\n"
                       "INSERT INTO t VALUES ('d', 4);\n"
                       "INSERT INTO t VALUES ('e', 'five');\n"
                       "INSERT INTO t VALUES ('f', 6)")
    message = str(info.value)
    assert message.startswith("statement 3 (INSERT INTO t VALUES ('e', 'five')):")
    assert "'five'" in message
    # Statements run one by one: those before the failure took effect, none after it.
    assert state(orders)[0] == [("a", 1), ("b", 2), ("c", 3), ("d", 4)]
    assert_still_working(orders)


def test_a_single_statement_error_has_no_statement_prefix(orders: Connection) -> None:
    with pytest.raises(CatalogError) as info:
        orders.execute("SELECT * FROM nosuch")
    assert str(info.value) == 'table or materialized view "nosuch" does not exist'


def test_catalog_errors_from_ddl(orders: Connection) -> None:
    with pytest.raises(CatalogError, match='"t" already exists'):
        orders.execute("CREATE TABLE t (a INT)")
    with pytest.raises(CatalogError, match='"m" already exists'):
        orders.execute("CREATE MATERIALIZED VIEW m AS SELECT 1 AS one FROM t")
    with pytest.raises(BindError, match="duplicated"):
        orders.execute("CREATE TABLE d (a INT, a INT)")
    with pytest.raises(CatalogError, match='primary key column "b"'):
        orders.execute("CREATE TABLE d (a INT, PRIMARY KEY (b))")
    with pytest.raises(BindError, match='cannot change "m": it is a materialized view'):
        orders.execute("INSERT INTO m VALUES ('z', 1, 1)")
    with pytest.raises(CatalogError, match="because m depend"):
        orders.execute("DROP TABLE t")
    assert_still_working(orders)


def test_every_error_class_is_a_kernel_engine_error() -> None:
    for cls in (ParseError, CatalogError, BindError, UnsupportedError, ExecutionError):
        assert issubclass(cls, kernel_engine.Error)
    assert issubclass(kernel_engine.Error, Exception)


def test_a_closed_connection_refuses_work() -> None:
    db = kernel_engine.connect(barrier_interval_ms=50)
    db.close()
    with pytest.raises(Error, match="closed"):
        db.execute("SELECT 1")
