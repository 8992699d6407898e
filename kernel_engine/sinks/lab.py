"""The crash lab's sink: an append-only Parquet file sink of the workload's first table.

Its target is compared with the table's expected rows like any relation: under
exactly_once it holds each row once; under at_least_once a recovery writes some rows
again (duplicates), under at_most_once it skips some (losses).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from kernel_engine.state.table import quote

__all__ = ["SINK_NAME", "add_lab_sink", "compare_lab_sink", "read_lab_sink"]

SINK_NAME = "crash_lab_sink"


def add_lab_sink(db: Any, folder: str, table: str) -> None:
    """Create the lab's file sink from `table` into `folder`."""
    path = folder.replace("'", "''")
    db.execute(f"CREATE SINK {SINK_NAME} FROM {quote(table)} WITH (connector = 'fs', "
               f"path = '{path}', type = 'append-only', force_append_only = 'true') "
               "FORMAT PLAIN ENCODE PARQUET")


def read_lab_sink(folder: str) -> list[tuple[Any, ...]]:
    """Every row of every file the sink wrote."""
    rows: list[tuple[Any, ...]] = []
    for path in sorted(Path(folder).glob("*.parquet")):
        rows += [tuple(r.values()) for r in pq.read_table(path).to_pylist()]
    return rows


def compare_lab_sink(expected: list[tuple[Any, ...]],
                     observed: list[tuple[Any, ...]]) -> tuple[int, int]:
    """(duplicated, lost) rows of the sink's target against the expected rows."""
    want, got = Counter(expected), Counter(observed)
    return sum((got - want).values()), sum((want - got).values())
