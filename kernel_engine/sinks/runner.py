"""The delivery thread of one sink: sealed epochs to the target, per delivery guarantee.

- exactly_once (with checkpoint storage): an epoch is delivered only once the checkpoint
  holding it is durable, in one target transaction that also records the epoch; on every
  (re)connection the target's recorded epoch is read back and everything up to it skipped.
- at_least_once: epochs are delivered as soon as they commit, with no progress record: a
  recovery delivers again what the restored sink log still holds (duplicates).
- at_most_once: delivered as soon as they commit; a recovery drops what the restored sink
  log holds (losses).
- without checkpoint storage, epochs are delivered when they commit.

Connection trouble is retried with exponential backoff (the lag is reported); data the
target refuses stops the sink with an error until ALTER SINK resolves it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from kernel_engine.meta.durability import SINK_CRASH_POINTS
from kernel_engine.sinks.errors import SinkDataError, TransientSinkError
from kernel_engine.sinks.log import Entry
from kernel_engine.sinks.operator import SinkOperator
from kernel_engine.sinks.spec import SinkSpec
from kernel_engine.sql.redact import redact_text
from kernel_engine.state.checkpoint import Crashed

__all__ = ["SINK_CRASH_POINTS", "SinkRunner", "Target"]

MAX_BACKOFF_S = 5.0
MAX_ROWS_PER_TXN = 2_000_000


class Target(Protocol):
    """What a sink writes to (PostgreSQL, files)."""

    def check(self) -> None:
        """Validate at CREATE SINK."""

    def open(self) -> None:
        """Connect (again)."""

    def close(self) -> None:
        """Disconnect."""

    def applied_epoch(self) -> int:
        """The newest epoch the target holds for this sink."""

    def forget(self) -> None:
        """Remove the sink's progress record (DROP SINK)."""

    def apply(self, entries: list[Entry], record: bool, point: Callable[[str], None]) -> int:
        """Write entries (with the progress record when `record`); rows written."""


class SinkRunner:
    """Delivers a sink's sealed epochs to its target on a background thread."""

    def __init__(self, spec: SinkSpec, target: Target, op: SinkOperator,
                 guarantee: Callable[[], str], checkpointed: bool,
                 crash_point: Callable[[str], None], on_crash: Callable[[], None],
                 status: dict[str, dict[str, Any]], errors: list[str]) -> None:
        self.spec = spec
        self.target = target
        self.op = op
        self.log = op.log
        self.guarantee = guarantee
        self.checkpointed = checkpointed
        self.crash_point = crash_point
        self.on_crash = on_crash
        self._status = status
        self._errors = errors
        self.done = 0
        self.committed_epoch = 0
        self.durable_epoch = 0
        self.state = "created"
        self.error: str | None = None
        self.retries = 0
        self.rows = 0
        self.deliveries = 0
        self.apply_seconds = 0.0  # time spent in target transactions
        self.restored = False
        self.display_sql = ""  # SHOW CREATE SINK (secrets masked)
        self.statement: Any = None  # the CREATE SINK statement (for ALTER SINK)
        self._cond = threading.Condition()
        self._stop = False
        self._forget = False
        self._ready = False
        self._single = False  # deliver one epoch per transaction (to find a failing one)
        self._thread: threading.Thread | None = None

    # ---- lifecycle (engine or user thread) ---------------------------------------------------

    def start(self, done: int, committed: int, durable: int, restored: bool) -> None:
        """Begin delivering after epoch `done` (a restored sink asks its target first)."""
        self.done, self.committed_epoch, self.durable_epoch = done, committed, durable
        self.restored = restored
        self.state = "running"
        self._report()
        self._thread = threading.Thread(target=self._run, name=f"rwmagic-sink-{self.spec.name}",
                                        daemon=True)
        self._thread.start()

    def committed(self, epoch: int) -> None:
        """An epoch committed (engine thread)."""
        with self._cond:
            self.committed_epoch = max(self.committed_epoch, epoch)
            self._cond.notify_all()
        self._report()

    def durable(self, epoch: int) -> None:
        """A checkpoint became durable (writer thread)."""
        with self._cond:
            self.durable_epoch = max(self.durable_epoch, epoch)
            self._cond.notify_all()

    def halt(self) -> None:
        """Stop delivering now (the engine died); does not wait."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()

    def abandon(self) -> None:
        """Stop and wait: once this returns the target gets nothing more from this runner."""
        self.halt()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=30)
        self.target.close()

    def close(self, forget: bool = False) -> None:
        """Stop (DROP SINK: with `forget`, the target's progress record is removed too)."""
        self._forget = self._forget or forget
        self.halt()
        if self._thread is None or not self._thread.is_alive():
            self._finish()
        self._status.pop(self.spec.name, None)

    def resume(self, target: Target | None = None) -> None:
        """Retry after an error (ALTER SINK), optionally with a new target."""
        with self._cond:
            if target is not None:
                self.target.close()
                self.target = target
                self._ready = False
            self.error = None
            self.state = "running"
            self._cond.notify_all()
        self._report()

    def wait_delivered(self, epoch: int, timeout: float) -> bool:
        """Wait until epochs up to `epoch` are delivered; False at once if the sink is not
        healthy (retrying, stopped on an error) or after `timeout`."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self.done < epoch:
                left = deadline - time.monotonic()
                if left <= 0 or self._stop or self.state != "running":
                    return False
                self._cond.wait(min(left, 0.5))
        return True

    # ---- the delivery thread -------------------------------------------------------------

    def _through(self) -> int:
        if self.guarantee() == "exactly_once" and self.checkpointed:
            return self.durable_epoch
        return self.committed_epoch

    def _run(self) -> None:
        backoff = 0.1
        try:
            while True:
                with self._cond:
                    while not self._stop and (self.state == "error" or
                                              self._through() <= self.done):
                        self._cond.wait(0.5)
                    if self._stop:
                        return
                try:
                    self._step()
                    backoff = 0.1
                except TransientSinkError as err:
                    self._retry_later(err, backoff)
                    backoff = min(backoff * 2, MAX_BACKOFF_S)
                except SinkDataError as err:
                    self._fail(err.message)
                except Crashed:
                    raise
                except Exception as err:  # noqa: BLE001 - stop this sink, say why; ALTER resumes
                    self._ready = False
                    self.target.close()
                    self._fail(f"sink {self.spec.name} stopped at epoch {self.done + 1}: "
                               f"{type(err).__name__}: {err}")
        except Crashed as err:
            if str(err) != "abandoned":
                self.state = "crashed"
                self.on_crash()
        finally:
            if self._stop:
                self._finish()

    def _finish(self) -> None:
        if self._forget:
            self._forget = False
            self.target.forget()
        self.target.close()

    def _step(self) -> None:
        through = self._through()
        if not self.log.pending(self.done, through):  # only empty epochs: nothing to send
            self._advance(through)
            return
        if not self._ready:
            self.target.open()
            self._sync()
            self._ready = True
        entries = self._batch(self.log.pending(self.done, through))
        if not entries:
            self._advance(through)
            return
        problem = next((e for e in entries if e.problem), None)
        if problem is not None:
            entries = [e for e in entries if e.epoch < problem.epoch]
            if not entries:
                raise SinkDataError(f"sink {self.spec.name} stopped at epoch {problem.epoch}: "
                                    f"{problem.problem}")
        record = self.guarantee() == "exactly_once"
        one = entries if len(entries) == 1 or not self._single else entries[:1]
        started = time.perf_counter()
        try:
            rows = self.target.apply(one, record, self._point)
        except SinkDataError:
            if len(one) > 1:  # find the epoch that fails: one epoch per transaction for now
                self._single = True
                return
            raise
        self._single = False
        self._point("sink_after_commit")
        self.apply_seconds += time.perf_counter() - started
        self.rows += rows
        self.deliveries += 1
        self._advance(one[-1].epoch)

    def _batch(self, entries: list[Entry]) -> list[Entry]:
        out: list[Entry] = []
        rows = 0
        for e in entries:
            if out and rows + e.rows.num_rows > MAX_ROWS_PER_TXN:
                break
            out.append(e)
            rows += e.rows.num_rows
        return out

    def _sync(self) -> None:
        """After (re)connecting: skip what the target already holds (or, restored under
        at_most_once, what the restored log held)."""
        mode = self.guarantee()
        if mode == "exactly_once":
            applied = self.target.applied_epoch()
            if applied > self.done:
                self._advance(applied)
        elif self.restored and mode == "at_most_once":
            self._advance(max(self.done, self.log.restored_through))
        self.restored = False

    def _advance(self, epoch: int) -> None:
        with self._cond:
            if epoch > self.done:
                self.done = epoch
                self.op.delivered_epoch = epoch
            self.state = "running" if self.state != "error" else self.state
            self._cond.notify_all()
        self.log.truncate(self.done)
        self._report()

    def _point(self, name: str) -> None:
        if self._stop:
            raise Crashed("abandoned")
        if name != "commit":
            self.crash_point(name)

    def _retry_later(self, err: TransientSinkError, delay: float) -> None:
        self._ready = False
        self.target.close()
        self.retries += 1
        with self._cond:
            self.state = "retrying"
            self.error = redact_text(err.message, self.spec.secrets)
            self._cond.notify_all()
        self._report()
        with self._cond:
            self._cond.wait_for(lambda: self._stop, timeout=delay)

    def _fail(self, message: str) -> None:
        message = redact_text(message, self.spec.secrets)
        with self._cond:
            self.state = "error"
            self.error = message
            self._cond.notify_all()
        self._errors.append(message)
        self._report()

    # ---- reporting -------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """State, delivered epoch, lag and counters (no secrets)."""
        pending = self.log.count(self.done)
        return {"state": self.state, "type": self.spec.type, "target": self.spec.target(),
                "delivered_epoch": self.done,
                "lag_epochs": max(0, self.committed_epoch - self.done),
                "pending_epochs": pending, "retries": self.retries, "rows": self.rows,
                "deliveries": self.deliveries, "apply_seconds": round(self.apply_seconds, 4),
                "error": self.error}

    def _report(self) -> None:
        if not self._stop or self.state == "crashed":
            self._status[self.spec.name] = self.status()
