"""PostgreSQL sinks against a real server: the article's example 5, statements, validation at
CREATE SINK, upsert and append-only delivery, constraint violations, a server restart while
the pipeline runs, and passwords masked everywhere."""

from __future__ import annotations

import time

import psycopg
import pytest

import kernel_engine
from kernel_engine.article import statements
from kernel_engine.errors import Error

from ._pg import jdbc_sink, make_table, normalized, pg_rows, wait_until

EXAMPLE_5 = """CREATE SINK cons_revenue_sink
FROM cons_category_revenue
WITH (
    connector  = 'jdbc',
    jdbc.url   = 'jdbc:postgresql://your-pg-host:5432/analytics',
    table.name = 'category_revenue',
    user       = 'rw_writer',
    password   = 'your-password',
    type       = 'upsert',
    primary_key = 'category'
);"""


@pytest.fixture
def db(tmp_path):
    conn = kernel_engine.connect(str(tmp_path / "state"), barrier_interval_ms=100)
    yield conn
    conn.close()


def mv_rows(db, name: str) -> list[tuple]:
    return normalized(db.execute(f"SELECT * FROM {name} ORDER BY 1").fetchall())


def test_example_5_end_to_end(db, pg_server):
    pg = pg_server
    with pg.connect() as conn:
        conn.execute("DROP TABLE IF EXISTS category_revenue")
        conn.execute("CREATE TABLE category_revenue (category VARCHAR PRIMARY KEY, "
                     "order_count BIGINT, total_revenue NUMERIC)")
    for sql in statements(3):
        db.execute(sql)
    sink = EXAMPLE_5.replace("your-pg-host:5432", f"{pg.host}:{pg.port}").replace(
        "your-password", pg.password)
    assert pg.user == "rw_writer" and pg.database == "analytics"
    db.execute(sink)
    db.execute("FLUSH")
    expected = [("Books", 1, 44.97), ("Clothing", 1, 99.98), ("Electronics", 3, 1398.98)]
    assert mv_rows(db, "cons_category_revenue") == expected
    assert pg_rows(pg, "category_revenue") == expected
    # changes flow on: a new category, an update of one, a category emptied by DELETE
    db.execute("INSERT INTO cons_orders VALUES (5006, 11, 'PROD-Z', 'Garden', 10.00, 2, "
               "'2026-04-01 10:00:00')")
    db.execute("DELETE FROM cons_orders WHERE category = 'Books'")
    db.execute("UPDATE cons_orders SET quantity = 2 WHERE category = 'Clothing'")
    db.execute("FLUSH")
    assert pg_rows(pg, "category_revenue") == mv_rows(db, "cons_category_revenue")
    assert [r[0] for r in pg_rows(pg, "category_revenue")] == ["Clothing", "Electronics",
                                                                "Garden"]
    shown = db.execute("SHOW CREATE SINK cons_revenue_sink").fetchall()[0][1]
    assert pg.password not in shown and "password = '***'" in shown
    assert db.execute("SHOW SINKS").fetchall() == [("cons_revenue_sink",)]


def test_upsert_sink_recovers_without_repeating(tmp_path, pg_server):
    pg = pg_server
    target = make_table(pg, "k INT PRIMARY KEY, v INT")
    db = kernel_engine.connect(str(tmp_path / "s"), barrier_interval_ms=100)
    db.execute("CREATE TABLE t (k INT PRIMARY KEY, v INT)")
    db.execute("INSERT INTO t VALUES (1, 10), (2, 20), (3, 30)")
    db.execute(jdbc_sink(pg, "s", "t", target, pk="k"))
    db.execute("UPDATE t SET v = v + 1 WHERE k = 2; DELETE FROM t WHERE k = 3; FLUSH")
    assert pg_rows(pg, target) == [(1, 10), (2, 21)]
    db.close()
    db = kernel_engine.connect(str(tmp_path / "s"), barrier_interval_ms=100)
    db.execute("INSERT INTO t VALUES (4, 40); FLUSH")
    assert pg_rows(pg, target) == [(1, 10), (2, 21), (4, 40)]
    assert db.progress.sinks["s"]["state"] == "running"
    db.close()


def test_postgres_connector_as_select_and_snapshot_false(db, pg_server):
    pg = pg_server
    with pg.connect() as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS reports")
    target = make_table(pg, "g INT PRIMARY KEY, n BIGINT", prefix="reports.by_g")
    schema, table = target.split(".")
    later = make_table(pg, "id INT, v INT")
    db.execute("CREATE TABLE e (id INT, v INT) APPEND ONLY")
    db.execute("INSERT INTO e VALUES (1, 1), (2, 2), (3, 3)")
    db.execute(f"""CREATE SINK by_g AS SELECT id % 2 AS g, COUNT(*) AS n FROM e GROUP BY id % 2
        WITH (connector = 'postgres', host = '{pg.host}', port = '{pg.port}', user = '{pg.user}',
        password = '{pg.password}', database = '{pg.database}', schema = '{schema}',
        table = '{table}', type = 'upsert', primary_key = 'g')""")
    db.execute(jdbc_sink(pg, "new_only", "e", later, kind="append-only",
                         extra=", snapshot = 'false'"))
    db.execute("INSERT INTO e VALUES (4, 4); FLUSH")
    assert pg_rows(pg, target) == [(0, 2), (1, 2)]
    assert pg_rows(pg, later) == [(4, 4)]
    assert sorted(db.execute("SHOW SINKS").fetchall()) == [("by_g",), ("new_only",)]
    plan = [r[0] for r in db.execute(
        f"EXPLAIN CREATE SINK x AS SELECT id FROM e WITH ({pg.sink_options(later)}, "
        "type = 'append-only')").fetchall()]
    assert plan[0].startswith("StreamSink { type: append-only")
    assert any("StreamMaterialize" in line for line in plan)
    assert not any(pg.password in line for line in plan)


def test_append_only_rejects_retractions_unless_forced(db, pg_server):
    pg = pg_server
    strict = make_table(pg, "k INT, v INT")
    forced = make_table(pg, "k INT, v INT")
    db.execute("CREATE TABLE t (k INT PRIMARY KEY, v INT)")
    db.execute(jdbc_sink(pg, "strict", "t", strict, kind="append-only"))
    db.execute(jdbc_sink(pg, "forced", "t", forced, kind="append-only",
                         extra=", force_append_only = 'true'"))
    db.execute("INSERT INTO t VALUES (1, 10), (2, 20); FLUSH")
    db.execute("UPDATE t SET v = 11 WHERE k = 1; FLUSH")
    assert pg_rows(pg, forced, "1, 2") == [(1, 10), (1, 11), (2, 20)]
    assert pg_rows(pg, strict, "1, 2") == [(1, 10), (2, 20)]
    status = db.progress.sinks["strict"]
    assert status["state"] == "error"
    assert "epoch" in status["error"] and "retraction" in status["error"]
    assert "(1, 10)" in status["error"]  # the retracted row


def test_create_sink_validates_target_before_writing(db, pg_server):
    pg = pg_server
    db.execute("CREATE TABLE t (k INT PRIMARY KEY, v VARCHAR)")
    db.execute("INSERT INTO t VALUES (1, 'a'); FLUSH")
    no_key = make_table(pg, "k INT, v TEXT")
    wrong_type = make_table(pg, "k INT PRIMARY KEY, v INT")
    missing_col = make_table(pg, "k INT PRIMARY KEY")
    cases = [
        (jdbc_sink(pg, "s", "t", "no_such_table", pk="k"), "does not exist"),
        (jdbc_sink(pg, "s", "t", no_key, pk="k"), "primary key or unique index"),
        (jdbc_sink(pg, "s", "t", wrong_type, pk="k"), 'column "v" is VARCHAR'),
        (jdbc_sink(pg, "s", "t", missing_col, pk="k"), 'column "v" is not in target'),
        (jdbc_sink(pg, "s", "t", no_key), "needs primary_key"),
        (jdbc_sink(pg, "s", "t", no_key, pk="nope"), 'primary_key column "nope"'),
        (jdbc_sink(pg, "s", "nope", no_key, pk="k"), '"nope" does not exist'),
        (jdbc_sink(pg, "s", "t", no_key, kind="sideways", pk="k"), "option 'type'"),
        (jdbc_sink(pg, "s", "t", no_key, pk="k", extra=", colour = 'red'"),
         "unknown option 'colour'"),
        (jdbc_sink(pg, "s", "t", no_key, pk="k").replace(pg.password, "wrong-secret"),
         "password authentication failed"),
    ]
    for sql, message in cases:
        with pytest.raises(Error, match=message) as info:
            db.execute(sql)
        assert pg.password not in str(info.value) and "wrong-secret" not in str(info.value)
    assert db.execute("SHOW SINKS").fetchall() == []
    for table in (no_key, wrong_type, missing_col):
        assert pg_rows(pg, table) == []
    db.execute("INSERT INTO t VALUES (2, 'b'); FLUSH")  # the engine is fine


def test_constraint_violation_stops_one_sink_only(db, pg_server):
    pg = pg_server
    checked = make_table(pg, "k INT PRIMARY KEY, v INT CHECK (v < 100)")
    other = make_table(pg, "k INT PRIMARY KEY, v INT")
    db.execute("CREATE TABLE t (k INT PRIMARY KEY, v INT)")
    db.execute(jdbc_sink(pg, "checked", "t", checked, pk="k"))
    db.execute(jdbc_sink(pg, "other", "t", other, pk="k"))
    db.execute("INSERT INTO t VALUES (1, 10), (2, 20); FLUSH")
    db.execute("INSERT INTO t VALUES (3, 500); FLUSH")
    wait_until(lambda: db.progress.sinks["checked"]["state"] == "error", what="sink error")
    error = db.progress.sinks["checked"]["error"]
    print(error)
    assert "epoch" in error and "violates check constraint" in error and "500" in error
    assert any("checked" in e and "500" in e for e in db.progress.errors)
    db.execute("INSERT INTO t VALUES (4, 40); FLUSH")  # pipeline and the other sink go on
    assert pg_rows(pg, other) == [(1, 10), (2, 20), (3, 500), (4, 40)]
    assert db.execute("SELECT COUNT(*) FROM t").fetchone()[0] == 4
    assert pg_rows(pg, checked) == [(1, 10), (2, 20)]
    assert db.progress.sinks["checked"]["pending_epochs"] >= 1
    with pg.connect() as conn:  # the fix: relax the constraint, then resume the sink
        conn.execute(f"ALTER TABLE {checked} DROP CONSTRAINT {checked}_v_check")
    db.execute("ALTER SINK checked RESUME")
    db.execute("FLUSH")
    wait_until(lambda: pg_rows(pg, checked) == pg_rows(pg, other), what="resumed sink")
    assert db.progress.sinks["checked"]["state"] == "running"


def test_type_error_names_epoch_and_row_then_alter_and_drop(db, pg_server):
    pg = pg_server
    narrow = make_table(pg, "k INT PRIMARY KEY, v VARCHAR(3)")
    wide = make_table(pg, "k INT PRIMARY KEY, v TEXT")
    db.execute("CREATE TABLE t (k INT PRIMARY KEY, v VARCHAR)")
    db.execute(jdbc_sink(pg, "s", "t", narrow, pk="k"))
    db.execute("INSERT INTO t VALUES (1, 'ok'), (2, 'too long'); FLUSH")
    wait_until(lambda: db.progress.sinks["s"]["state"] == "error", what="sink error")
    error = db.progress.sinks["s"]["error"]
    print(error)
    assert "epoch" in error and "too long" in error and "k=2" in error
    db.execute(f"ALTER SINK s CONNECTOR WITH (table.name = '{wide}')")
    db.execute("FLUSH")
    wait_until(lambda: pg_rows(pg, wide) == [(1, "ok"), (2, "too long")], what="altered sink")
    assert wide in db.execute("SHOW CREATE SINK s").fetchall()[0][1]
    def progress_rows() -> int:
        with pg.connect() as conn:
            return conn.execute("SELECT COUNT(*) FROM rwmagic_sink_progress").fetchone()[0]

    before = progress_rows()
    db.execute("DROP SINK s")
    wait_until(lambda: progress_rows() == before - 1, what="progress row removed")
    assert db.execute("SHOW SINKS").fetchall() == []
    db.execute("DROP SINK IF EXISTS s")
    with pytest.raises(Error, match='sink "s" does not exist'):
        db.execute("DROP SINK s")


def test_drop_view_with_sink_needs_cascade(db, pg_server):
    pg = pg_server
    target = make_table(pg, "g INT PRIMARY KEY, n BIGINT")
    db.execute("CREATE TABLE t (k INT)")
    db.execute("CREATE MATERIALIZED VIEW m AS SELECT k AS g, COUNT(*) AS n FROM t GROUP BY k")
    db.execute(jdbc_sink(pg, "s", "m", target, pk="g"))
    with pytest.raises(Error, match="depend"):
        db.execute("DROP MATERIALIZED VIEW m")
    db.execute("DROP MATERIALIZED VIEW m CASCADE")
    assert db.execute("SHOW SINKS").fetchall() == []


def test_postgres_restart_while_running(tmp_path, pg_server):
    pg = pg_server
    target = make_table(pg, "g INT PRIMARY KEY, s BIGINT, n BIGINT")
    log = make_table(pg, "id INT, g INT")
    db = kernel_engine.connect(str(tmp_path / "s"), barrier_interval_ms=50)
    try:
        db.execute("CREATE TABLE e (id INT, g INT) APPEND ONLY")
        db.execute("CREATE MATERIALIZED VIEW m AS SELECT g, SUM(id) AS s, COUNT(*) AS n "
                   "FROM e GROUP BY g")
        db.execute(jdbc_sink(pg, "agg", "m", target, pk="g"))
        db.execute(jdbc_sink(pg, "raw", "e", log, kind="append-only"))
        ids = iter(range(1, 10_000))

        def insert(n: int) -> None:
            rows = ", ".join(f"({i}, {i % 7})" for i in (next(ids) for _ in range(n)))
            db.execute(f"INSERT INTO e VALUES {rows}")

        insert(20)
        db.execute("FLUSH")
        pg.shutdown()
        try:
            for _ in range(10):
                insert(5)
                db.execute("FLUSH")  # returns: the engine keeps going while the sink waits
            wait_until(lambda: db.progress.sinks["raw"]["state"] == "retrying", what="retry")
            status = db.progress.sinks["raw"]
            assert status["lag_epochs"] > 0 and status["pending_epochs"] > 0
            assert status["retries"] >= 1 and pg.password not in str(status)
            assert db.execute("SELECT COUNT(*) FROM e").fetchone()[0] == 70
        finally:
            pg.start()
        insert(5)
        db.execute("FLUSH")

        def caught_up() -> bool:
            return all(s["state"] == "running" and s["lag_epochs"] == 0
                       for s in db.progress.sinks.values())

        wait_until(caught_up, timeout=30, what="sinks catching up")
        assert pg_rows(pg, target) == normalized(
            db.execute("SELECT * FROM m ORDER BY 1").fetchall())
        got = [r[0] for r in pg_rows(pg, log)]
        assert got == list(range(1, 76))  # nothing lost, nothing doubled
    finally:
        db.close()


def test_passwords_never_shown(db, pg_server):
    pg = pg_server
    target = make_table(pg, "k INT PRIMARY KEY, v INT")
    db.execute("CREATE TABLE t (k INT PRIMARY KEY, v INT)")
    sql = jdbc_sink(pg, "s", "t", target, pk="k")
    db.execute(sql)
    db.execute("INSERT INTO t VALUES (1, 1); FLUSH")
    shown = [
        str(db.execute("SHOW CREATE SINK s").fetchall()),
        str(db.execute(f"EXPLAIN {sql}").fetchall()),
        str(db.progress.sinks), str(db.progress.errors),
        repr(kernel_engine.sql.parse.parse(sql)[0][1]),
    ]
    try:
        db.execute(sql + "; SELECT nope FROM nowhere")
    except Error as err:
        shown.append(str(err))
    try:  # an error excerpt of a multi-statement call quotes the statement
        db.execute("SELECT 1; " + sql.replace("CREATE SINK s", "CREATE SINK s2").replace(
            target, "missing_table"))
    except Error as err:
        shown.append(str(err))
    for text in shown:
        assert pg.password not in text, text
    with psycopg.connect(pg.dsn) as conn:  # while the real password still works
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_recovery_while_postgres_is_down(tmp_path, pg_server):
    pg = pg_server
    target = make_table(pg, "id INT, v INT")
    folder = str(tmp_path / "s")
    db = kernel_engine.connect(folder, barrier_interval_ms=100)
    db.execute("CREATE TABLE e (id INT, v INT) APPEND ONLY")
    db.execute(jdbc_sink(pg, "s", "e", target, kind="append-only"))
    db.execute("INSERT INTO e VALUES (1, 1), (2, 2); FLUSH")
    pg.shutdown()
    try:
        db.execute("INSERT INTO e VALUES (3, 3); FLUSH")  # durable, not delivered
        db.crash()
        started = time.monotonic()
        db.execute("RECOVER")  # does not wait for the target
        assert time.monotonic() - started < 10
        db.execute("INSERT INTO e VALUES (4, 4); FLUSH")
        wait_until(lambda: db.progress.sinks["s"]["state"] == "retrying", what="retrying")
    finally:
        pg.start()
    wait_until(lambda: db.progress.sinks["s"]["lag_epochs"] == 0
               and db.progress.sinks["s"]["state"] == "running", what="catching up")
    assert pg_rows(pg, target) == [(1, 1), (2, 2), (3, 3), (4, 4)]
    db.close()


def test_values_of_every_common_type_arrive_unchanged(db, pg_server):
    pg = pg_server
    target = make_table(pg, "id INT PRIMARY KEY, s TEXT, n NUMERIC(12, 3), f DOUBLE PRECISION, "
                            "b BOOLEAN, d DATE, ts TIMESTAMP, tz TIMESTAMPTZ, iv INTERVAL, "
                            "raw BYTEA, arr INT[], j JSONB")
    db.execute("CREATE TABLE t (id INT PRIMARY KEY, s VARCHAR, n DECIMAL(12, 3), f DOUBLE, "
               "b BOOLEAN, d DATE, ts TIMESTAMP, tz TIMESTAMPTZ, iv INTERVAL, raw BYTEA, "
               "arr INT[], j JSONB)")
    db.execute(jdbc_sink(pg, "s", "t", target, pk="id"))
    db.execute("""INSERT INTO t VALUES
        (1, 'plain', 1.5, 0.25, true, '2026-04-01', '2026-04-01 09:00:00.123456',
         '2026-04-01 09:00:00+00', INTERVAL '1 day 02:03:04', '\\xdeadbeef', ARRAY[1, 2],
         '{"a": [1, "x"]}'),
        (2, 'quote '' comma , newline
    backslash \\ "dq"', -0.001, -1e300, false, '1999-12-31', '1999-12-31 23:59:59', NULL,
         INTERVAL '3 months', '\\x00', ARRAY[]::INT[], '[]'),
        (3, '', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)""")
    db.execute("FLUSH")
    assert db.progress.sinks["s"]["state"] == "running", db.progress.sinks["s"]["error"]
    with pg.connect() as conn:
        got = conn.execute(f"SELECT id, s, n::text, f, b, d::text, ts::text, "
                           f"tz = '2026-04-01 09:00:00+00', iv::text, encode(raw, 'hex'), "
                           f"arr::text, j::text FROM {target} ORDER BY id").fetchall()
    assert got[0] == (1, "plain", "1.500", 0.25, True, "2026-04-01",
                      "2026-04-01 09:00:00.123456", True, "1 day 02:03:04", "deadbeef", "{1,2}",
                      '{"a": [1, "x"]}')
    assert got[1][1] == "quote ' comma , newline\n    backslash \\ \"dq\""
    assert got[1][2:] == ("-0.001", -1e300, False, "1999-12-31", "1999-12-31 23:59:59", None,
                          "3 mons", "00", "{}", "[]")
    assert got[2] == (3, "", *([None] * 10))  # the empty string stays apart from NULL
