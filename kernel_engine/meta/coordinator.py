"""The coordinator: the engine thread, epochs and barriers.

Everything that changes state runs on one background thread: DML batches,
DDL commands and barriers. A barrier is injected into every source every
`barrier_interval_ms`; when it has passed every operator the epoch's DuckDB
transaction commits, so all its changes become visible to readers at once.
Batches queued for the same table are coalesced before they are processed.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from kernel_engine._duck import Duck
from kernel_engine.stream.graph import Graph
from kernel_engine.stream.message import Barrier
from kernel_engine.stream.operator import Operator

__all__ = ["Coordinator", "Progress"]


@dataclass
class Progress:
    """What the engine has done, for monitors and widgets."""

    current_epoch: int = 1
    committed_epoch: int = 0
    barrier_latency_ms: deque[tuple[int, float]] = field(
        default_factory=lambda: deque(maxlen=1000))
    errors: list[str] = field(default_factory=list)


@dataclass
class _Chunk:
    source: Operator
    table: pa.Table


@dataclass
class _Command:
    fn: Callable[[], Any]
    future: Future[Any]
    barrier: bool
    fresh: bool = False


class Coordinator:
    """Owns the engine thread, the graph and the epoch clock."""

    def __init__(self, duck: Duck, graph: Graph, barrier_interval_ms: int = 1000) -> None:
        self.duck = duck
        self.graph = graph
        self.barrier_interval_ms = barrier_interval_ms
        self.checkpoint_frequency = 1
        self.sources: list[Operator] = []
        self.progress = Progress()
        self._queue: queue.Queue[_Chunk | _Command | None] = queue.Queue()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="rwmagic-engine", daemon=True)
        self._started = threading.Event()
        self._thread.start()
        self._started.wait()

    # ---- API for other threads -------------------------------------------------------------

    def submit(self, source: Operator, table: pa.Table) -> None:
        """Queue a DML batch for a table source."""
        self._queue.put(_Chunk(source, table))

    def call(self, fn: Callable[[], Any], barrier: bool = False, fresh: bool = False) -> Any:
        """Run `fn` on the engine thread; with `barrier`, return after the next commit.

        With `fresh`, the current epoch is committed first, so `fn` can read the
        current state from a reader cursor: a query error there cannot abort the
        engine's transaction (and with it other statements' uncommitted rows).
        """
        if threading.current_thread() is self._thread:
            return fn()
        fut: Future[Any] = Future()
        self._queue.put(_Command(fn, fut, barrier, fresh))
        return fut.result()

    def flush(self) -> int:
        """Return once everything queued before is visible; the committed epoch."""
        return int(self.call(lambda: self.progress.committed_epoch + 1, barrier=True))

    def stop(self) -> None:
        """Stop the engine thread."""
        self._stop = True
        self._queue.put(None)
        self._thread.join(timeout=10)

    # ---- the engine thread ---------------------------------------------------------------

    def _run(self) -> None:
        self.duck.begin()
        self._started.set()
        next_barrier = time.monotonic() + self.barrier_interval_ms / 1000
        while not self._stop:
            timeout = max(0.0, next_barrier - time.monotonic())
            batch: list[_Chunk | _Command | None] = []
            try:
                batch.append(self._queue.get(timeout=timeout))
                while True:
                    batch.append(self._queue.get_nowait())
            except queue.Empty:
                pass
            waiting = self._handle(batch)
            if waiting or time.monotonic() >= next_barrier:
                self._barrier(waiting)
                next_barrier = time.monotonic() + self.barrier_interval_ms / 1000

    def _handle(self, batch: list[_Chunk | _Command | None]) -> list[tuple[Future[Any], Any]]:
        waiting: list[tuple[Future[Any], Any]] = []
        pending: list[_Chunk] = []
        for msg in batch:
            if isinstance(msg, _Chunk):
                if pending and pending[-1].source is not msg.source:
                    self._process(pending)
                    pending = []
                pending.append(msg)
                continue
            self._process(pending)
            pending = []
            if isinstance(msg, _Command):
                if msg.fresh:
                    self._barrier(waiting)
                    waiting = []
                try:
                    result = msg.fn()
                except BaseException as err:  # noqa: BLE001 - handed to the caller
                    msg.future.set_exception(err)
                    continue
                if msg.barrier:
                    waiting.append((msg.future, result))
                else:
                    msg.future.set_result(result)
        self._process(pending)
        return waiting

    def _process(self, chunks: list[_Chunk]) -> None:
        if not chunks:
            return
        source = chunks[0].source
        tables = [c.table for c in chunks]
        table = tables[0] if len(tables) == 1 else pa.concat_tables(tables)
        try:
            self.graph.deliver(source, 0, table)
        except Exception as err:  # noqa: BLE001 - the engine keeps running
            self.progress.errors.append(f"{source.identity}: {err}")

    def _barrier(self, waiting: list[tuple[Future[Any], Any]]) -> None:
        epoch = self.progress.current_epoch
        barrier = Barrier(epoch, checkpoint=epoch % max(self.checkpoint_frequency, 1) == 0)
        try:
            self.graph.inject(list(self.sources), barrier)
            self.duck.commit()
        except Exception as err:  # noqa: BLE001 - reported, engine keeps running
            self.progress.errors.append(f"epoch {epoch}: {err}")
            self.duck.rollback()
        self.progress.committed_epoch = epoch
        self.progress.current_epoch = epoch + 1
        latency = (time.perf_counter() - barrier.injected_at) * 1000
        self.progress.barrier_latency_ms.append((epoch, latency))
        self.duck.begin()
        for fut, result in waiting:
            fut.set_result(result)
