"""Barrier alignment, written once for every operator with several inputs.

When the barrier of an epoch arrives on one input, that input is blocked:
its later change batches are held back until the same barrier has arrived on
every input. Only then does the operator finish the epoch, so its state
reflects a consistent cut of all inputs.
"""

from __future__ import annotations

import pyarrow as pa

from kernel_engine.errors import ExecutionError

__all__ = ["BarrierAligner"]


class BarrierAligner:
    """Tracks which inputs delivered the current barrier and buffers the rest."""

    def __init__(self, inputs: int) -> None:
        self.inputs = max(inputs, 1)
        self.arrived: set[int] = set()
        self.epoch: int | None = None
        self.held: list[tuple[int, pa.Table]] = []

    def blocked(self, port: int) -> bool:
        """True when `port` already delivered the barrier being aligned."""
        return port in self.arrived

    def hold(self, port: int, chunk: pa.Table) -> None:
        """Keep a batch that arrived after its input's barrier."""
        self.held.append((port, chunk))

    def arrive(self, port: int, epoch: int) -> bool:
        """Record a barrier on `port`; True when all inputs have delivered it."""
        if self.epoch is not None and epoch != self.epoch:
            raise ExecutionError(f"barrier for epoch {epoch} arrived while aligning epoch "
                                 f"{self.epoch}")
        if port in self.arrived:
            raise ExecutionError(f"second barrier for epoch {epoch} on input {port}")
        self.epoch = epoch
        self.arrived.add(port)
        return len(self.arrived) == self.inputs

    def release(self) -> list[tuple[int, pa.Table]]:
        """Finish alignment; return the held batches in arrival order."""
        held, self.held = self.held, []
        self.arrived = set()
        self.epoch = None
        return held
