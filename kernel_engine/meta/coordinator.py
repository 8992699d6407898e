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
from kernel_engine.errors import Error
from kernel_engine.meta.durability import Durability
from kernel_engine.state.checkpoint import Crashed
from kernel_engine.stream.graph import Graph
from kernel_engine.stream.message import Barrier
from kernel_engine.stream.operator import Operator

__all__ = ["Coordinator", "EngineCrashed", "Progress"]

# A round of processing waits up to COALESCE_S for more change batches while fewer than
# COALESCE_ROWS rows are waiting (see Coordinator._gather).
COALESCE_S = 0.02
COALESCE_ROWS = 200_000


class EngineCrashed(Error):
    """The engine died (a crash was injected); RECOVER or connect again."""

    def __init__(self) -> None:
        super().__init__("the engine has crashed: its in-memory state is gone; run RECOVER "
                         "(or kernel_engine.connect() to the same location) to recover")


@dataclass
class Progress:
    """What the engine has done, for monitors and widgets."""

    current_epoch: int = 1
    committed_epoch: int = 0
    checkpoint_epoch: int = 0
    durable_epoch: int = 0
    checkpoints: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=1000))
    barrier_latency_ms: deque[tuple[int, float]] = field(
        default_factory=lambda: deque(maxlen=1000))
    errors: list[str] = field(default_factory=list)
    # per sink: state, delivered_epoch, lag_epochs, pending_epochs, retries, rows, error
    sinks: dict[str, dict[str, Any]] = field(default_factory=dict)
    # connector offset read so far, per source or connector-fed table
    sources: dict[str, dict[str, Any]] = field(default_factory=dict)
    # failed checkpoint writes (each is retried with backoff), newest last
    checkpoint_errors: list[str] = field(default_factory=list)

    @property
    def durable_lag_epochs(self) -> int:
        """Checkpointed epochs not yet durable (their manifest has not landed)."""
        return max(0, self.checkpoint_epoch - self.durable_epoch)


@dataclass
class _Chunk:
    source: Operator
    table: pa.Table
    seq: int = 0


@dataclass
class _Command:
    fn: Callable[[], Any]
    future: Future[Any]
    barrier: bool
    fresh: bool = False


class Coordinator:
    """Owns the engine thread, the graph and the epoch clock."""

    def __init__(self, duck: Duck, graph: Graph, barrier_interval_ms: int = 1000,
                 durability: Durability | None = None,
                 ddl: Callable[[], list[str]] | None = None, first_epoch: int = 1) -> None:
        self.duck = duck
        self.graph = graph
        self.durability = durability
        self.ddl = ddl or (lambda: [])
        self.crashed = False
        self._kill = False
        self._inflight: list[Future[Any]] = []
        self.pollers: dict[str, Callable[[], bool]] = {}
        self.barrier_interval_ms = barrier_interval_ms
        self.checkpoint_frequency = 1
        self.sources: list[Operator] = []
        self.sinks: dict[str, Any] = {}  # sink name -> delivery runner (committed/durable/halt)
        self.progress = Progress(current_epoch=first_epoch, committed_epoch=first_epoch - 1,
                                 checkpoint_epoch=first_epoch - 1,
                                 durable_epoch=first_epoch - 1)
        if durability is not None:
            durability.writer.on_history = self._checkpoint_done
            self.progress.checkpoint_errors = durability.writer.lag_errors
        self._queue: queue.Queue[_Chunk | _Command | None] = queue.Queue()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="rwmagic-engine", daemon=True)
        self._started = threading.Event()
        self._thread.start()
        self._started.wait()

    # ---- API for other threads -------------------------------------------------------------

    def submit(self, source: Operator, table: pa.Table, seq: int = 0) -> None:
        """Queue a DML batch for a table source (`seq`: its position in the table's log)."""
        if self.crashed:
            raise EngineCrashed()
        self._queue.put(_Chunk(source, table, seq))

    def call(self, fn: Callable[[], Any], barrier: bool = False, fresh: bool = False) -> Any:
        """Run `fn` on the engine thread; with `barrier`, return after the next commit.

        With `fresh`, the current epoch is committed first, so `fn` can read the
        current state from a reader cursor: a query error there cannot abort the
        engine's transaction (and with it other statements' uncommitted rows).
        """
        if threading.current_thread() is self._thread:
            return fn()
        if self.crashed:
            raise EngineCrashed()
        fut: Future[Any] = Future()
        self._queue.put(_Command(fn, fut, barrier, fresh))
        while True:
            try:
                return fut.result(timeout=0.5)
            except TimeoutError:  # the engine may have died after the check, before the put
                if fut.done():
                    return fut.result()  # `fn` itself raised TimeoutError
                if self.crashed and not self._thread.is_alive():
                    raise EngineCrashed() from None

    def flush(self) -> int:
        """Return once everything queued before is visible; the committed epoch."""
        return int(self.call(lambda: self.progress.committed_epoch + 1, barrier=True))

    def stop(self) -> None:
        """Stop the engine thread (and let queued checkpoints finish)."""
        self._stop = True
        self._queue.put(None)
        self._thread.join(timeout=10)
        if self.durability is not None and not self.crashed:
            self.durability.writer.stop()

    def kill(self) -> None:
        """Die now, as the process would: nothing in memory survives."""
        self._kill = True
        self._queue.put(None)
        self._thread.join(timeout=10)

    def wait_crashed(self, timeout: float = 10.0) -> bool:
        """Wait until an armed crash point has fired."""
        self._thread.join(timeout=timeout)
        return self.crashed

    def crash_soon(self) -> None:
        """Die at the engine thread's next turn (a sink's delivery hit a crash point)."""
        self._kill = True
        self._queue.put(None)

    def _die(self) -> None:
        self.crashed = True
        for runner in list(self.sinks.values()):
            runner.halt()
        for fut in self._inflight:
            if not fut.done():
                fut.set_exception(EngineCrashed())
        if self.durability is not None:
            self.durability.writer.abandon()
        while True:
            try:
                msg = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(msg, _Command):
                msg.future.set_exception(EngineCrashed())

    # ---- the engine thread ---------------------------------------------------------------

    def _run(self) -> None:
        self.duck.begin()
        self._started.set()
        try:
            self._loop()
        except Crashed:
            pass
        if self._kill or self.crashed or self._writer_crashed():
            self._die()

    def _writer_crashed(self) -> bool:
        return self.durability is not None and self.durability.writer.crashed is not None

    def _loop(self) -> None:
        next_barrier = time.monotonic() + self.barrier_interval_ms / 1000
        busy = False  # a source filled its batch last round: poll again at once
        while not self._stop:
            if self._kill or self._writer_crashed():
                return
            timeout = 0.0 if busy else min(0.05, max(0.0, next_barrier - time.monotonic()))
            batch: list[_Chunk | _Command | None] = []
            try:
                batch.append(self._queue.get(timeout=timeout) if timeout else
                             self._queue.get_nowait())
                while True:
                    batch.append(self._queue.get_nowait())
            except queue.Empty:
                pass
            self._gather(batch, next_barrier)
            try:
                waiting = self._handle(batch)
                busy = self._poll()
            except Crashed:
                self.crashed = True
                raise
            if waiting or time.monotonic() >= next_barrier:
                self._barrier(waiting, force_checkpoint=bool(waiting))
                next_barrier = time.monotonic() + self.barrier_interval_ms / 1000

    def _gather(self, batch: list[_Chunk | _Command | None], next_barrier: float) -> None:
        """While only a few change batches are waiting, wait up to COALESCE_S for more, so
        that batches arriving one by one (each INSERT fsyncs its log entry first) are
        processed together: a round costs a fixed few ms of DuckDB calls over the state."""
        if not batch or not all(isinstance(m, _Chunk) for m in batch):
            return
        rows = sum(m.table.num_rows for m in batch if isinstance(m, _Chunk))
        deadline = min(time.monotonic() + COALESCE_S, next_barrier)
        while rows < COALESCE_ROWS:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            try:
                msg = self._queue.get(timeout=left)
            except queue.Empty:
                return
            batch.append(msg)
            if not isinstance(msg, _Chunk):
                return  # a statement waits: handle everything now
            rows += msg.table.num_rows

    def _handle(self, batch: list[_Chunk | _Command | None]) -> list[tuple[Future[Any], Any]]:
        waiting: list[tuple[Future[Any], Any]] = []
        pending: list[_Chunk] = []
        self._inflight += [m.future for m in batch if isinstance(m, _Command)]
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
                self._inflight = [f for f in self._inflight if not f.done()] + [msg.future]
                if msg.fresh:
                    self._barrier(waiting)
                    waiting = []
                try:
                    result = msg.fn()
                except Crashed:
                    raise
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
        if self.durability is not None:
            self.durability.crash_point("processing")
        try:
            self.graph.deliver(source, 0, table)
        except Exception as err:  # noqa: BLE001 - the engine keeps running
            self.progress.errors.append(f"{source.identity}: {err}")
        seq = max(c.seq for c in chunks)
        if self.durability is not None and seq:
            self.durability.processed(source.identity, seq)

    def _checkpoint_done(self, record: dict[str, Any]) -> None:
        """The writer made a checkpoint durable (writer thread)."""
        self.progress.durable_epoch = max(self.progress.durable_epoch, int(record["epoch"]))
        self.progress.checkpoints.append(record)
        for runner in list(self.sinks.values()):
            runner.durable(int(record["epoch"]))

    def _poll(self) -> bool:
        """Let every connector push what it has now; True if one had more than it took."""
        busy = False
        for name, poll in list(self.pollers.items()):
            try:
                busy = bool(poll()) or busy
            except Crashed:
                raise
            except Exception as err:  # noqa: BLE001 - a failing connector stops, others go on
                self.progress.errors.append(f"source {name}: {err}")
                self.pollers.pop(name, None)
        return busy

    def source_batch(self, source: Operator, chunk: pa.Table, offset: dict[str, Any]) -> None:
        """Push a connector's batch into its table and record the connector's offset."""
        if self.durability is not None:
            self.durability.crash_point("processing")
        self.graph.deliver(source, 0, chunk)
        self.progress.sources[source.identity] = offset
        if self.durability is not None:
            self.durability.read_offset("connector:" + source.identity, offset)

    def _barrier(self, waiting: list[tuple[Future[Any], Any]],
                 force_checkpoint: bool = False) -> None:
        epoch = self.progress.current_epoch
        checkpoint = force_checkpoint or epoch % max(self.checkpoint_frequency, 1) == 0
        barrier = Barrier(epoch, checkpoint=checkpoint)
        try:
            self.graph.inject(list(self.sources), barrier)
            job = None
            if checkpoint and self.durability is not None:
                job = self.durability.job(epoch, self.graph.operators, self.ddl())
                self.durability.crash_point("after_snapshot")
            self.duck.commit()
            if job is not None and self.durability is not None:
                self.durability.writer.submit(job)
                self.progress.checkpoint_epoch = epoch
        except Crashed:
            self.crashed = True
            raise
        except Exception as err:  # noqa: BLE001 - reported, engine keeps running
            self.progress.errors.append(f"epoch {epoch}: {err}")
            self.duck.rollback()
        self.progress.committed_epoch = epoch
        self.progress.current_epoch = epoch + 1
        for runner in list(self.sinks.values()):
            runner.committed(epoch)
        latency = (time.perf_counter() - barrier.injected_at) * 1000
        self.progress.barrier_latency_ms.append((epoch, latency))
        self.duck.begin()
        for fut, result in waiting:
            fut.set_result(result)
