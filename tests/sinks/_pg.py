"""Helpers for sink tests: target tables in the session's PostgreSQL and reading them back."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from rwmagic.services import PostgresServer

__all__ = ["jdbc_sink", "make_table", "normalized", "pg_rows", "wait_until"]


def make_table(pg: PostgresServer, columns: str, prefix: str = "t") -> str:
    """Create a target table with a fresh name; returns the name."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with pg.connect() as conn:
        conn.execute(f"CREATE TABLE {name} ({columns})")
    return name


def pg_rows(pg: PostgresServer, table: str, order: str = "1") -> list[tuple[Any, ...]]:
    """Every row of a target table, normalized (Decimal -> float)."""
    with pg.connect() as conn:
        return normalized(conn.execute(f"SELECT * FROM {table} ORDER BY {order}").fetchall())


def normalized(rows: list[Any]) -> list[tuple[Any, ...]]:
    """Rows with Decimals as rounded floats, so engine and PostgreSQL rows compare."""
    return [tuple(round(float(v), 6) if isinstance(v, (Decimal, float)) else v for v in r)
            for r in rows]


def jdbc_sink(pg: PostgresServer, name: str, source: str, table: str, kind: str = "upsert",
              pk: str | None = None, extra: str = "") -> str:
    """A CREATE SINK ... WITH (connector = 'jdbc', ...) statement."""
    key = f", primary_key = '{pk}'" if pk else ""
    return (f"CREATE SINK {name} FROM {source} WITH ({pg.sink_options(table)}, "
            f"type = '{kind}'{key}{extra})")


def wait_until(check: Callable[[], bool], timeout: float = 30.0, what: str = "") -> None:
    """Poll `check` until it holds; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what or check}")
