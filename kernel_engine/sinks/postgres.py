"""The PostgreSQL target: validated at CREATE SINK, written one transaction per delivery.

A delivery applies one or more sealed epochs in a single transaction that also upserts the
sink's row in the progress table (`rwmagic_sink_progress`: sink id, epoch) of the target
schema, so the target itself records which epochs it has: after any crash the sink reads
that row and skips what is already there.

- upsert: rows are COPied (CSV, written by Arrow) into a session temp table with the
  target's column types, then `DELETE ... USING` for deleted keys and
  `INSERT ... SELECT ... ON CONFLICT (pk) DO UPDATE` for the rest;
- append-only: COPY straight into the target.

All SQL is built with psycopg's `sql` module (identifiers quoted, values as parameters).
Connection trouble is a `TransientSinkError` (the sink retries); anything the data or the
target's definition causes (a constraint, a type, a dropped table) is a `SinkDataError`
naming the epoch and, where PostgreSQL tells, the row.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from psycopg import sql

from kernel_engine._duck import Duck
from kernel_engine.errors import BindError, CatalogError
from kernel_engine.sinks.errors import SinkDataError, TransientSinkError
from kernel_engine.sinks.log import OP, Entry
from kernel_engine.sinks.spec import SinkSpec
from kernel_engine.sql.redact import redact_text
from kernel_engine.state.table import quote

__all__ = ["PROGRESS_TABLE", "PostgresTarget"]

PROGRESS_TABLE = "rwmagic_sink_progress"
CONNECT_TIMEOUT_S = 5
_LINE = re.compile(r"\bline (\d+)")

# DuckDB type (prefix) -> PostgreSQL types (pg_type.typname) that accept its values
_INTS = {"int2", "int4", "int8", "numeric", "float4", "float8"}
_FLOATS = {"float4", "float8", "numeric"}
_TEXT = {"text", "varchar", "bpchar", "name", "json", "jsonb", "uuid", "citext"}
_COMPATIBLE: dict[str, set[str]] = {
    "BOOLEAN": {"bool"}, "BOOL": {"bool"},
    "TINYINT": _INTS, "SMALLINT": _INTS, "INTEGER": _INTS, "INT": _INTS, "BIGINT": _INTS,
    "HUGEINT": {"int8", "numeric"}, "UTINYINT": _INTS, "USMALLINT": _INTS,
    "UINTEGER": _INTS, "UBIGINT": {"int8", "numeric"},
    "DECIMAL": _FLOATS, "NUMERIC": _FLOATS, "FLOAT": _FLOATS, "DOUBLE": _FLOATS,
    "REAL": _FLOATS, "DOUBLE PRECISION": _FLOATS,
    "VARCHAR": _TEXT, "TEXT": _TEXT, "STRING": _TEXT,
    "TIMESTAMP WITH TIME ZONE": {"timestamptz", "timestamp"},
    "TIMESTAMPTZ": {"timestamptz", "timestamp"},
    "TIMESTAMP": {"timestamp", "timestamptz"},
    "DATE": {"date", "timestamp", "timestamptz"},
    "TIME": {"time", "timetz"},
    "INTERVAL": {"interval"},
    "BLOB": {"bytea"}, "BYTEA": {"bytea"},
    "JSON": {"json", "jsonb", "text"},
    "UUID": {"uuid", "text", "varchar"},
}


def compatible(duck_type: str, pg_type: str) -> bool:
    """Whether values of a DuckDB type can be written to a PostgreSQL column type."""
    typ = duck_type.upper().strip()
    if typ.endswith("[]"):
        return pg_type.startswith("_")
    if typ.startswith(("STRUCT", "MAP")):
        return pg_type in ("json", "jsonb", "text")
    allowed = _COMPATIBLE.get(typ.split("(")[0].strip())
    return allowed is None or pg_type in allowed  # a type we do not know: PostgreSQL says


class PostgresTarget:
    """Writes a sink's epochs to one PostgreSQL table."""

    def __init__(self, spec: SinkSpec, columns: list[tuple[str, str]]) -> None:
        assert spec.pg is not None
        self.spec = spec
        self.pg = spec.pg
        self.columns = columns
        self.names = [c for c, _ in columns]
        self.conn: psycopg.Connection[Any] | None = None
        self._duck: Duck | None = None
        self._stage_ready = False

    # ---- connections ---------------------------------------------------------------------

    def _connect(self) -> psycopg.Connection[Any]:
        try:
            return psycopg.connect(**self.pg.conninfo(), connect_timeout=CONNECT_TIMEOUT_S,
                                   application_name=f"rwmagic sink {self.spec.name}")
        except psycopg.Error as err:
            raise TransientSinkError(self._clean(err)) from None

    def _clean(self, err: BaseException) -> str:
        """An error message with secrets masked and PostgreSQL's detail/context kept."""
        text = str(err).strip()
        diag = getattr(err, "diag", None)
        if diag is not None and diag.message_detail and diag.message_detail not in text:
            text += f" ({diag.message_detail})"
        return redact_text(text, self.spec.secrets)

    def open(self) -> None:
        """Connect (again); TransientSinkError when the server cannot be reached."""
        self.close()
        self.conn = self._connect()
        self._stage_ready = False
        try:
            self._ensure_progress_table(self.conn)
            self.conn.commit()
        except psycopg.Error as err:
            self._raise(err, None, None)

    def close(self) -> None:
        """Drop the connection (an open transaction is rolled back by the server)."""
        conn, self.conn = self.conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - closing a broken connection
                pass

    # ---- CREATE SINK -----------------------------------------------------------------------

    def check(self) -> None:
        """Validate the target before anything is written: it exists, has the sink's columns
        with compatible types, and a unique key on primary_key for upsert."""
        try:
            conn = psycopg.connect(**self.pg.conninfo(), connect_timeout=CONNECT_TIMEOUT_S,
                                   autocommit=True)
        except psycopg.Error as err:
            raise CatalogError(f"sink {self.spec.name}: cannot connect to "
                               f"{self.pg.describe()}: {self._clean(err)}") from None
        try:
            with conn:
                self._check_columns(conn)
                if self.spec.upsert:
                    self._check_key(conn)
                self._ensure_progress_table(conn)
        except psycopg.Error as err:
            raise CatalogError(f"sink {self.spec.name}: {self._clean(err)}") from None

    def _target_columns(self, conn: psycopg.Connection[Any]) -> list[tuple[str, str, str, bool,
                                                                         bool]]:
        rows = conn.execute(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod), t.typname, a.attnotnull, "
            "a.atthasdef OR a.attidentity <> '' FROM pg_attribute a "
            "JOIN pg_class c ON a.attrelid = c.oid "
            "JOIN pg_namespace n ON c.relnamespace = n.oid JOIN pg_type t ON a.atttypid = t.oid "
            "WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped "
            "AND c.relkind IN ('r', 'p') ORDER BY a.attnum",
            (self.pg.schema, self.pg.table)).fetchall()
        return [(r[0], r[1], r[2], bool(r[3]), bool(r[4])) for r in rows]

    def _check_columns(self, conn: psycopg.Connection[Any]) -> None:
        target = self._target_columns(conn)
        where = f"{self.pg.schema}.{self.pg.table} in database {self.pg.database}"
        if not target:
            raise CatalogError(f"sink {self.spec.name}: target table {where} does not exist; "
                               "create it first (a sink does not create tables)")
        by_name = {name: (shown, typ, notnull, default)
                   for name, shown, typ, notnull, default in target}
        for name, duck_type in self.columns:
            if name not in by_name:
                raise CatalogError(f"sink {self.spec.name}: column \"{name}\" is not in target "
                                   f"table {where} (it has {', '.join(by_name)})")
            shown, typ, _, _ = by_name[name]
            if not compatible(duck_type, typ):
                raise BindError(f"sink {self.spec.name}: column \"{name}\" is {duck_type} but "
                                f"target column {self.pg.table}.{name} is {shown}")
        for name, (_, _, notnull, default) in by_name.items():
            if name not in self.names and notnull and not default:
                raise CatalogError(f"sink {self.spec.name}: target column {self.pg.table}.{name} "
                                   "is NOT NULL without a default, and the sink has no such "
                                   "column")

    def _check_key(self, conn: psycopg.Connection[Any]) -> None:
        missing = [k for k in self.spec.primary_key if k not in self.names]
        if missing:
            raise BindError(f"sink {self.spec.name}: primary_key column \"{missing[0]}\" is not "
                            f"a column of the sink ({', '.join(self.names)})")
        rows = conn.execute(
            "SELECT array_agg(a.attname::text) FROM pg_index i JOIN pg_attribute a "
            "ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
            "WHERE i.indrelid = to_regclass(format('%%I.%%I', %s::text, %s::text)) "
            "AND i.indisunique AND i.indpred IS NULL GROUP BY i.indexrelid",
            (self.pg.schema, self.pg.table)).fetchall()
        if not any(set(r[0]) == set(self.spec.primary_key) for r in rows):
            raise CatalogError(
                f"sink {self.spec.name}: an upsert sink needs a primary key or unique index on "
                f"({', '.join(self.spec.primary_key)}) in target table {self.pg.schema}."
                f"{self.pg.table}")

    def _ensure_progress_table(self, conn: psycopg.Connection[Any]) -> None:
        try:
            conn.execute(sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (sink_id text PRIMARY KEY, epoch bigint NOT NULL, "
                "updated_at timestamptz NOT NULL DEFAULT now())").format(self._progress()))
        except psycopg.errors.UniqueViolation:  # two sinks created it at the same moment
            conn.rollback()

    def _progress(self) -> sql.Composed:
        return sql.SQL("{}.{}").format(sql.Identifier(self.pg.schema),
                                       sql.Identifier(PROGRESS_TABLE))

    def _target(self) -> sql.Composed:
        return sql.SQL("{}.{}").format(sql.Identifier(self.pg.schema),
                                       sql.Identifier(self.pg.table))

    # ---- delivery ------------------------------------------------------------------------

    def applied_epoch(self) -> int:
        """The last epoch the target committed for this sink (0 if none)."""
        assert self.conn is not None
        try:
            row = self.conn.execute(sql.SQL("SELECT epoch FROM {} WHERE sink_id = %s").format(
                self._progress()), (self.spec.sink_id,)).fetchone()
            self.conn.commit()
        except psycopg.Error as err:
            self._raise(err, None, None)
        return int(row[0]) if row else 0

    def forget(self) -> None:
        """Remove this sink's progress row (DROP SINK); best effort."""
        try:
            with psycopg.connect(**self.pg.conninfo(), connect_timeout=CONNECT_TIMEOUT_S,
                                 autocommit=True) as conn:
                conn.execute(sql.SQL("DELETE FROM {} WHERE sink_id = %s").format(
                    self._progress()), (self.spec.sink_id,))
        except psycopg.Error:
            pass

    def apply(self, entries: list[Entry], record: bool,
              point: Callable[[str], None]) -> int:
        """Write `entries` (and, with `record`, the progress row) in one transaction.

        `point(name)` is called before the transaction, after the writes (mid-transaction)
        and right before COMMIT ("commit"); it may raise to abandon the delivery.
        Returns the number of rows written.
        """
        assert self.conn is not None
        epochs = f"epoch {entries[0].epoch}" if len(entries) == 1 else (
            f"epochs {entries[0].epoch}..{entries[-1].epoch}")
        rows = self._combine(entries)
        point("sink_before_txn")
        conn = self.conn
        try:
            if self.spec.upsert:
                self._upsert(conn, rows, epochs)
            else:
                self._copy(conn, self._target(), rows.drop_columns([OP]), epochs)
            if record:
                conn.execute(sql.SQL(
                    "INSERT INTO {} (sink_id, epoch) VALUES (%s, %s) ON CONFLICT (sink_id) "
                    "DO UPDATE SET epoch = EXCLUDED.epoch, updated_at = now()").format(
                        self._progress()), (self.spec.sink_id, entries[-1].epoch))
            point("sink_mid_txn")
            point("commit")
            conn.commit()
        except psycopg.Error as err:
            self._raise(err, epochs, None)
        except BaseException:
            self.close()  # a crash: the server rolls the open transaction back
            raise
        return rows.num_rows

    def _combine(self, entries: list[Entry]) -> pa.Table:
        if len(entries) == 1:
            return entries[0].rows
        tables = [e.rows for e in entries]
        if not self.spec.upsert:
            return pa.concat_tables(tables)
        tagged = pa.concat_tables([t.append_column("_ord", pa.repeat(pa.scalar(i, pa.int64()),
                                                                      t.num_rows))
                                   for i, t in enumerate(tables)])
        keys = ", ".join(quote(k) for k in self.spec.primary_key)
        return self._converter().arrow(
            f"SELECT * EXCLUDE (_ord, _rn) FROM (SELECT *, row_number() OVER (PARTITION BY "
            f"{keys} ORDER BY _ord DESC) AS _rn FROM _t) WHERE _rn = 1", _t=tagged
        ).cast(tables[0].schema)

    def _upsert(self, conn: psycopg.Connection[Any], rows: pa.Table, epochs: str) -> None:
        stage = sql.Identifier(f"_rwmagic_stage_{self.spec.sink_id}")
        if not self._stage_ready:
            conn.execute(sql.SQL("CREATE TEMP TABLE IF NOT EXISTS {} ON COMMIT DELETE ROWS AS "
                                 "SELECT {}, 1::smallint AS _rw_op FROM {} WITH NO DATA").format(
                stage, sql.SQL(", ").join(map(sql.Identifier, self.names)), self._target()))
            self._stage_ready = True
        self._copy(conn, stage, rows.rename_columns([*self.names, "_rw_op"]), epochs)
        ops = rows[OP]
        deletes = pc.sum(pc.equal(ops, -1)).as_py() or 0
        if deletes:
            pk = sql.SQL(" AND ").join(
                sql.SQL("t.{} = s.{}").format(sql.Identifier(k), sql.Identifier(k))
                for k in self.spec.primary_key)
            conn.execute(sql.SQL("DELETE FROM {} t USING {} s WHERE s._rw_op = -1 AND {}"
                                 ).format(self._target(), stage, pk))
        if deletes == rows.num_rows:
            return
        cols = sql.SQL(", ").join(map(sql.Identifier, self.names))
        others = [c for c in self.names if c not in self.spec.primary_key]
        action = sql.SQL("DO NOTHING") if not others else sql.SQL("DO UPDATE SET {}").format(
            sql.SQL(", ").join(sql.SQL("{} = EXCLUDED.{}").format(sql.Identifier(c),
                                                                  sql.Identifier(c))
                               for c in others))
        conn.execute(sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {} WHERE _rw_op = 1 "
                             "ON CONFLICT ({}) {}").format(
            self._target(), cols, cols, stage,
            sql.SQL(", ").join(map(sql.Identifier, self.spec.primary_key)), action))

    def _copy(self, conn: psycopg.Connection[Any], table: sql.Composable, rows: pa.Table,
              epochs: str) -> None:
        cols = sql.SQL(", ").join(map(sql.Identifier, rows.column_names))
        data = self._csv(rows)
        try:
            with conn.cursor() as cur, cur.copy(sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)"
                                                        ).format(table, cols)) as copy:
                view = memoryview(data)
                for start in range(0, len(view), 1 << 20):
                    copy.write(view[start:start + (1 << 20)])
        except psycopg.Error as err:
            self._raise(err, epochs, rows)

    def _csv(self, rows: pa.Table) -> bytes:
        rows = self._text_forms(rows)
        out = io.BytesIO()
        pacsv.write_csv(rows, out, pacsv.WriteOptions(include_header=False))
        return out.getvalue()

    def _converter(self) -> Duck:
        if self._duck is None:
            self._duck = Duck()
        return self._duck

    def _text_forms(self, rows: pa.Table) -> pa.Table:
        """Columns the CSV writer cannot write, in PostgreSQL's text forms (DuckDB)."""
        odd = {f.name: f.type for f in rows.schema
               if pa.types.is_interval(f.type) or pa.types.is_list(f.type)
               or pa.types.is_large_list(f.type) or pa.types.is_struct(f.type)
               or pa.types.is_map(f.type) or pa.types.is_binary(f.type)
               or pa.types.is_large_binary(f.type)}
        if not odd:
            return rows
        items = []
        for name in rows.column_names:
            col = quote(name)
            typ = odd.get(name)
            if typ is None:
                items.append(col)
            elif pa.types.is_binary(typ) or pa.types.is_large_binary(typ):
                items.append(f"'\\x' || hex({col}) AS {col}")
            elif pa.types.is_list(typ) or pa.types.is_large_list(typ):
                element = ("CASE WHEN x IS NULL THEN 'NULL' ELSE '\"' || replace(replace("
                           "CAST(x AS VARCHAR), '\\', '\\\\'), '\"', '\\\"') || '\"' END")
                items.append(f"'{{' || array_to_string(list_transform({col}, lambda x: "
                             f"{element}), ',') || '}}' AS {col}")
            elif pa.types.is_interval(typ):
                items.append(f"CAST({col} AS VARCHAR) AS {col}")
            else:
                items.append(f"CAST(to_json({col}) AS VARCHAR) AS {col}")
        return self._converter().arrow(f"SELECT {', '.join(items)} FROM _r", _r=rows)

    def _raise(self, err: psycopg.Error, epochs: str | None, rows: pa.Table | None) -> None:
        """Classify a psycopg error: connection trouble retries, the rest stops the sink."""
        message = self._clean(err)
        if isinstance(err, (psycopg.OperationalError, psycopg.InterfaceError)) and not isinstance(
                err, psycopg.errors.QueryCanceled) or self.conn is None or self.conn.closed:
            self.close()
            raise TransientSinkError(message) from None
        if isinstance(err, (psycopg.errors.SerializationFailure,
                            psycopg.errors.DeadlockDetected)):
            self.close()
            raise TransientSinkError(message) from None
        self._stage_ready = False  # created in the transaction being rolled back
        try:
            self.conn.rollback()
        except psycopg.Error:
            self.close()
        row = self._failing_row(err, rows)
        where = f"{epochs}: " if epochs else ""
        raise SinkDataError(f"sink {self.spec.name} stopped at {where}{message}{row}",
                            transient=False) from None

    def _failing_row(self, err: psycopg.Error, rows: pa.Table | None) -> str:
        context = getattr(getattr(err, "diag", None), "context", None) or ""
        m = _LINE.search(context)
        if rows is None or m is None:
            return ""
        line = int(m.group(1))
        if not 1 <= line <= rows.num_rows:
            return ""
        values = rows.slice(line - 1, 1).drop_columns(
            [c for c in (OP, "_rw_op") if c in rows.column_names]).to_pylist()[0]
        shown = ", ".join(f"{k}={v!r}" for k, v in values.items())
        return redact_text(f"; row: ({shown})", self.spec.secrets)
