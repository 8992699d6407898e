"""Operator tests: text-form change batches in, emitted changes checked, deletes everywhere.

Each operator is driven directly on an engine-side DuckDB connection inside
one open transaction, as the coordinator runs them: `process(batch, port)`
for change batches, `on_barrier(epoch)` / `initial()` where the operator
holds its output back.
"""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
import pytest

from kernel_engine._duck import Duck
from kernel_engine.sql.nodes import AggCall
from kernel_engine.stream.operator import Operator
from kernel_engine.stream.operators import (
    Filter,
    HashAgg,
    HashJoin,
    HopExpand,
    Materialize,
    Project,
    Recompute,
    TableSource,
    TopN,
    Union,
)

from .changes import batch, consolidated, render


@pytest.fixture
def duck() -> Iterator[Duck]:
    d = Duck(streaming=True)
    d.begin()
    yield d
    d.rollback()
    d.close()


def feed(op: Operator, text: str, port: int = 0) -> pa.Table | None:
    """Give the operator one change batch written in the text form."""
    return op.process(batch(text), port)


def expect(out: pa.Table | None, text: str) -> None:
    """The emitted changes mean exactly the changes written in `text`."""
    got = consolidated(out) if out is not None else []
    assert got == consolidated(batch(text)), render(out) if out is not None else "None"


def rows(duck: Duck, sql: str) -> list[tuple[object, ...]]:
    """Query rows as sorted tuples."""
    table = duck.arrow(sql)
    cols = [table[c].to_pylist() for c in table.column_names]
    return sorted(zip(*cols, strict=True))


# ---- the text form itself -------------------------------------------------------------------


def test_text_form_round_trips_and_consolidates() -> None:
    b = batch("""
        k:INTEGER v:VARCHAR
        + 1 'two words'
        - 2 NULL
        + 3 'NULL'
        + 1 'two words'
        - 1 'two words'
    """)
    assert b.schema.names == ["k", "v", "_w"]
    assert str(b.schema.field("k").type) == "int32"
    assert batch(render(b)).equals(b)
    assert consolidated(b) == [(1, "two words", 1), (2, None, -1), (3, "NULL", 1)]
    untyped = batch("""
        a b c
        + 1 1.5 x
    """)
    assert [str(t) for t in untyped.schema.types] == ["int64", "double", "string", "int64"]


# ---- stateless ------------------------------------------------------------------------------


def test_project_evaluates_expressions_on_deletes(duck: Duck) -> None:
    op = Project(duck, "p", [("k", '"k"'), ("d", '"v" * 2'), ("u", 'upper("s")')])
    expect(feed(op, """
        k:INTEGER v:INTEGER s:VARCHAR
        + 1 10 a
        - 2 3 b
        - 3 NULL c
    """), """
        k d u
        + 1 20 A
        - 2 6 B
        - 3 NULL C
    """)


def test_project_pure_renames_keep_weights(duck: Duck) -> None:
    op = Project(duck, "p", [("x", "k"), ("y", '"v"')])
    expect(feed(op, """
        k:INTEGER v:VARCHAR
        + 1 a
        - 2 b
    """), """
        x y
        + 1 a
        - 2 b
    """)


def test_filter_passes_deletes_by_the_same_test(duck: Duck) -> None:
    op = Filter(duck, "f", '"v" > 10')
    expect(feed(op, """
        k:INTEGER v:INTEGER
        - 1 20
        - 2 5
        + 3 11
        + 4 NULL
        - 5 NULL
    """), """
        k v
        - 1 20
        + 3 11
    """)


def test_hop_expand_emits_each_window_and_deletes_them_all(duck: Duck) -> None:
    op = HopExpand(duck, "h", ["id", "ts"], '"ts"', "INTERVAL 1 MINUTE", "INTERVAL 3 MINUTE", 3,
                   "TIMESTAMP '1970-01-01 00:00:00'", "ws", "we")
    windows = """
        id ws:TIMESTAMP we:TIMESTAMP
        {s} 1 '2024-01-01 00:08:00' '2024-01-01 00:11:00'
        {s} 1 '2024-01-01 00:09:00' '2024-01-01 00:12:00'
        {s} 1 '2024-01-01 00:10:00' '2024-01-01 00:13:00'
    """

    def emitted(sign: str) -> pa.Table:
        out = feed(op, f"""
            id:INTEGER ts:TIMESTAMP
            {sign} 1 '2024-01-01 00:10:30'
            {sign} 2 NULL
        """)
        assert out is not None
        return out.select(["id", "ws", "we", "_w"])

    expect(emitted("+"), windows.format(s="+"))
    expect(emitted("-"), windows.format(s="-"))


def test_union_tags_branch_and_key_columns(duck: Duck) -> None:
    schema = pa.schema([("v", pa.string()), ("b", pa.int32()), ("k0", pa.int32()),
                        ("k1", pa.int64())])
    op = Union(duck, "u", ["v"], schema, "b", [["a"], ["c"]],
               [[("id", "k0")], [("rid", "k1")]])
    left = op.process(batch("""
        id:INTEGER a:VARCHAR
        + 1 x
        - 2 y
    """), 0)
    right = op.process(batch("""
        rid:BIGINT c:VARCHAR
        - 7 z
    """), 1)
    assert left is not None and right is not None
    assert left.schema == right.schema
    assert left.schema.names == ["v", "b", "k0", "k1", "_w"]
    expect(left, """
        v b k0 k1
        + x 0 1 NULL
        - y 0 2 NULL
    """)
    expect(right, """
        v b k0 k1
        - z 1 NULL 7
    """)


# ---- aggregation ----------------------------------------------------------------------------


def call(func: str, arg: str | None, out: str, out_type: str, *, distinct: bool = False,
         filter: str | None = None) -> AggCall:
    return AggCall(func, arg, distinct, filter, out, out_type, out)


AGG_TYPES = {"k": "VARCHAR", "x": "INTEGER", "f": "BOOLEAN"}
AGG_IN = "k:VARCHAR x:INTEGER f:BOOLEAN"
AGG_OUT = "k cnt cx sx ax mn mx"


@pytest.fixture
def grouped(duck: Duck) -> HashAgg:
    calls = [call("count_star", None, "cnt", "BIGINT"), call("count", "x", "cx", "BIGINT"),
             call("sum", "x", "sx", "BIGINT"), call("avg", "x", "ax", "DOUBLE"),
             call("min", "x", "mn", "INTEGER"), call("max", "x", "mx", "INTEGER")]
    return HashAgg(duck, "agg", ["k"], AGG_TYPES, calls)


def test_agg_counts_sums_and_averages_with_nulls(grouped: HashAgg) -> None:
    assert grouped.initial() is None
    expect(feed(grouped, f"""
        {AGG_IN}
        + a 1 true
        + a 3 true
        + a NULL true
        + b 5 true
    """), f"""
        {AGG_OUT}
        + a 3 2 4 2.0 1 3
        + b 1 1 5 5.0 5 5
    """)
    expect(feed(grouped, f"""
        {AGG_IN}
        - a 3 true
        - a NULL true
    """), f"""
        {AGG_OUT}
        - a 3 2 4 2.0 1 3
        + a 1 1 1 1.0 1 1
    """)
    expect(feed(grouped, f"""
        {AGG_IN}
        + a NULL true
    """), f"""
        {AGG_OUT}
        - a 1 1 1 1.0 1 1
        + a 2 1 1 1.0 1 1
    """)
    expect(feed(grouped, f"""
        {AGG_IN}
        - a 1 true
    """), f"""
        {AGG_OUT}
        - a 2 1 1 1.0 1 1
        + a 1 0 NULL NULL NULL NULL
    """)


def test_agg_min_max_fall_back_to_the_next_value(grouped: HashAgg) -> None:
    feed(grouped, f"""
        {AGG_IN}
        + a 1 true
        + a 1 true
        + a 4 true
        + a 9 true
    """)
    expect(feed(grouped, f"""
        {AGG_IN}
        - a 1 true
    """), f"""
        {AGG_OUT}
        - a 4 4 15 3.75 1 9
        + a 3 3 14 4.666666666666667 1 9
    """)
    expect(feed(grouped, f"""
        {AGG_IN}
        - a 1 true
        - a 9 true
    """), f"""
        {AGG_OUT}
        - a 3 3 14 4.666666666666667 1 9
        + a 1 1 4 4.0 4 4
    """)


def test_agg_group_disappears_with_its_last_row(grouped: HashAgg) -> None:
    feed(grouped, f"""
        {AGG_IN}
        + a 1 true
        + b 2 true
    """)
    expect(feed(grouped, f"""
        {AGG_IN}
        - b 2 true
    """), f"""
        {AGG_OUT}
        - b 1 1 2 2.0 2 2
    """)
    expect(feed(grouped, f"""
        {AGG_IN}
        + b 7 true
    """), f"""
        {AGG_OUT}
        + b 1 1 7 7.0 7 7
    """)


def test_agg_insert_and_delete_in_one_batch_cancel(grouped: HashAgg) -> None:
    expect(feed(grouped, f"""
        {AGG_IN}
        + a 1 true
        - a 1 true
    """), AGG_OUT)


def test_agg_count_distinct_and_filter(duck: Duck) -> None:
    calls = [call("count", "x", "dx", "BIGINT", distinct=True),
             call("sum", "x", "sf", "BIGINT", filter="f"),
             call("count_star", None, "cf", "BIGINT", filter="f")]
    op = HashAgg(duck, "agg", ["k"], AGG_TYPES, calls)
    expect(feed(op, f"""
        {AGG_IN}
        + a 1 true
        + a 1 false
        + a 2 NULL
    """), """
        k dx sf cf
        + a 2 1 1
    """)
    expect(feed(op, f"""
        {AGG_IN}
        - a 2 NULL
        + a 5 false
        + a 6 true
    """), """
        k dx sf cf
        - a 2 1 1
        + a 3 7 2
    """)
    expect(feed(op, f"""
        {AGG_IN}
        - a 5 false
        - a 6 true
        - a 1 true
    """), """
        k dx sf cf
        - a 3 7 2
        + a 1 NULL 0
    """)
    expect(feed(op, f"""
        {AGG_IN}
        - a 1 false
        + a NULL true
    """), """
        k dx sf cf
        - a 1 NULL 0
        + a 0 NULL 1
    """)


def test_global_agg_starts_and_ends_at_its_empty_row(duck: Duck) -> None:
    calls = [call("count_star", None, "cnt", "BIGINT"), call("sum", "x", "sx", "BIGINT"),
             call("min", "x", "mn", "INTEGER"), call("count", "x", "dx", "BIGINT", distinct=True)]
    op = HashAgg(duck, "g", [], AGG_TYPES, calls)
    empty = "+ 0 NULL NULL 0"
    expect(op.initial(), f"""
        cnt sx mn dx
        {empty}
    """)
    expect(feed(op, f"""
        {AGG_IN}
        + a 2 true
        + b 3 true
    """), f"""
        cnt sx mn dx
        -{empty[1:]}
        + 2 5 2 2
    """)
    expect(feed(op, f"""
        {AGG_IN}
        - a 2 true
    """), """
        cnt sx mn dx
        - 2 5 2 2
        + 1 3 3 1
    """)
    expect(feed(op, f"""
        {AGG_IN}
        - b 3 true
    """), f"""
        cnt sx mn dx
        - 1 3 3 1
        {empty}
    """)


# ---- join -----------------------------------------------------------------------------------

LEFT = ([("id", "INTEGER"), ("k", "INTEGER"), ("lv", "INTEGER")], ["id"], ["k"])
RIGHT = ([("rid", "INTEGER"), ("rk", "INTEGER"), ("rv", "INTEGER")], ["rid"], ["rk"])
L_IN = "id:INTEGER k:INTEGER lv:INTEGER"
R_IN = "rid:INTEGER rk:INTEGER rv:INTEGER"
J_OUT = "id k lv rid rk rv"


def join(duck: Duck, kind: str, cond: str | None = None) -> HashJoin:
    return HashJoin(duck, f"j_{kind}", kind, LEFT, RIGHT, cond)


def left(op: HashJoin, rows: str) -> pa.Table | None:
    return feed(op, f"{L_IN}\n{rows}", 0)


def right(op: HashJoin, rows: str) -> pa.Table | None:
    return feed(op, f"{R_IN}\n{rows}", 1)


def test_inner_join_delta_rule_with_deletes_on_each_side(duck: Duck) -> None:
    op = join(duck, "inner")
    expect(left(op, "+ 1 10 100\n+ 2 20 200"), J_OUT)
    expect(right(op, "+ 7 10 70\n+ 8 10 80"), f"""
        {J_OUT}
        + 1 10 100 7 10 70
        + 1 10 100 8 10 80
    """)
    expect(left(op, "- 1 10 100\n+ 3 10 300"), f"""
        {J_OUT}
        - 1 10 100 7 10 70
        - 1 10 100 8 10 80
        + 3 10 300 7 10 70
        + 3 10 300 8 10 80
    """)
    expect(right(op, "- 7 10 70\n+ 9 20 90"), f"""
        {J_OUT}
        - 3 10 300 7 10 70
        + 2 20 200 9 20 90
    """)


def test_left_join_pads_and_restores_null_rows(duck: Duck) -> None:
    op = join(duck, "left")
    expect(left(op, "+ 1 10 100\n+ 2 NULL 200"), f"""
        {J_OUT}
        + 1 10 100 NULL NULL NULL
        + 2 NULL 200 NULL NULL NULL
    """)
    expect(right(op, "+ 7 10 70\n+ 8 NULL 80"), f"""
        {J_OUT}
        - 1 10 100 NULL NULL NULL
        + 1 10 100 7 10 70
    """)
    expect(right(op, "+ 9 10 90"), f"""
        {J_OUT}
        + 1 10 100 9 10 90
    """)
    expect(right(op, "- 7 10 70\n- 9 10 90"), f"""
        {J_OUT}
        - 1 10 100 7 10 70
        - 1 10 100 9 10 90
        + 1 10 100 NULL NULL NULL
    """)
    expect(left(op, "- 1 10 100\n- 2 NULL 200"), f"""
        {J_OUT}
        - 1 10 100 NULL NULL NULL
        - 2 NULL 200 NULL NULL NULL
    """)


def test_right_join_pads_the_left_side(duck: Duck) -> None:
    op = join(duck, "right")
    expect(right(op, "+ 7 10 70"), f"""
        {J_OUT}
        + NULL NULL NULL 7 10 70
    """)
    expect(left(op, "+ 1 10 100\n+ 2 30 200"), f"""
        {J_OUT}
        - NULL NULL NULL 7 10 70
        + 1 10 100 7 10 70
    """)
    expect(left(op, "- 1 10 100"), f"""
        {J_OUT}
        - 1 10 100 7 10 70
        + NULL NULL NULL 7 10 70
    """)
    expect(right(op, "- 7 10 70"), f"""
        {J_OUT}
        - NULL NULL NULL 7 10 70
    """)


def test_full_join_pads_both_sides(duck: Duck) -> None:
    op = join(duck, "full")
    expect(left(op, "+ 1 10 100"), f"""
        {J_OUT}
        + 1 10 100 NULL NULL NULL
    """)
    expect(right(op, "+ 7 10 70\n+ 8 20 80"), f"""
        {J_OUT}
        - 1 10 100 NULL NULL NULL
        + 1 10 100 7 10 70
        + NULL NULL NULL 8 20 80
    """)
    expect(left(op, "- 1 10 100\n+ 2 20 200"), f"""
        {J_OUT}
        - 1 10 100 7 10 70
        + NULL NULL NULL 7 10 70
        - NULL NULL NULL 8 20 80
        + 2 20 200 8 20 80
    """)
    expect(right(op, "- 8 20 80\n- 7 10 70"), f"""
        {J_OUT}
        - 2 20 200 8 20 80
        + 2 20 200 NULL NULL NULL
        - NULL NULL NULL 7 10 70
    """)


def test_inner_join_with_a_non_equi_condition(duck: Duck) -> None:
    op = join(duck, "inner", '"lv" < "rv"')
    left(op, "+ 1 10 50\n+ 2 10 150")
    expect(right(op, "+ 7 10 100"), f"""
        {J_OUT}
        + 1 10 50 7 10 100
    """)
    expect(left(op, "- 2 10 150\n- 1 10 50"), f"""
        {J_OUT}
        - 1 10 50 7 10 100
    """)


def test_left_join_with_a_non_equi_condition(duck: Duck) -> None:
    op = join(duck, "left", '"lv" < "rv"')
    left(op, "+ 1 10 50\n+ 2 10 150")
    expect(right(op, "+ 7 10 100"), f"""
        {J_OUT}
        - 1 10 50 NULL NULL NULL
        + 1 10 50 7 10 100
    """)
    expect(right(op, "- 7 10 100"), f"""
        {J_OUT}
        - 1 10 50 7 10 100
        + 1 10 50 NULL NULL NULL
    """)
    expect(left(op, "- 2 10 150"), f"""
        {J_OUT}
        - 2 10 150 NULL NULL NULL
    """)


# ---- recomputing operators ------------------------------------------------------------------


def test_top_n_brings_in_the_next_row_at_the_barrier(duck: Duck) -> None:
    op = TopN(duck, "t", [("id", "INTEGER"), ("score", "INTEGER")], ["id"],
              [("score", True, False)], 2, 0)
    assert feed(op, """
        id:INTEGER score:INTEGER
        + 1 10
        + 2 40
        + 3 30
        + 4 20
        + 5 NULL
    """) is None
    expect(op.on_barrier(1), """
        id score
        + 2 40
        + 3 30
    """)
    assert op.on_barrier(2) is None
    assert feed(op, """
        id:INTEGER score:INTEGER
        - 2 40
    """) is None
    expect(op.on_barrier(3), """
        id score
        - 2 40
        + 4 20
    """)
    feed(op, """
        id:INTEGER score:INTEGER
        - 1 10
    """)
    expect(op.on_barrier(4), "id score")


def test_top_n_with_offset_and_ties(duck: Duck) -> None:
    op = TopN(duck, "t", [("id", "INTEGER"), ("score", "INTEGER")], ["id"],
              [("score", False, False)], 2, 1)
    feed(op, """
        id:INTEGER score:INTEGER
        + 1 5
        + 2 5
        + 3 5
        + 4 1
    """)
    expect(op.on_barrier(1), """
        id score
        + 1 5
        + 2 5
    """)
    feed(op, """
        id:INTEGER score:INTEGER
        - 4 1
    """)
    expect(op.on_barrier(2), """
        id score
        - 1 5
        + 3 5
    """)


def test_recompute_emits_the_difference_at_the_barrier(duck: Duck) -> None:
    duck.run("CREATE TABLE src (k INTEGER, v INTEGER)")
    duck.run("INSERT INTO src VALUES (1, 10), (1, 5), (2, 7), (3, 1), (3, 1)")
    op = Recompute(duck, "r", 1, "SELECT k, SUM(v) FROM src GROUP BY k UNION ALL "
                   "SELECT 9, 1 FROM src WHERE k = 3",
                   [("k", "INTEGER"), ("s", "BIGINT"), ("_dup", "BIGINT")], "_dup")
    expect(op.initial(), """
        k s _dup
        + 1 15 1
        + 2 7 1
        + 3 2 1
        + 9 1 1
        + 9 1 2
    """)
    assert op.on_barrier(1) is None
    duck.run("DELETE FROM src WHERE k = 2 OR (k = 1 AND v = 5)")
    duck.run("DELETE FROM src WHERE k = 3")
    duck.run("INSERT INTO src VALUES (3, 4)")
    assert feed(op, "a:INTEGER\n+ 1") is None
    expect(op.on_barrier(2), """
        k s _dup
        - 1 15 1
        + 1 10 1
        - 2 7 1
        - 3 2 1
        + 3 4 1
        - 9 1 2
    """)


# ---- materializing operators ----------------------------------------------------------------


def test_materialize_applies_updates_keeping_one_row_per_key(duck: Duck) -> None:
    op = Materialize(duck, "x", ["a", "b"], [("k", "INTEGER"), ("v", "VARCHAR")], ["k"])
    mv = 'SELECT * FROM "__mv_x"'
    expect(feed(op, """
        a:INTEGER b:VARCHAR
        + 1 a
        + 2 b
    """), """
        k v
        + 1 a
        + 2 b
    """)
    expect(feed(op, """
        a:INTEGER b:VARCHAR
        - 1 a
        + 1 c
    """), """
        k v
        - 1 a
        + 1 c
    """)
    assert rows(duck, mv) == [(1, "c"), (2, "b")]
    feed(op, """
        a:INTEGER b:VARCHAR
        + 1 d
        - 1 c
    """)
    assert rows(duck, mv) == [(1, "d"), (2, "b")]
    feed(op, """
        a:INTEGER b:VARCHAR
        - 2 b
    """)
    feed(op, """
        a:INTEGER b:VARCHAR
        + 2 e
    """)
    assert rows(duck, mv) == [(1, "d"), (2, "e")]


TABLE_COLS = [("k", "INTEGER"), ("v", "VARCHAR")]
T_IN = "k:INTEGER v:VARCHAR"


def test_table_source_overwrites_an_existing_key(duck: Duck) -> None:
    op = TableSource(duck, "t", TABLE_COLS, ["k"], True)
    expect(feed(op, f"{T_IN}\n+ 1 a\n+ 2 b"), "k v\n+ 1 a\n+ 2 b")
    expect(feed(op, f"{T_IN}\n+ 1 c\n+ 3 x"), "k v\n- 1 a\n+ 1 c\n+ 3 x")
    assert rows(duck, 'SELECT * FROM "__t_t"') == [(1, "c"), (2, "b"), (3, "x")]
    expect(feed(op, f"{T_IN}\n- 2 b"), "k v\n- 2 b")
    assert rows(duck, 'SELECT * FROM "__t_t"') == [(1, "c"), (3, "x")]


def test_table_source_duplicate_keys_in_one_batch_last_wins(duck: Duck) -> None:
    op = TableSource(duck, "t", TABLE_COLS, ["k"], True)
    expect(feed(op, f"{T_IN}\n+ 1 a\n+ 1 b\n+ 2 x"), "k v\n+ 1 b\n+ 2 x")
    expect(feed(op, f"{T_IN}\n+ 1 c\n+ 1 d"), "k v\n- 1 b\n+ 1 d")
    assert rows(duck, 'SELECT * FROM "__t_t"') == [(1, "d"), (2, "x")]


def test_table_source_on_conflict_do_nothing_keeps_the_old_row(duck: Duck) -> None:
    op = TableSource(duck, "t", TABLE_COLS, ["k"], True, "do_nothing")
    expect(feed(op, f"{T_IN}\n+ 1 a\n+ 1 b"), "k v\n+ 1 a")
    expect(feed(op, f"{T_IN}\n+ 1 c\n+ 2 x"), "k v\n+ 2 x")
    assert rows(duck, 'SELECT * FROM "__t_t"') == [(1, "a"), (2, "x")]


def test_table_source_without_primary_key_keeps_duplicates(duck: Duck) -> None:
    op = TableSource(duck, "t", [*TABLE_COLS, ("_row_id", "BIGINT")], ["_row_id"], False)
    feed(op, "k:INTEGER v:VARCHAR _row_id:BIGINT\n+ 1 a 1\n+ 1 a 2")
    expect(feed(op, "k:INTEGER v:VARCHAR _row_id:BIGINT\n- 1 a 1"), "k v _row_id\n- 1 a 1")
    assert rows(duck, 'SELECT k, v FROM "__t_t"') == [(1, "a")]


def test_agg_sum_and_avg_of_intervals(duck: Duck) -> None:
    calls = [call("sum", "i", "si", "INTERVAL"), call("avg", "i", "ai", "INTERVAL"),
             call("sum", "i", "sd", "INTERVAL", distinct=True)]
    op = HashAgg(duck, "agg", ["k"], {"k": "INTEGER", "i": "INTERVAL"}, calls)

    def step(text: str) -> list[tuple[object, ...]]:
        out = feed(op, f"k:INTEGER i:INTERVAL\n{text}")
        assert out is not None
        casts = ", ".join(f"CAST({c} AS VARCHAR) AS {c}" for c in ("si", "ai", "sd"))
        return consolidated(duck.arrow(f"SELECT k, {casts}, _w FROM _o", _o=out))

    assert step("+ 1 '1 month 2 hours'\n+ 1 '1 month 2 hours'\n+ 1 '1 day'\n+ 1 NULL") == [
        (1, "2 months 1 day 04:00:00", "20 days 09:20:00", "1 month 1 day 02:00:00", 1)]
    assert step("- 1 '1 month 2 hours'\n- 1 '1 day'") == [
        (1, "1 month 02:00:00", "1 month 02:00:00", "1 month 02:00:00", 1),
        (1, "2 months 1 day 04:00:00", "20 days 09:20:00", "1 month 1 day 02:00:00", -1)]
    assert step("- 1 '1 month 2 hours'") == [
        (1, "1 month 02:00:00", "1 month 02:00:00", "1 month 02:00:00", -1),
        (1, None, None, None, 1)]


def test_project_of_bare_keywords_is_not_a_rename(duck: Duck) -> None:
    op = Project(duck, "p", [("k", "k"), ("f", "TRUE"), ("n", "NULL")])
    expect(feed(op, """
        k:INTEGER v:VARCHAR
        + 1 a
        - 2 b
    """), """
        k f:BOOLEAN n
        + 1 true NULL
        - 2 true NULL
    """)
