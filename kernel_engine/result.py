"""Query results with DB-API habits: fetchall, fetchone, description, df, arrow.

Rows come back as Python objects of the SQL type: an INTERVAL is a
`timedelta` (a month counts 30 days, as DuckDB and psycopg do) and a JSONB
value is parsed (dict, list, str, number, bool or None).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

import pyarrow as pa

__all__ = ["Result"]


class Result:
    """The result of the last statement of an `execute` call."""

    def __init__(self, table: pa.Table | None = None, status: str = "", *,
                 json_columns: Iterable[int] = ()) -> None:
        self._table = table
        self._pos = 0
        self.status = status
        self._json = frozenset(json_columns)
        self._cache: list[tuple[Any, ...]] | None = None

    @property
    def description(self) -> list[tuple[str, str, None, None, None, None, None]] | None:
        """One 7-tuple per column (name, type), as DB-API prescribes; None without rows."""
        if self._table is None:
            return None
        return [(f.name, str(f.type), None, None, None, None, None) for f in self._table.schema]

    @property
    def rowcount(self) -> int:
        """Number of rows, or -1 when the statement returns none."""
        return -1 if self._table is None else self._table.num_rows

    def _rows(self) -> list[tuple[Any, ...]]:
        if self._table is None:
            return []
        if self._cache is None:
            cols = [self._values(i, c) for i, c in enumerate(self._table.columns)]
            self._cache = list(zip(*cols, strict=True)) if cols else []
        return self._cache

    def _values(self, index: int, column: pa.ChunkedArray) -> list[Any]:
        values = column.to_pylist()
        if index in self._json:
            return [None if v is None else json.loads(v) for v in values]
        if pa.types.is_interval(column.type):
            return [None if v is None else _timedelta(v) for v in values]
        return values

    def fetchall(self) -> list[tuple[Any, ...]]:
        """Every remaining row as a tuple."""
        rows = self._rows()[self._pos:]
        self._pos += len(rows)
        return rows

    def fetchone(self) -> tuple[Any, ...] | None:
        """The next row, or None."""
        rows = self._rows()
        if self._pos >= len(rows):
            return None
        self._pos += 1
        return rows[self._pos - 1]

    def fetchmany(self, size: int = 1) -> list[tuple[Any, ...]]:
        """Up to `size` more rows."""
        rows = self._rows()[self._pos:self._pos + size]
        self._pos += len(rows)
        return rows

    def arrow(self) -> pa.Table:
        """The result as a pyarrow Table (empty when the statement returns no rows)."""
        return self._table if self._table is not None else pa.table({})

    def df(self) -> Any:
        """The result as a pandas DataFrame."""
        return self.arrow().to_pandas()

    def __repr__(self) -> str:
        if self._table is None:
            return f"<Result {self.status or 'OK'}>"
        return f"<Result {self._table.num_rows} rows: {', '.join(self._table.column_names)}>"


def _timedelta(value: Any) -> timedelta:
    """An Arrow MonthDayNano as a timedelta (a month is 30 days)."""
    return timedelta(days=value.months * 30 + value.days, microseconds=value.nanoseconds // 1000)
