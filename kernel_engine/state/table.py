"""A state table: a keyed relation that an operator changes only by applying deltas.

A delta is an Arrow table with the state table's columns plus a signed weight
column `_w` (+1 insert, -1 delete; an update is a delete and an insert). Rows
are unique on the key. Applying a delta consolidates it, deletes the keys it
retracts and inserts the rows it adds, all inside the epoch's transaction.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

from kernel_engine._duck import Duck

__all__ = ["UPSERT", "StateTable", "consolidate", "key_match", "mark_upsert", "quote"]

UPSERT = b"rw.upsert"


def mark_upsert(delta: pa.Table) -> pa.Table:
    """Mark a delta whose keys are unique per sign: each key ends as its +1 row, or absent.

    An aggregate's output (-old/+new per group) is such a delta; applying it needs
    no consolidation.
    """
    return delta.replace_schema_metadata({UPSERT: b"1"})


def quote(name: str) -> str:
    """Quote an identifier for DuckDB."""
    return '"' + name.replace('"', '""') + '"'


def key_match(left: str, right: str, key: Sequence[str]) -> str:
    """A join condition matching two relations on the key, NULLs equal."""
    if not key:
        return "TRUE"
    return " AND ".join(
        f"{left}.{quote(k)} IS NOT DISTINCT FROM {right}.{quote(k)}" for k in key
    )


def consolidate(duck: Duck, delta: pa.Table) -> pa.Table:
    """Sum the weights of identical rows and drop rows whose weight is zero."""
    cols = ", ".join(quote(c) for c in delta.column_names if c != "_w")
    return duck.arrow(
        f"SELECT {cols}, CAST(SUM(_w) AS BIGINT) AS _w FROM _d GROUP BY ALL "
        "HAVING SUM(_w) <> 0",
        _d=delta,
    )


class StateTable:
    """A keyed relation stored in the engine's DuckDB database."""

    def __init__(self, duck: Duck, name: str, columns: Sequence[tuple[str, str]],
                 key: Sequence[str]) -> None:
        self.duck = duck
        self.name = name
        self.columns = list(columns)
        self.key = list(key)
        self.rows_written = 0
        # False for a source's rows: a source stores nothing durable (its connector replays)
        self.persisted = True
        self._inserted: list[pa.Table] = []
        self._touched: list[pa.Table] = []
        cols = ", ".join(f"{quote(n)} {t}" for n, t in self.columns)
        duck.run(f"CREATE TABLE {quote(name)} ({cols})")

    @property
    def column_names(self) -> list[str]:
        """The names of the stored columns."""
        return [n for n, _ in self.columns]

    def apply(self, delta: pa.Table) -> None:
        """Apply a delta (columns of the table plus `_w`)."""
        if delta.num_rows == 0:
            return
        cols = ", ".join(quote(c) for c in self.column_names)
        target = quote(self.name)
        if delta.schema.metadata and delta.schema.metadata.get(UPSERT):
            self._upsert(delta)
            return
        if pc.min(delta["_w"]).as_py() > 0:
            self.duck.run(f"INSERT INTO {target} SELECT {cols} FROM _d", _d=delta)
            self.rows_written += delta.num_rows
            self._inserted.append(delta.select(self.column_names))
            return
        net = consolidate(self.duck, delta.select([*self.column_names, "_w"]))
        if net.num_rows == 0:
            return
        key_cols = ", ".join(quote(k) for k in self.key) or "1 AS _one"
        self.duck.run(
            f"DELETE FROM {target} USING (SELECT DISTINCT {key_cols} FROM _d WHERE _w < 0) d "
            f"WHERE {key_match(target, 'd', self.key)}",
            _d=net,
        )
        self.duck.run(f"INSERT INTO {target} SELECT {cols} FROM _d WHERE _w > 0", _d=net)
        self.rows_written += net.num_rows
        self._touched.append(net.select(self.key) if self.key else net.slice(0, 1).select([]))

    def _upsert(self, delta: pa.Table) -> None:
        target = quote(self.name)
        cols = ", ".join(quote(c) for c in self.column_names)
        key_cols = ", ".join(quote(k) for k in self.key) or "1 AS _one"
        self.duck.run(f"DELETE FROM {target} USING (SELECT DISTINCT {key_cols} FROM _d) d "
                      f"WHERE {key_match(target, 'd', self.key)}", _d=delta)
        self.duck.run(f"INSERT INTO {target} SELECT {cols} FROM _d WHERE _w > 0", _d=delta)
        self.rows_written += delta.num_rows
        self._touched.append(delta.select(self.key) if self.key else delta.slice(0, 1).select([]))

    def discard_changes(self) -> None:
        """Forget what changed since the last take_changes (for a table not checkpointed)."""
        self._inserted, self._touched = [], []

    def only_inserts(self) -> bool:
        """True when rows were inserted since the last take_changes and nothing else."""
        return bool(self._inserted) and not self._touched

    def take_changes(self) -> pa.Table | None:
        """What changed since the last call: the current row of every touched key, and a
        `_deleted` row (key only) for keys that are gone. None when nothing changed.

        A table without a key (one row, e.g. a global aggregate) returns its whole content.
        """
        inserted, touched = self._inserted, self._touched
        self._inserted, self._touched = [], []
        if not inserted and not touched:
            return None
        if not touched:
            rows = pa.concat_tables(inserted) if len(inserted) > 1 else inserted[0]
            return rows.append_column("_deleted", pa.repeat(pa.scalar(False), rows.num_rows))
        target = quote(self.name)
        cols = ", ".join(f"s.{quote(c)}" for c in self.column_names)
        if not self.key:
            return self.duck.arrow(f"SELECT {cols}, FALSE AS _deleted FROM {target} s")
        keys = pa.concat_tables([t.select(self.key) for t in inserted] + touched)
        key_cols = ", ".join(quote(k) for k in self.key)
        nulls = ", ".join(f"k.{quote(c)}" if c in self.key else
                          f"CAST(NULL AS {t}) AS {quote(c)}" for c, t in self.columns)
        return self.duck.arrow(
            f"WITH k AS (SELECT DISTINCT {key_cols} FROM _k) "
            f"SELECT {cols}, FALSE AS _deleted FROM {target} s "
            f"SEMI JOIN k ON {key_match('s', 'k', self.key)} UNION ALL "
            f"SELECT {nulls}, TRUE AS _deleted FROM k "
            f"ANTI JOIN {target} s ON {key_match('s', 'k', self.key)}", _k=keys)

    def restore(self, rows: pa.Table) -> None:
        """Replace the content with `rows` (after a recovery); forgets pending changes."""
        self.duck.run(f"DELETE FROM {quote(self.name)}")
        if rows.num_rows:
            cols = ", ".join(quote(c) for c in self.column_names)
            self.duck.run(f"INSERT INTO {quote(self.name)} SELECT {cols} FROM _r", _r=rows)
        self._inserted, self._touched = [], []

    def snapshot(self) -> pa.Table:
        """Every row, as an insert delta."""
        cols = ", ".join(quote(c) for c in self.column_names)
        return self.duck.arrow(f"SELECT {cols}, CAST(1 AS BIGINT) AS _w FROM {quote(self.name)}")

    def lookup(self, keys: pa.Table) -> pa.Table:
        """The stored rows whose key appears in `keys` (a table of key columns)."""
        cols = ", ".join(f"s.{quote(c)}" for c in self.column_names)
        return self.duck.arrow(
            f"SELECT {cols} FROM {quote(self.name)} s "
            f"SEMI JOIN _k ON {key_match('s', '_k', self.key)}",
            _k=keys,
        )

    def drop(self) -> None:
        """Remove the table."""
        self.duck.run(f"DROP TABLE IF EXISTS {quote(self.name)}")
