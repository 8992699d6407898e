"""Messages between operators.

Data moves as change batches: Arrow tables whose last column `_w` is a signed
weight (+1 Insert, -1 Delete; an update is a -1/+1 pair). Barriers travel
in-band with them and cut the stream into epochs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import pyarrow as pa

__all__ = ["WEIGHT", "Barrier", "empty_like", "with_weight"]

WEIGHT = "_w"


@dataclass(frozen=True)
class Barrier:
    """Marks the end of `epoch`; `checkpoint` says whether state is made durable."""

    epoch: int
    checkpoint: bool = True
    injected_at: float = field(default_factory=time.perf_counter)


def with_weight(table: pa.Table, weight: int) -> pa.Table:
    """Append a constant weight column."""
    return table.append_column(WEIGHT, pa.repeat(pa.scalar(weight, pa.int64()), table.num_rows))


def empty_like(schema: pa.Schema) -> pa.Table:
    """An empty change batch of the given schema."""
    return schema.empty_table()
