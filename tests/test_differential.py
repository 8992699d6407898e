"""Differential test: every materialized view equals DuckDB's batch answer after every FLUSH.

Hypothesis draws a sequence of DML steps (INSERT, UPDATE, DELETE, FLUSH) over
three small tables whose value domains are tiny, so keys collide, groups
empty and refill, and joins match many ways. Views are created before any
data and again part-way through (backfill from a snapshot). After every
FLUSH, each table must equal a plain-Python model of the DML, and each view
must equal, as a multiset of rows, DuckDB running the view's query (with
PostgreSQL semantics, via the engine's ad-hoc translator) over the tables'
current contents; a view on a view is evaluated over the upstream view's
expected rows.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pyarrow as pa
import sqlglot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kernel_engine
from kernel_engine.query.adhoc import translate_query

Row = tuple[Any, ...]

TABLES = {
    "a": "CREATE TABLE a (id INT PRIMARY KEY, k INT, v DOUBLE PRECISION, s VARCHAR, "
         "ts TIMESTAMP)",
    "b": "CREATE TABLE b (k INT, w INT)",
    "c": "CREATE TABLE c (k INT PRIMARY KEY, name VARCHAR)",
}

# name -> query; a view whose query reads another view must come after it.
VIEWS: dict[str, str] = {
    "agg_k": "SELECT k, COUNT(*) AS n, COUNT(v) AS nv, SUM(v) AS sv, AVG(v) AS av, "
             "MIN(v) AS mn, MAX(v) AS mx, COUNT(DISTINCT s) AS ds, MIN(s) AS ms FROM a GROUP BY k",
    "agg_filter": "SELECT k, COUNT(*) FILTER (WHERE v > 0) AS pos, "
                  "SUM(v) FILTER (WHERE s = 'x') AS sx, MAX(id) AS mid "
                  "FROM a GROUP BY k HAVING COUNT(*) > 1",
    "agg_b": "SELECT k, COUNT(*) AS n, SUM(w) AS sw, MIN(w) AS mn, MAX(w) AS mx, "
             "COUNT(DISTINCT w) AS dw, AVG(w) AS aw, SUM(w) FILTER (WHERE w > 5) AS sw5 "
             "FROM b GROUP BY k",
    "agg_expr": "SELECT k % 2 AS par, COALESCE(s, '?') AS s2, COUNT(*) AS n, SUM(id) AS si "
                "FROM a GROUP BY k % 2, COALESCE(s, '?') HAVING MIN(v) < 1 OR MAX(s) = 'x'",
    "agg_all": "SELECT COUNT(*) AS n, COUNT(s) AS ns, SUM(v) AS sv, AVG(v) AS av, "
               "MAX(v) AS mx, MIN(ts) AS mts FROM a",
    "agg_all_b": "SELECT COUNT(*) AS n, SUM(w) AS sw, MIN(w) AS mn FROM b WHERE w > 5",
    "ij": "SELECT a.id, a.v, b.w FROM a JOIN b ON a.k = b.k",
    "lj": "SELECT a.id, a.k, b.w FROM a LEFT JOIN b ON a.k = b.k AND b.w > 10",
    "rj": "SELECT a.id, b.k, b.w FROM a RIGHT JOIN b ON a.k = b.k AND a.v < b.w",
    "lj_where": "SELECT a.id, b.w FROM a LEFT JOIN b ON a.k = b.k WHERE b.w IS NULL OR b.w > 10",
    "fj": "SELECT a.id, a.k AS ak, b.k AS bk, b.w FROM a FULL JOIN b "
          "ON a.k = b.k AND b.w <> a.id",
    "fj_views": "SELECT agg_k.k, agg_k.n, agg_b.sw FROM agg_k FULL JOIN agg_b "
                "ON agg_k.k = agg_b.k",
    "fj_nonequi": "SELECT a.id, b.w FROM a FULL JOIN b ON a.v > b.w",
    "lj_agg": "SELECT c.k, c.name, t.n FROM c LEFT JOIN (SELECT k, COUNT(*) AS n FROM b "
              "GROUP BY k) t ON t.k = c.k AND t.n > 1",
    "three": "SELECT a.id, b.w, c.name FROM a JOIN b ON a.k = b.k JOIN c ON b.k = c.k",
    "c_counts": "SELECT c.k, c.name, COUNT(a.id) AS n, SUM(a.v) AS sv FROM c "
                "LEFT JOIN a ON a.k = c.k GROUP BY c.k, c.name",
    "self": "SELECT x.id AS xid, y.id AS yid, x.k FROM a x JOIN a y ON x.k = y.k AND x.id < y.id",
    "self_two_keys": "SELECT x.id AS xid, y.id AS yid FROM a x JOIN a y "
                     "ON x.k = y.k AND x.s = y.s",
    "self_lj": "SELECT x.id AS xid, y.id AS yid FROM a x LEFT JOIN a y "
               "ON x.k = y.k AND x.id < y.id",
    "self_nonequi": "SELECT x.id AS xid, y.id AS yid FROM a x JOIN a y ON x.v < y.v",
    "distinct_join": "SELECT a.k, COUNT(DISTINCT b.w) AS dw, COUNT(*) AS n, MAX(a.v) AS mx "
                     "FROM a JOIN b ON a.k = b.k GROUP BY a.k",
    "cte": "WITH t AS (SELECT k, SUM(w) AS sw FROM b GROUP BY k) "
           "SELECT a.id, t.sw FROM a JOIN t ON a.k = t.k",
    "tum": "SELECT window_start, window_end, COUNT(*) AS n, SUM(v) AS sv "
           "FROM TUMBLE(a, ts, INTERVAL '1' MINUTE) GROUP BY window_start, window_end",
    "hop": "SELECT window_start, k, COUNT(*) AS n, MAX(v) AS mx "
           "FROM HOP(a, ts, INTERVAL '1' MINUTE, INTERVAL '2' MINUTE) GROUP BY window_start, k",
    "un": "SELECT k, id AS x FROM a WHERE v IS NOT NULL UNION ALL SELECT k, w AS x FROM b",
    "dis": "SELECT DISTINCT k, s FROM a",
    "dis_b": "SELECT DISTINCT k FROM b",
    "sub": "SELECT k, n FROM (SELECT k, COUNT(*) AS n FROM b GROUP BY k) t WHERE n > 1",
    "topn": "SELECT id, v, s FROM a ORDER BY v DESC, id LIMIT 3",
    "topn_b": "SELECT k, w FROM b ORDER BY w NULLS FIRST, k LIMIT 2",
    "topn_agg": "SELECT k, COUNT(*) AS n FROM a GROUP BY k ORDER BY n DESC, k LIMIT 2",
    "topn_offset": "SELECT id, ts FROM a ORDER BY ts, id LIMIT 2 OFFSET 1",
    "expr": "SELECT id, id % 2 AS m, COALESCE(s, 'none') || '!' AS s2, "
            "CASE WHEN v > 1 THEN 'big' ELSE 'small' END AS sz, "
            "ts + INTERVAL '1' HOUR AS later FROM a WHERE k IS NOT NULL",
    "win": "SELECT id, k, row_number() OVER (PARTITION BY k ORDER BY v, id) AS rn, "
           "SUM(v) OVER (PARTITION BY k) AS kv FROM a",
    "in_sub": "SELECT id FROM a WHERE k IN (SELECT k FROM b WHERE w > 5)",
    "mvmv": "SELECT k, n * 2 AS n2, mx FROM agg_k WHERE n > 1",
    "mvmv_all": "SELECT SUM(n) AS total, MAX(mx) AS mx FROM agg_k",
}

# Views created again after some data has arrived (their snapshot is backfilled).
LATE = ["agg_k", "agg_all", "fj", "three", "self", "hop", "topn", "win", "un", "dis_b",
        "fj_views", "lj_agg"]
LATE_VIEWS = {f"late_{n}": VIEWS[n] for n in LATE}
LATE_VIEWS["late_mvmv"] = "SELECT k, n, sv FROM agg_k WHERE k IS NOT NULL"

BASE_TS = dt.datetime(2026, 4, 1, 9, 0, 0)


# ---- the model of the tables -----------------------------------------------------------------

@dataclass
class Model:
    """What the tables must contain: a by id, b as a list (duplicates allowed), c by k."""

    a: dict[int, list[Any]] = field(default_factory=dict)
    b: list[list[Any]] = field(default_factory=list)
    c: dict[int, list[Any]] = field(default_factory=dict)

    def insert(self, table: str, rows: list[list[Any]]) -> None:
        if table == "b":
            self.b.extend(list(r) for r in rows)
            return
        target = self.a if table == "a" else self.c
        for r in rows:
            target[r[0]] = list(r)

    def rows(self, table: str) -> list[list[Any]]:
        if table == "b":
            return self.b
        return list((self.a if table == "a" else self.c).values())

    def update(self, table: str, where: Callable[[list[Any]], bool],
               assign: Callable[[list[Any]], list[Any]]) -> None:
        for r in self.rows(table):
            if where(r):
                r[:] = assign(r)

    def delete(self, table: str, where: Callable[[list[Any]], bool]) -> None:
        if table == "b":
            self.b = [r for r in self.b if not where(r)]
            return
        target = self.a if table == "a" else self.c
        for key in [k for k, r in target.items() if where(r)]:
            del target[key]


# ---- steps -------------------------------------------------------------------------------------

class Step:
    """One DML step: SQL for the engine (or an Arrow insert) and its effect on the model."""

    def __init__(self, sql: str, apply: Callable[[Model], None],
                 arrow: tuple[str, pa.Table] | None = None) -> None:
        self.sql = sql
        self.apply = apply
        self.arrow = arrow

    def __repr__(self) -> str:  # what hypothesis prints for a failing example
        return f"Step({self.sql!r}{', via db.insert' if self.arrow else ''})"


def lit(value: Any) -> str:
    """A SQL literal."""
    if value is None:
        return "NULL"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, dt.datetime):
        return f"'{value.isoformat(sep=' ')}'"
    return repr(value)


def gt(a: Any, b: Any) -> bool:
    """SQL `a > b` under WHERE (NULL is not true)."""
    return a is not None and b is not None and a > b


ids = st.integers(1, 6)
keys = st.none() | st.integers(1, 4)
doubles = st.none() | st.sampled_from([-1.5, 0.0, 0.5, 2.0, 3.25])
strings = st.none() | st.sampled_from(["x", "y", "o'k"])
stamps = st.none() | st.integers(0, 300).map(lambda s: BASE_TS + dt.timedelta(seconds=s))
ws = st.none() | st.sampled_from([5, 10, 11, 20])
names = st.none() | st.sampled_from(["n1", "n2"])

A_TYPES = [pa.int32(), pa.int32(), pa.float64(), pa.string(), pa.timestamp("us")]
B_TYPES = [pa.int32(), pa.int32()]
C_TYPES = [pa.int32(), pa.string()]
COLUMNS = {"a": ["id", "k", "v", "s", "ts"], "b": ["k", "w"], "c": ["k", "name"]}
TYPES = {"a": A_TYPES, "b": B_TYPES, "c": C_TYPES}


@st.composite
def inserts(draw: st.DrawFn) -> Step:
    table = draw(st.sampled_from(["a", "a", "b", "b", "c"]))
    row = {"a": st.tuples(ids, keys, doubles, strings, stamps),
           "b": st.tuples(keys, ws),
           "c": st.tuples(st.integers(1, 4), names)}[table]
    rows = [list(r) for r in draw(st.lists(row, min_size=1, max_size=3))]
    cols = COLUMNS[table]
    order = draw(st.permutations(range(len(cols)))) if draw(st.booleans()) else None
    if order is None:
        sql = f"INSERT INTO {table} VALUES " + ", ".join(
            "(" + ", ".join(lit(v) for v in r) + ")" for r in rows)
    else:
        sql = (f"INSERT INTO {table} ({', '.join(cols[i] for i in order)}) VALUES "
               + ", ".join("(" + ", ".join(lit(r[i]) for i in order) + ")" for r in rows))
    arrow = None
    if draw(st.booleans()):
        arrays = [pa.array([r[i] for r in rows], t) for i, t in enumerate(TYPES[table])]
        arrow = (table, pa.table(arrays, names=cols))
    snapshot = [list(r) for r in rows]
    return Step(sql, lambda m: m.insert(table, [list(r) for r in snapshot]), arrow)


@st.composite
def insert_selects(draw: st.DrawFn) -> Step:
    where, pred = _a_where(draw)

    def apply(m: Model) -> None:
        m.insert("b", [[r[1], r[0]] for r in m.a.values() if pred(r)])
    return Step(f"INSERT INTO b SELECT k, id FROM a WHERE {where}", apply)


def _a_where(draw: st.DrawFn) -> tuple[str, Callable[[list[Any]], bool]]:
    kind = draw(st.sampled_from(["id", "k", "k_null", "v", "s"]))
    if kind == "id":
        i = draw(ids)
        return f"id = {i}", lambda r: r[0] == i
    if kind == "k":
        k = draw(st.integers(1, 4))
        return f"k = {k}", lambda r: r[1] == k
    if kind == "k_null":
        return "k IS NULL", lambda r: r[1] is None
    if kind == "v":
        x = draw(st.sampled_from([0.0, 1.0]))
        return f"v > {x}", lambda r: gt(r[2], x)
    s = draw(st.sampled_from(["x", "o'k"]))
    return f"s = {lit(s)}", lambda r: r[3] == s


def _b_where(draw: st.DrawFn) -> tuple[str, Callable[[list[Any]], bool]]:
    kind = draw(st.sampled_from(["k", "k_null", "w"]))
    if kind == "k":
        k = draw(st.integers(1, 4))
        return f"k = {k}", lambda r: r[0] == k
    if kind == "k_null":
        return "k IS NULL", lambda r: r[0] is None
    w = draw(st.sampled_from([5, 10]))
    return f"w > {w}", lambda r: gt(r[1], w)


def _set(row: list[Any], index: int, value: Any) -> list[Any]:
    out = list(row)
    out[index] = value
    return out


@st.composite
def updates(draw: st.DrawFn) -> Step:
    table = draw(st.sampled_from(["a", "a", "b", "c"]))
    if table == "a":
        where, pred = _a_where(draw)
        col = draw(st.sampled_from(["k", "v", "v+1", "v=id/2", "s", "ts"]))
        if col == "v+1":
            sql = f"UPDATE a SET v = v + 1 WHERE {where}"

            def bump(r: list[Any]) -> list[Any]:
                return _set(r, 2, None if r[2] is None else r[2] + 1)
            return Step(sql, lambda m: m.update("a", pred, bump))
        if col == "v=id/2":
            sql = f"UPDATE a SET v = id * 0.5, k = k + 1 WHERE {where}"

            def half(r: list[Any]) -> list[Any]:
                return _set(_set(r, 2, r[0] * 0.5), 1, None if r[1] is None else r[1] + 1)
            return Step(sql, lambda m: m.update("a", pred, half))
        index = COLUMNS["a"].index(col)
        value = draw({"k": keys, "v": doubles, "s": strings, "ts": stamps}[col])
        sql = f"UPDATE a SET {col} = {lit(value)} WHERE {where}"
        return Step(sql, lambda m: m.update("a", pred, lambda r: _set(r, index, value)))
    if table == "b":
        where, pred = _b_where(draw)
        col = draw(st.sampled_from(["k", "w"]))
        index = COLUMNS["b"].index(col)
        value = draw(keys if col == "k" else ws)
        sql = f"UPDATE b SET {col} = {lit(value)} WHERE {where}"
        return Step(sql, lambda m: m.update("b", pred, lambda r: _set(r, index, value)))
    k = draw(st.integers(1, 4))
    value = draw(names)
    sql = f"UPDATE c SET name = {lit(value)} WHERE k = {k}"
    return Step(sql, lambda m: m.update("c", lambda r: r[0] == k, lambda r: _set(r, 1, value)))


@st.composite
def deletes(draw: st.DrawFn) -> Step:
    table = draw(st.sampled_from(["a", "a", "b", "b", "c"]))
    if table == "a":
        where, pred = _a_where(draw)
    elif table == "b":
        where, pred = _b_where(draw)
    else:
        k = draw(st.integers(1, 4))
        where, pred = f"k = {k}", (lambda r: r[0] == k)
    return Step(f"DELETE FROM {table} WHERE {where}", lambda m: m.delete(table, pred))


FLUSH = Step("FLUSH", lambda m: None)
steps = st.one_of(inserts(), inserts(), insert_selects(), updates(), deletes(), st.just(FLUSH))


# ---- comparing -----------------------------------------------------------------------------

def norm_value(value: Any) -> Any:
    """Floats (and decimals) rounded to 6 significant digits; -0.0 is 0.0."""
    if isinstance(value, decimal.Decimal):
        value = float(value)
    if isinstance(value, float):
        return float(f"{value:.6g}") + 0.0
    return value


def multiset(rows: list[Row]) -> Counter[Row]:
    """Rows as a multiset with normalized values."""
    return Counter(tuple(norm_value(v) for v in r) for r in rows)


def show(rows: Counter[Row]) -> list[str]:
    """A multiset printed deterministically, for failure messages."""
    return sorted(f"{r!r} x{n}" if n > 1 else repr(r) for r, n in rows.items())


_TRANSLATED: dict[str, str] = {}


def translate(db: kernel_engine.Connection, query: str) -> str:
    """The view's query as DuckDB SQL (every example has the same schema, so it is cached)."""
    if query not in _TRANSLATED:
        _TRANSLATED[query] = translate_query(sqlglot.parse_one(query, read="risingwave"),
                                             db.catalog)
    return _TRANSLATED[query]


def expected_views(db: kernel_engine.Connection, views: dict[str, str]) -> dict[str, pa.Table]:
    """DuckDB's batch answer of every view's query over the tables' current contents."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    for table in TABLES:
        con.register(table, db.execute(f"SELECT * FROM {table}").arrow())
    out: dict[str, pa.Table] = {}
    for name, query in views.items():
        out[name] = con.sql(translate(db, query)).to_arrow_table()
        con.register(name, out[name])  # a view on this view reads its expected rows
    con.close()
    return out


def rows_of(table: pa.Table) -> list[Row]:
    """The rows of an Arrow table as tuples."""
    return [tuple(r.values()) for r in table.to_pylist()]


def check(db: kernel_engine.Connection, model: Model, views: dict[str, str], when: str) -> None:
    """Tables equal the model; every view equals its batch evaluation."""
    assert db.progress.errors == [], f"{when}: engine errors {db.progress.errors}"
    for table in TABLES:
        got = multiset(db.execute(f"SELECT * FROM {table}").fetchall())
        want = multiset([tuple(r) for r in model.rows(table)])
        assert got == want, f"{when}: table {table}\n got  {show(got)}\n want {show(want)}"
    expected = expected_views(db, views)
    for name in views:
        result = db.execute(f"SELECT * FROM {name}").arrow()
        assert result.column_names == expected[name].column_names, (
            f"{when}: view {name} columns {result.column_names} != "
            f"{expected[name].column_names}")
        got, want = multiset(rows_of(result)), multiset(rows_of(expected[name]))
        assert got == want, (f"{when}: view {name}: {views[name]}\n got  {show(got)}\n"
                             f" want {show(want)}")


# ---- the test ---------------------------------------------------------------------------------

def create_views(db: kernel_engine.Connection, views: dict[str, str]) -> None:
    """CREATE MATERIALIZED VIEW for each (name, query)."""
    for name, query in views.items():
        db.execute(f"CREATE MATERIALIZED VIEW {name} AS {query}")


def run_steps(db: kernel_engine.Connection, step_list: list[Step], late_at: int) -> None:
    """Apply the steps, checking after each FLUSH; create the late views at `late_at`."""
    model = Model()
    views = dict(VIEWS)
    for table in TABLES.values():
        db.execute(table)
    create_views(db, VIEWS)
    check(db, model, views, "before any data")
    for index, step in enumerate([*step_list, FLUSH]):
        if index == late_at:
            create_views(db, LATE_VIEWS)
            views.update(LATE_VIEWS)
            db.execute("FLUSH")
            check(db, model, views, f"after late views at step {index}")
        if step.arrow is not None:
            db.insert(*step.arrow)
        else:
            db.execute(step.sql)
        step.apply(model)
        if step is FLUSH:
            check(db, model, views, f"after step {index}")


@settings(max_examples=10, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(step_list=st.lists(steps, min_size=1, max_size=16), late_frac=st.floats(0, 1))
def test_views_match_batch_evaluation(step_list: list[Step], late_frac: float) -> None:
    db = kernel_engine.connect(barrier_interval_ms=50)
    try:
        run_steps(db, step_list, int(late_frac * len(step_list)))
    finally:
        db.close()
