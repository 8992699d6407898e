"""The graph runtime: pushes change batches and barriers through operators.

Batches are delivered depth-first along the edges. A barrier is injected
into every source; each operator aligns it across its inputs, finishes the
epoch (`on_barrier`), forwards the barrier, then replays batches it held.
"""

from __future__ import annotations

import pyarrow as pa

from kernel_engine.stream.message import Barrier
from kernel_engine.stream.operator import Operator

__all__ = ["Graph"]


class Graph:
    """Operators and their edges."""

    def __init__(self) -> None:
        self.operators: list[Operator] = []

    def add(self, op: Operator) -> Operator:
        """Register an operator."""
        self.operators.append(op)
        return op

    def remove(self, ops: list[Operator]) -> None:
        """Detach operators (and every edge into them)."""
        gone = {id(o) for o in ops}
        self.operators = [o for o in self.operators if id(o) not in gone]
        for o in self.operators:
            o.outputs = [(t, p) for t, p in o.outputs if id(t) not in gone]

    def push(self, op: Operator, chunk: pa.Table | None) -> None:
        """Send `op`'s output batch to everything downstream."""
        if chunk is None or chunk.num_rows == 0:
            return
        op.rows_out += chunk.num_rows
        for target, port in op.outputs:
            self.deliver(target, port, chunk)

    def deliver(self, target: Operator, port: int, chunk: pa.Table) -> None:
        """Give one batch to one operator input."""
        if target.aligner.blocked(port):
            target.aligner.hold(port, chunk)
            return
        target.rows_in += chunk.num_rows
        self.push(target, target.process(chunk, port))

    def barrier(self, target: Operator, port: int, barrier: Barrier) -> None:
        """Deliver a barrier on one input; finish the epoch once all inputs have it."""
        if not target.aligner.arrive(port, barrier.epoch):
            return
        self.push(target, target.on_barrier(barrier.epoch))
        for child, child_port in target.outputs:
            self.barrier(child, child_port, barrier)
        for held_port, chunk in target.aligner.release():
            self.deliver(target, held_port, chunk)

    def inject(self, sources: list[Operator], barrier: Barrier) -> None:
        """Inject a barrier into every source.

        If finishing the epoch fails, every aligner is reset before the error
        propagates (the caller rolls the epoch back), so the next barrier starts
        a fresh alignment instead of clashing with the abandoned one.
        """
        try:
            for source in sources:
                self.barrier(source, 0, barrier)
        except Exception:
            for op in self.operators:
                op.aligner.release()
            raise
