"""Time travel: `SELECT ... FROM x FOR SYSTEM_TIME AS OF <time | EPOCH n>`.

The relation is read from the newest retained checkpoint at or before the
given time (or epoch): its state table's files are folded into the rows it had
then, registered under a fresh name, and the query reads them instead.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pyarrow as pa
from sqlglot import exp

from kernel_engine._duck import Duck
from kernel_engine.errors import BindError, CatalogError, UnsupportedError
from kernel_engine.sql.plan import Catalog
from kernel_engine.state.checkpoint import (
    Manifest,
    fold,
    list_manifests,
    load_manifest,
    read_table_files,
)
from kernel_engine.state.storage import Storage

__all__ = ["EPOCH_FORM", "resolve_time_travel"]

EPOCH_FORM = re.compile(r"\bFOR\s+SYSTEM_TIME\s+AS\s+OF\s+EPOCH\s+(\d+)", re.I)
_EPOCH_MARK = "__epoch__:"


def rewrite_epoch_form(sql: str) -> str:
    """`AS OF EPOCH n` (our extension) into a literal the parser accepts."""
    return EPOCH_FORM.sub(lambda m: f"FOR SYSTEM_TIME AS OF '{_EPOCH_MARK}{m.group(1)}'", sql)


def _target(version: exp.Expr, reader: Duck) -> tuple[str, Any]:
    """('epoch', n) or ('time', unix seconds) of a FOR SYSTEM_TIME AS OF clause."""
    value = version.args.get("expression")
    if isinstance(value, exp.Literal) and value.is_string and value.this.startswith(_EPOCH_MARK):
        return "epoch", int(value.this[len(_EPOCH_MARK):])
    if isinstance(value, exp.Literal) and not value.is_string:
        return "time", float(value.this)
    assert value is not None
    result = reader.arrow(f"SELECT {value.sql('duckdb')} AS t").column(0)[0].as_py()
    if isinstance(result, dt.datetime):
        if result.tzinfo is None:
            result = result.replace(tzinfo=dt.UTC)
        return "time", result.timestamp()
    if isinstance(result, (int, float)):
        return "time", float(result)
    raise BindError(f"FOR SYSTEM_TIME AS OF needs a timestamp, unix seconds or EPOCH n, "
                    f"not {value.sql('postgres')}")


def _pick(storage: Storage, kind: str, target: Any) -> Manifest:
    manifests = [m for m in (load_manifest(storage, e, verify=False)
                             for e in list_manifests(storage)) if m is not None]
    if kind == "epoch":
        fitting = [m for m in manifests if m.epoch <= target]
        want = f"epoch {target}"
    else:
        fitting = [m for m in manifests if m.created <= target]
        want = dt.datetime.fromtimestamp(target, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    if not fitting:
        oldest = (f"; the oldest retained checkpoint is epoch {manifests[0].epoch} at "
                  f"{dt.datetime.fromtimestamp(manifests[0].created, dt.UTC):%Y-%m-%d %H:%M:%S} "
                  "UTC" if manifests else "; there is no checkpoint yet")
        raise BindError(f"time travel to {want} is beyond the retained checkpoints{oldest} "
                        "(raise checkpoint_retention to keep more)")
    return fitting[-1]


def resolve_time_travel(query: exp.Query, storage: Storage | None, catalog: Catalog,
                        reader: Duck, state_name: Any
                        ) -> tuple[exp.Query, dict[str, pa.Table], dict[str, dict[str, str]]]:
    """Replace every `x FOR SYSTEM_TIME AS OF ...` by a snapshot of x at that checkpoint."""
    tables: dict[str, pa.Table] = {}
    schemas: dict[str, dict[str, str]] = {}
    versioned = [t for t in query.find_all(exp.Table) if t.args.get("version") is not None]
    if not versioned:
        return query, tables, schemas
    if storage is None:
        raise UnsupportedError("time travel reads retained checkpoints; connect to a "
                               "checkpoint location (kernel_engine.connect('folder/'))")
    query = query.copy()
    for i, table in enumerate(t for t in query.find_all(exp.Table)
                              if t.args.get("version") is not None):
        name = table.name.lower()
        info = catalog.relation(name)
        if info is None:
            raise CatalogError(f'table or materialized view "{name}" does not exist')
        kind, target = _target(table.args["version"], reader)
        manifest = _pick(storage, kind, target)
        state = state_name(name)
        entry = manifest.tables.get(state)
        if entry is None:
            raise BindError(f"{name} did not exist at checkpoint {manifest.epoch}")
        rows = fold(reader, read_table_files(storage, entry["files"]), entry["key"])
        visible = [(c, t) for c, t, hidden in info.columns if not hidden]
        if rows.num_rows == 0 and not rows.column_names:
            rows = reader.arrow("SELECT " + ", ".join(f'CAST(NULL AS {t}) AS "{c}"'
                                                      for c, t in visible) + " LIMIT 0")
        alias = f"_tt{i}"
        tables[alias] = rows.select([c for c, _ in visible])
        schemas[alias] = dict(visible)
        table.replace(exp.to_table(alias).as_(table.alias or name))
    return query, tables, schemas
