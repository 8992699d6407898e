"""Shared test helpers: a fake clock and the determinism checks every reader must pass."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterable

import pyarrow as pa

from kernel_engine.connectors import SourceReader

__all__ = ["FakeClock", "assert_deterministic", "drain"]


class FakeClock:
    """A clock the test moves by hand (or by `step` seconds at every reading)."""

    def __init__(self, now: float = 1000.0, step: float = 0.0) -> None:
        self.now = now
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def drain(reader: SourceReader, sizes: Iterable[int] = (65536,), limit: int = 10_000
          ) -> tuple[pa.Table, list[tuple[int, dict]]]:
    """Read until next_batch returns None; return the rows and (rows so far, offset) pairs."""
    batches: list[pa.Table] = []
    offsets: list[tuple[int, dict]] = [(0, reader.offset())]
    rows = 0
    for size in itertools.islice(itertools.cycle(sizes), limit):
        batch = reader.next_batch(size)
        if batch is None:
            break
        assert 0 < batch.num_rows <= size
        assert batch.schema.equals(reader.schema)
        batches.append(batch)
        rows += batch.num_rows
        offset = reader.offset()
        assert json.loads(json.dumps(offset)) == offset   # JSON-serialisable
        offsets.append((rows, offset))
    table = pa.concat_tables(batches) if batches else reader.schema.empty_table()
    return table.combine_chunks(), offsets


def assert_deterministic(make: Callable[[], SourceReader], every: int = 1,
                         sizes: Iterable[int] = (1, 7, 3, 50, 2)) -> pa.Table:
    """Chunked reads equal one read; seeking to every `every`-th offset replays the rest."""
    whole, _ = drain(make())
    chunked, offsets = drain(make(), sizes)
    assert chunked.equals(whole)
    for rows, offset in offsets[::every]:
        reader = make()
        reader.seek(json.loads(json.dumps(offset)))
        rest, _ = drain(reader, (4, 9))
        assert rest.equals(whole.slice(rows).combine_chunks()), f"after seek to {offset}"
        reader.close()
    return whole
