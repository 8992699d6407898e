"""The %%stream_sql magic in a real IPython shell: results, variables, errors, options, config.

Every test runs cells with `InteractiveShell.run_cell`, as a kernel would, and reads what
the cell showed (its value, stdout, stderr). The kernel's engine is closed after each test.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pandas as pd
import pytest
from IPython.core.interactiveshell import InteractiveShell

import rwmagic
from kernel_engine.article import EXAMPLES
from rwmagic._template import TemplateError, sql_literal, substitute
from rwmagic.magic import StreamSqlMagic, watched_relation

EVENTS = "%%stream_sql" + EXAMPLES[0][1]  # the article's example 1, verbatim

USER_SPEND = """%%stream_sql
CREATE MATERIALIZED VIEW cons_user_spend AS
SELECT
    user_id,
    COUNT(*) FILTER (WHERE amount > 0) AS purchase_count,
    COUNT(*) FILTER (WHERE amount < 0) AS refund_count,
    SUM(amount)                         AS net_spend
FROM cons_events
GROUP BY user_id;
"""

SPEND_TEXT = """\
   user_id  purchase_count  refund_count  net_spend
0       42               1             1     120.00
1       43               2             0     229.49
2       44               1             0      89.00"""


@pytest.fixture
def ip():
    """The IPython shell with rwmagic loaded and a fresh engine; the engine closed after."""
    shell = InteractiveShell.instance()
    shell.run_cell("%load_ext rwmagic", store_history=False)
    magic = shell.magics_manager.registry["StreamSqlMagic"]
    defaults = {name: getattr(magic, name) for name in magic.trait_names(config=True)}
    rwmagic.close_engine()
    yield shell
    rwmagic.close_engine()
    for name, value in defaults.items():
        setattr(magic, name, value)
    for name in ("spend", "rows", "tag", "top", "plan", "df", "live", "folder", "s3_options"):
        shell.user_ns.pop(name, None)


def run(shell: InteractiveShell, cell: str):
    """Run a cell; return its value (raising what the cell raised)."""
    result = shell.run_cell(cell, store_history=False)
    result.raise_error()
    return result.result


def run_article(shell: InteractiveShell) -> None:
    run(shell, EVENTS)
    run(shell, USER_SPEND)


# ---- loading, results, command tags ---------------------------------------------------------


def test_load_ext_registers_line_and_cell_magic(ip):
    assert "stream_sql" in ip.magics_manager.magics["line"]
    assert "stream_sql" in ip.magics_manager.magics["cell"]
    assert any(isinstance(c, StreamSqlMagic) for c in ip.configurables)


def test_article_example_2_shows_a_dataframe_with_a_stable_text_form(ip):
    run_article(ip)
    df = run(ip, "%%stream_sql\nSELECT * FROM cons_user_spend ORDER BY user_id;")
    assert isinstance(df, pd.DataFrame)
    assert df.to_string() == SPEND_TEXT
    run(ip, """%%stream_sql
INSERT INTO cons_events VALUES
    (1006, 44, 'purchase', 55.00,  '2026-04-01 09:01:00'),
    (1007, 42, 'purchase', 300.00, '2026-04-01 09:01:01');
FLUSH;
""")
    df = run(ip, "%stream_sql SELECT * FROM cons_user_spend ORDER BY user_id")
    assert df.values.tolist() == [[42, 2, 1, 420.0], [43, 2, 0, 229.49], [44, 2, 0, 144.0]]


def test_ddl_and_dml_show_postgresql_command_tags(ip, capsys):
    run(ip, "%stream_sql CREATE TABLE t (a INT, b VARCHAR)")
    run(ip, "%stream_sql INSERT INTO t VALUES (1, 'x'), (2, 'y'), (3, 'z')")
    run(ip, "%stream_sql CREATE MATERIALIZED VIEW m AS SELECT b, COUNT(*) AS n FROM t GROUP BY b")
    run(ip, "%stream_sql UPDATE t SET b = 'w' WHERE a = 1")
    run(ip, "%stream_sql DELETE FROM t WHERE a > 1")
    run(ip, "%stream_sql FLUSH")
    run(ip, "%stream_sql SET delivery_guarantee = at_least_once")
    run(ip, "%stream_sql DROP MATERIALIZED VIEW m")
    assert capsys.readouterr().out.splitlines() == [
        "CREATE_TABLE", "INSERT 0 3", "CREATE_MATERIALIZED_VIEW", "UPDATE 1", "DELETE 2",
        "FLUSH", "SET_VARIABLE", "DROP_MATERIALIZED_VIEW"]


def test_only_the_last_statement_of_a_cell_is_shown(ip, capsys):
    value = run(ip, "%%stream_sql\nCREATE TABLE t (a INT);\nINSERT INTO t VALUES (7);\n"
                    "FLUSH;\nSELECT a * 2 AS doubled FROM t;")
    assert value.to_dict("list") == {"doubled": [14]}
    out = capsys.readouterr().out
    assert "CREATE_TABLE" not in out and "INSERT" not in out and "FLUSH" not in out


def test_explain_results_show_as_plain_text(ip):
    run(ip, "%stream_sql CREATE TABLE t (a INT)")
    plan = run(ip, "%stream_sql EXPLAIN SELECT a, COUNT(*) FROM t GROUP BY a")
    assert repr(plan).startswith("StreamMaterialize")
    assert "StreamHashAgg" in repr(plan) and "\n" in repr(plan)


# ---- keeping results -------------------------------------------------------------------------


def test_out_option_and_capture_syntax_keep_the_result(ip):
    run_article(ip)
    run(ip, "%%stream_sql -o spend\nSELECT * FROM cons_user_spend ORDER BY user_id")
    assert ip.user_ns["spend"].to_string() == SPEND_TEXT
    run(ip, "%%stream_sql top <<\nSELECT user_id FROM cons_user_spend ORDER BY net_spend DESC")
    assert ip.user_ns["top"]["user_id"].tolist() == [43, 42, 44]
    run(ip, "%stream_sql rows << SELECT COUNT(*) AS n FROM cons_events")
    assert ip.user_ns["rows"]["n"].tolist() == [5]
    run(ip, "%stream_sql --out tag INSERT INTO cons_events VALUES (1, 1, 'x', 1.0, NULL)")
    assert ip.user_ns["tag"] == "INSERT 0 1"


def test_line_magic_returns_the_dataframe_to_python(ip):
    run_article(ip)
    run(ip, "df = %stream_sql SELECT COUNT(*) AS n FROM cons_user_spend")
    assert ip.user_ns["df"]["n"].tolist() == [3]


# ---- errors ----------------------------------------------------------------------------------


def test_parse_error_is_one_line_with_the_position_in_the_cell(ip, capsys):
    value = run(ip, "%%stream_sql\nCREATE TABLE t (a INT);\nSELECT a FROM t WHERE;\n")
    assert value is None
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("ParseError at line 3, column ")
    assert "of the cell (statement 2)" in lines[0]
    assert "Traceback" not in captured.err + captured.out


def test_parse_error_column_is_counted_in_the_cell(ip, capsys):
    run(ip, "%%stream_sql\nSELECT 1;\n  SELECT 1 +;")
    err = capsys.readouterr().err
    assert err.startswith("ParseError at line 3, column 12 of the cell (statement 2)"), err


def test_runtime_error_names_the_statement_and_its_line(ip, capsys):
    value = run(ip, "%%stream_sql\nCREATE TABLE t (a INT);\n\nSELECT * FROM nope;")
    assert value is None
    err = capsys.readouterr().err.strip()
    assert err == ('CatalogError at line 4, column 15 of the cell (statement 2: SELECT * FROM '
                   'nope): table or materialized view "nope" does not exist')


def test_runtime_error_points_at_the_unknown_name(ip, capsys):
    run(ip, "%stream_sql CREATE TABLE t (amount INT)")
    run(ip, "%%stream_sql\nSELECT amount\nFROM t\n  WHERE amount > 0 AND amountt < 9;")
    err = capsys.readouterr().err
    assert err.startswith("CatalogError at line 4, column 24 of the cell (statement 1: "), err
    assert err.rstrip().endswith('column "amountt" does not exist')


def test_the_engine_keeps_running_after_an_error(ip, capsys):
    run(ip, "%stream_sql CREATE TABLE t (a INT)")
    run(ip, "%stream_sql INSERT INTO t VALUES ('not a number')")
    assert capsys.readouterr().err.count("\n") == 1
    run(ip, "%stream_sql INSERT INTO t VALUES (5)")
    run(ip, "%stream_sql FLUSH")
    assert run(ip, "%stream_sql SELECT * FROM t")["a"].tolist() == [5]


def test_errors_in_a_line_magic_give_the_column(ip, capsys):
    run(ip, "%stream_sql SELECT 1 +")
    assert capsys.readouterr().err.startswith("ParseError at column 10 (statement 1)")


def test_short_errors_off_raises_the_engine_error(ip):
    import kernel_engine

    run(ip, "%config StreamSqlMagic.short_errors = False")
    result = ip.run_cell("%stream_sql SELECT * FROM nope", store_history=False)
    assert isinstance(result.error_in_exec, kernel_engine.CatalogError)


def test_usage_errors_are_one_line(ip, capsys):
    result = ip.run_cell("%stream_sql --bogus SELECT 1", store_history=False)
    assert result.error_in_exec is not None
    err = capsys.readouterr().err
    assert err.startswith("UsageError: unknown option --bogus") and err.count("\n") == 1
    result = ip.run_cell("%stream_sql --guarantee twice SELECT 1", store_history=False)
    assert "invalid choice" in capsys.readouterr().err


# ---- {{name}} -------------------------------------------------------------------------------


def test_python_values_are_substituted_as_literals(ip):
    run(ip, "%stream_sql CREATE TABLE p (name VARCHAR, n INT)")
    ip.user_ns.update(who="O'Brien", n=3, ids=[1, 3])
    run(ip, "%stream_sql INSERT INTO p VALUES ({{who}}, {{n}}), ('x', 1), ('y', 2)")
    run(ip, "%stream_sql FLUSH")
    assert run(ip, "%stream_sql SELECT name FROM p WHERE n = {{n}}")["name"].tolist() == [
        "O'Brien"]
    picked = run(ip, "%%stream_sql\nSELECT name FROM p WHERE n IN ({{ids}}) ORDER BY n")
    assert picked["name"].tolist() == ["x", "O'Brien"]


def test_unknown_variable_is_a_usage_error(ip, capsys):
    result = ip.run_cell("%stream_sql SELECT {{missing_var}}", store_history=False)
    assert result.error_in_exec is not None
    assert "no Python variable named 'missing_var'" in capsys.readouterr().err


def test_error_positions_refer_to_the_cell_before_substitution(ip, capsys):
    ip.user_ns["long_text"] = "a rather long string value"
    run(ip, "%%stream_sql\nSELECT {{long_text}} AS s, 1 +;")
    err = capsys.readouterr().err
    assert err.startswith("ParseError at line 2, column 30 of the cell"), err


def test_sql_literals():
    assert sql_literal("it's") == "'it''s'"
    assert sql_literal(None) == "NULL"
    assert sql_literal(True) == "TRUE"
    assert sql_literal(2.5) == "2.5"
    assert sql_literal(Decimal("1.10")) == "1.10"
    assert sql_literal(dt.datetime(2026, 4, 1, 9, 0, 1)) == "TIMESTAMP '2026-04-01 09:00:01'"
    assert sql_literal(dt.date(2026, 4, 1)) == "DATE '2026-04-01'"
    assert sql_literal(("a", 1)) == "'a', 1"
    with pytest.raises(TemplateError):
        sql_literal(object())
    with pytest.raises(TemplateError):
        sql_literal([])
    sub = substitute("SELECT {{a.real}}", {"a": 5})
    assert sub.sql == "SELECT 5"


# ---- options and config ---------------------------------------------------------------------


def test_guarantee_option_switches_the_engine(ip):
    run(ip, "%stream_sql --guarantee at_least_once SELECT 1")
    assert rwmagic.engine().guarantee == "at_least_once"
    run(ip, "%stream_sql --guarantee exactly_once SELECT 1")
    assert rwmagic.engine().guarantee == "exactly_once"


def test_connect_checkpoints_to_a_folder_and_recovers_in_a_fresh_engine(ip, tmp_path, capsys):
    state = tmp_path / "state"
    ip.user_ns["folder"] = str(state)
    run(ip, "%stream_sql --connect {{folder}}")
    assert f"Connected: {state} (exactly_once)" in capsys.readouterr().out
    first = rwmagic.engine()
    assert first.storage is not None
    run_article(ip)
    run(ip, f"%stream_sql --connect {state}")  # the same location: the same engine
    assert rwmagic.engine() is first
    rwmagic.close_engine()
    df = run(ip, f"%%stream_sql --connect {state}\nSELECT * FROM cons_user_spend ORDER BY 1")
    assert rwmagic.engine() is not first
    assert df.to_string() == SPEND_TEXT
    run(ip, "%stream_sql --connect :memory:")
    assert rwmagic.engine().storage is None and first._closed


def test_connect_to_s3(ip, s3_server, s3_bucket):
    options = s3_server.storage_options()
    ip.user_ns["s3_options"] = options
    run(ip, "%config StreamSqlMagic.storage_options = s3_options")
    run(ip, f"%stream_sql --connect s3://{s3_bucket}/ckpt")
    run_article(ip)
    rwmagic.close_engine()
    df = run(ip, f"%%stream_sql --connect s3://{s3_bucket}/ckpt\n"
                 "SELECT * FROM cons_user_spend ORDER BY user_id")
    assert df.to_string() == SPEND_TEXT
    assert s3_server.filesystem().ls(f"{s3_bucket}/ckpt")


def test_connect_error_is_one_line(ip, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert run(ip, f"%stream_sql --connect {blocker}/state SELECT 1") is None
    err = capsys.readouterr().err
    assert err.startswith("StorageError: cannot create checkpoint folder") and err.count("\n") == 1


def test_explain_option_shows_the_plan_without_creating_the_view(ip):
    plan = run(ip, "%%stream_sql --explain\nCREATE TABLE t (k INT, v INT);\n"
                   "CREATE MATERIALIZED VIEW m AS SELECT k, SUM(v) AS s FROM t GROUP BY k;")
    assert "StreamHashAgg" in repr(plan)
    assert run(ip, "%stream_sql SHOW MATERIALIZED VIEWS")["Name"].tolist() == []
    assert run(ip, "%stream_sql SHOW TABLES")["Name"].tolist() == ["t"]


def test_explain_option_errors_point_into_the_cell(ip, capsys):
    run(ip, "%%stream_sql --explain\nCREATE TABLE t (k INT);\nSELECT k FROM nope;")
    err = capsys.readouterr().err
    assert err.startswith("CatalogError at line 3, column 15 of the cell (statement 2: "), err
    run(ip, "%%stream_sql --explain\nSELECT k +;")
    assert capsys.readouterr().err.startswith("ParseError at line 2, column 10 of the cell")


def test_config_feedback_and_location(ip, tmp_path, capsys):
    run(ip, "%config StreamSqlMagic.feedback = False")
    run(ip, "%stream_sql CREATE TABLE t (a INT)")
    assert capsys.readouterr().out == ""
    rwmagic.close_engine()
    run(ip, f"%config StreamSqlMagic.location = '{tmp_path / 'cfg'}'")
    run(ip, "%config StreamSqlMagic.guarantee = 'at_most_once'")
    run(ip, "%stream_sql SELECT 1")
    db = rwmagic.engine()
    assert db.storage is not None and db.storage.url == str(tmp_path / "cfg")
    assert db.guarantee == "at_most_once"


def test_help_documents_every_option(ip):
    doc = ip.find_cell_magic("stream_sql").__doc__
    for option in ("-o NAME", "--connect", "--guarantee", "--watch", "--explain", "{{name}}",
                   "NAME << SQL", "%config StreamSqlMagic"):
        assert option in doc, option
    magic = ip.magics_manager.registry["StreamSqlMagic"]
    for name in magic.trait_names(config=True):
        assert name in doc and magic.traits()[name].help


# ---- one engine per kernel --------------------------------------------------------------------


def test_python_and_the_magic_share_one_engine(ip):
    import pyarrow as pa

    run(ip, "%stream_sql CREATE TABLE t (a INT)")
    db = rwmagic.engine()
    db.insert("t", pa.table({"a": pa.array([1, 2], pa.int32())}))
    db.flush()
    assert run(ip, "%stream_sql SELECT SUM(a) AS s FROM t")["s"].tolist() == [3]
    assert rwmagic.engine() is db and rwmagic.current_engine() is db


def test_engine_switch_closes_the_old_one(tmp_path):
    try:
        first = rwmagic.engine()
        second = rwmagic.engine(str(tmp_path / "s"))
        assert first is not second and first._closed
        assert rwmagic.engine(str(tmp_path / "s")) is second
        assert rwmagic.engine() is second
    finally:
        rwmagic.close_engine()
    assert rwmagic.current_engine() is None


# ---- --watch --------------------------------------------------------------------------------


def test_watched_relation():
    assert watched_relation("SELECT * FROM cons_user_spend ORDER BY user_id") == "cons_user_spend"
    assert watched_relation("CREATE MATERIALIZED VIEW m AS SELECT 1 FROM t") == "m"
    assert watched_relation("SELECT * FROM a JOIN b ON a.k = b.k") is None
    assert watched_relation("SELECT 1") is None


def test_watch_option_shows_a_live_table(ip):
    pytest.importorskip("ipywidgets")
    run_article(ip)
    live = run(ip, "%%stream_sql --watch -o df\nSELECT * FROM cons_user_spend ORDER BY user_id")
    assert type(live).__name__ == "LiveTable"
    assert ip.user_ns["df"].to_string() == SPEND_TEXT
    live.close()


def test_watch_of_a_join_shows_the_result_once(ip, capsys):
    run(ip, "%stream_sql CREATE TABLE a (k INT)")
    value = run(ip, "%stream_sql --watch SELECT * FROM a AS x JOIN a AS y ON x.k = y.k")
    assert isinstance(value, pd.DataFrame)
    assert "--watch follows one table or materialized view" in capsys.readouterr().err


def test_the_engine_thread_never_prints_into_cells(ip, capsys):
    import time

    run(ip, "%config StreamSqlMagic.barrier_interval_ms = 20")
    run(ip, "%config StreamSqlMagic.feedback = False")
    run_article(ip)
    assert rwmagic.engine().barrier_interval_ms == 20
    capsys.readouterr()
    time.sleep(0.3)  # ~15 epochs pass on the engine thread
    assert rwmagic.engine().progress.committed_epoch > 5
    assert capsys.readouterr() == ("", "")


def test_connect_keeps_an_engine_started_with_the_same_settings(ip, tmp_path):
    db = rwmagic.engine(str(tmp_path / "s"))  # defaults spelled out or not: the same engine
    run(ip, f"%stream_sql --connect {tmp_path / 's'}")
    assert rwmagic.engine() is db
    assert rwmagic.engine(str(tmp_path / "s"), delivery_guarantee="exactly_once") is db


def test_sql_on_the_magic_line_of_a_cell(ip, capsys):
    value = run(ip, "%%stream_sql -o df SELECT 1 AS a\nUNION ALL SELECT 2 ORDER BY a")
    assert value["a"].tolist() == [1, 2]
    run(ip, "%%stream_sql SELECT 1 +\n;")
    err = capsys.readouterr().err
    assert err.startswith("ParseError at line 1, column 23 of the cell"), err


def test_placeholders_inside_string_literals_insert_escaped_text():
    sub = substitute("SELECT * FROM t WHERE name LIKE '%{{word}}%' AND id = {{word}}",
                     {"word": "it's"})
    assert sub.sql == "SELECT * FROM t WHERE name LIKE '%it''s%' AND id = 'it''s'"


def test_reload_ext_keeps_the_engine_and_its_views(ip):
    run_article(ip)
    db = rwmagic.engine()
    run(ip, "%reload_ext rwmagic")
    magics = [c for c in ip.configurables if isinstance(c, StreamSqlMagic)]
    assert len(magics) == 1
    assert rwmagic.engine() is db
    assert run(ip, "%stream_sql SELECT COUNT(*) AS n FROM cons_user_spend")["n"].tolist() == [3]
