"""Hash aggregation with retractions.

COUNT, SUM and AVG keep additive accumulators per group (a delete subtracts).
MIN, MAX and DISTINCT aggregates keep a per-group multiset of values, so
deleting the current minimum finds the next one. Each batch: aggregate the
batch per group, combine with the stored accumulators, emit -old/+new output
rows for the touched groups, and write the new accumulators back.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from kernel_engine._duck import Duck
from kernel_engine.sql.nodes import AggCall
from kernel_engine.state.table import StateTable, key_match, mark_upsert, quote
from kernel_engine.stream.message import WEIGHT
from kernel_engine.stream.operator import Operator

__all__ = ["HashAgg"]

_MULTISET = {"min", "max"}


def _needs_multiset(call: AggCall) -> bool:
    return call.func in _MULTISET or call.distinct


def _acc_type(call: AggCall) -> str:
    if call.func == "avg":
        return "INTERVAL" if call.out_type == "INTERVAL" else "DOUBLE"
    return call.out_type


def _sum(expr: str, typ: str) -> str:
    """SUM(expr); DuckDB has no SUM(INTERVAL), so intervals are summed by component."""
    if typ != "INTERVAL":
        return f"SUM({expr})"
    months = f"SUM(datepart('year', {expr}) * 12 + datepart('month', {expr}))"
    days = f"SUM(datepart('day', {expr}))"
    micros = (f"SUM(datepart('hour', {expr}) * 3600000000 + datepart('minute', {expr}) "
              f"* 60000000 + datepart('microseconds', {expr}))")
    return (f"(to_months(CAST({months} AS INTEGER)) + to_days(CAST({days} AS INTEGER)) "
            f"+ to_microseconds(CAST({micros} AS BIGINT)))")


class HashAgg(Operator):
    """GROUP BY (or global, with an empty group) aggregation."""

    kind = "StreamHashAgg"

    def __init__(self, duck: Duck, identity: str, group: list[str],
                 input_types: dict[str, str], calls: list[AggCall]) -> None:
        super().__init__(duck, identity)
        group_types = [input_types[g] for g in group]
        self.group = group
        self.calls = calls
        self.global_agg = not group
        gcols = list(zip(group, group_types, strict=True))
        state_cols = [*gcols, ("_cnt", "BIGINT")]
        for i, c in enumerate(calls):
            if _needs_multiset(c):
                state_cols.append((f"o{i}", c.out_type))
            elif c.func in ("count", "count_star"):
                state_cols.append((f"s{i}", "BIGINT"))
            else:
                state_cols += [(f"s{i}", _acc_type(c)), (f"n{i}", "BIGINT")]
        self.state = StateTable(duck, f"__agg_{identity}", state_cols, group)
        self.multisets: dict[int, StateTable] = {}
        for i, c in enumerate(calls):
            if _needs_multiset(c):
                arg_type = input_types[c.arg or ""]
                self.multisets[i] = StateTable(duck, f"__agg_{identity}_m{i}",
                                               [*gcols, ("v", arg_type), ("c", "BIGINT")],
                                               [*group, "v"])
        self._partial_sql = self._build_partial()

    def state_tables(self) -> list[StateTable]:
        return [self.state, *self.multisets.values()]

    # ---- SQL ---------------------------------------------------------------------------

    def _cond(self, call: AggCall, with_arg: bool) -> str:
        parts = []
        if with_arg and call.arg is not None:
            parts.append(f"{quote(call.arg)} IS NOT NULL")
        if call.filter is not None:
            parts.append(f"{quote(call.filter)}")
        return " AND ".join(parts) or "TRUE"

    def _build_partial(self) -> str:
        g = ", ".join(quote(c) for c in self.group)
        items = [*(quote(c) for c in self.group), "CAST(SUM(_w) AS BIGINT) AS _cnt"]
        for i, c in enumerate(self.calls):
            if _needs_multiset(c):
                continue
            cond = self._cond(c, with_arg=True)
            counted = f"CAST(SUM(CASE WHEN {cond} THEN _w ELSE 0 END) AS BIGINT)"
            if c.func in ("count", "count_star"):
                items.append(f"{counted} AS s{i}")
            else:
                value = (f"CASE WHEN {cond} THEN CAST({quote(c.arg or '')} AS {_acc_type(c)}) "
                         "* _w END")
                items.append(f"{_sum(value, _acc_type(c))} AS s{i}")
                items.append(f"{counted} AS n{i}")
        group_by = f" GROUP BY {g}" if self.group else ""
        return f"SELECT {', '.join(items)} FROM _in{group_by}"

    def _final(self, i: int, call: AggCall, prefix: str) -> str:
        if _needs_multiset(call):
            value = f"{prefix}o{i}"
            return f"COALESCE({value}, 0)" if call.func == "count" else value
        if call.func in ("count", "count_star"):
            return f"COALESCE({prefix}s{i}, 0)"
        if call.func == "sum":
            return f"CASE WHEN {prefix}n{i} > 0 THEN CAST({prefix}s{i} AS {call.out_type}) END"
        return f"CASE WHEN {prefix}n{i} > 0 THEN {prefix}s{i} / {prefix}n{i} END"

    def _multiset_value(self, i: int, call: AggCall) -> str:
        func = {"count": "COUNT", "sum": "SUM", "avg": "AVG", "min": "MIN", "max": "MAX"}[
            call.func]
        expr = _sum("v", call.out_type) if call.func == "sum" else f"{func}(v)"
        if call.func == "sum":
            expr = f"CAST({expr} AS {call.out_type})"
        return expr

    # ---- processing ----------------------------------------------------------------------

    def initial(self) -> pa.Table | None:
        if not self.global_agg:
            return None
        row = self.duck.arrow(
            "SELECT " + ", ".join(
                ["CAST(0 AS BIGINT) AS _cnt"] + [self._zero(i, c) for i, c in
                                                  enumerate(self.calls)]))
        self.state.apply(row.append_column(WEIGHT, pa.array([1], pa.int64())))
        return self._emit_rows(row, "", 1)

    def _zero(self, i: int, call: AggCall) -> str:
        if _needs_multiset(call):
            return f"CAST(NULL AS {call.out_type}) AS o{i}"
        if call.func in ("count", "count_star"):
            return f"CAST(0 AS BIGINT) AS s{i}"
        return f"CAST(NULL AS {_acc_type(call)}) AS s{i}, CAST(0 AS BIGINT) AS n{i}"

    def _emit_rows(self, table: pa.Table, prefix: str, weight: int) -> pa.Table:
        outs = [f"{quote(prefix + g)} AS {quote(g)}" for g in self.group]
        outs += [f"{self._final(i, c, prefix)} AS {quote(c.out)}"
                 for i, c in enumerate(self.calls)]
        return self.duck.arrow(f"SELECT {', '.join(outs)}, CAST({weight} AS BIGINT) AS _w "
                               "FROM _r", _r=table)

    def process(self, chunk: pa.Table, port: int) -> pa.Table | None:
        partial = self.duck.arrow(self._partial_sql, _in=chunk)
        values = self._update_multisets(chunk, partial)
        combined = self._combine(partial, values)
        old_mask = pc.is_valid(combined["o__cnt"])
        if not self.global_agg:
            old_mask = pc.and_(old_mask, pc.greater(pc.fill_null(combined["o__cnt"], 0), 0))
        old = self._emit_rows(combined.filter(old_mask), "o_", -1)
        new_mask = (pc.greater(combined["n__cnt"], 0) if not self.global_agg
                    else pc.is_valid(combined["n__cnt"]))
        new = self._emit_rows(combined.filter(new_mask), "n_", 1)
        self._write_state(combined)
        return mark_upsert(pa.concat_tables([old, new]))

    def _update_multisets(self, chunk: pa.Table, partial: pa.Table) -> dict[int, pa.Table]:
        values: dict[int, pa.Table] = {}
        g = [quote(c) for c in self.group]
        for i, table in self.multisets.items():
            call = self.calls[i]
            cond = self._cond(call, with_arg=True)
            arg = quote(call.arg or "")
            delta = self.duck.arrow(
                f"SELECT {', '.join([*g, f'{arg} AS v'])}, CAST(SUM(_w) AS BIGINT) AS c "
                f"FROM _in WHERE {cond} GROUP BY ALL", _in=chunk)
            if delta.num_rows:
                keys = [*self.group, "v"]
                merged = self.duck.arrow(
                    f"SELECT {', '.join([f'd.{quote(k)}' for k in keys])}, "
                    f"COALESCE(m.c, 0) + d.c AS c FROM _d d LEFT JOIN {quote(table.name)} m "
                    f"ON {key_match('d', 'm', keys)}", _d=delta)
                old = self.duck.arrow(
                    f"SELECT m.*, CAST(-1 AS BIGINT) AS _w FROM {quote(table.name)} m "
                    f"SEMI JOIN _d d ON {key_match('m', 'd', keys)}", _d=delta)
                ins = merged.filter(pc.not_equal(merged["c"], 0))
                ins = ins.append_column(WEIGHT, pa.repeat(pa.scalar(1, pa.int64()), ins.num_rows))
                table.apply(mark_upsert(pa.concat_tables([old, ins.cast(old.schema)])))
            group_by = f" GROUP BY {', '.join(g)}" if g else ""
            sel = ", ".join([*g, f"{self._multiset_value(i, call)} AS o{i}"])
            match = (f" SEMI JOIN _p ON {key_match(quote(table.name), '_p', self.group)}"
                     if self.group else "")
            values[i] = self.duck.arrow(
                f"SELECT {sel} FROM {quote(table.name)}{match}{group_by}", _p=partial)
        return values

    def _combine(self, partial: pa.Table, values: dict[int, pa.Table]) -> pa.Table:
        state = quote(self.state.name)
        items = [f"p.{quote(c)} AS {quote('o_' + c)}" for c in self.group]
        items += [f"p.{quote(c)} AS {quote('n_' + c)}" for c in self.group]
        items += ["s._cnt AS o__cnt", "COALESCE(s._cnt, 0) + p._cnt AS n__cnt"]
        joins = []
        tables: dict[str, pa.Table] = {"_p": partial}
        for i, c in enumerate(self.calls):
            if _needs_multiset(c):
                items.append(f"s.o{i} AS o_o{i}")
                items.append(f"v{i}.o{i} AS n_o{i}")
                tables[f"_v{i}"] = values[i]
                joins.append(f"LEFT JOIN _v{i} v{i} ON {key_match('p', f'v{i}', self.group)}")
            elif c.func in ("count", "count_star"):
                items += [f"s.s{i} AS o_s{i}", f"COALESCE(s.s{i}, 0) + p.s{i} AS n_s{i}"]
            else:
                items += [f"s.s{i} AS o_s{i}", f"s.n{i} AS o_n{i}",
                          f"CASE WHEN s.s{i} IS NULL THEN p.s{i} WHEN p.s{i} IS NULL THEN s.s{i} "
                          f"ELSE s.s{i} + p.s{i} END AS n_s{i}",
                          f"COALESCE(s.n{i}, 0) + p.n{i} AS n_n{i}"]
        sql = (f"SELECT {', '.join(items)} FROM _p p LEFT JOIN {state} s "
               f"ON {key_match('p', 's', self.group)} {' '.join(joins)}")
        return self.duck.arrow(sql, **tables)

    def _write_state(self, combined: pa.Table) -> None:
        names = self.state.column_names
        old_cols = [combined["o_" + c] for c in names]
        old = pa.table(old_cols, names=names).filter(pc.is_valid(combined["o__cnt"]))
        keep = (pc.not_equal(combined["n__cnt"], 0) if not self.global_agg
                else pc.is_valid(combined["n__cnt"]))
        new = pa.table([combined["n_" + c] for c in names], names=names).filter(keep)
        old = old.append_column(WEIGHT, pa.repeat(pa.scalar(-1, pa.int64()), old.num_rows))
        new = new.append_column(WEIGHT, pa.repeat(pa.scalar(1, pa.int64()), new.num_rows))
        self.state.apply(mark_upsert(pa.concat_tables([old, new.cast(old.schema)])))
