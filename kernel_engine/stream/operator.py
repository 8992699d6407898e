"""The operator base: one required hook, optional hooks with no-op defaults."""

from __future__ import annotations

import pyarrow as pa

from kernel_engine._duck import Duck
from kernel_engine.state.table import StateTable
from kernel_engine.stream.align import BarrierAligner

__all__ = ["Operator"]


class Operator:
    """A streaming operator: change batches in, change batches out."""

    kind = "Operator"

    def __init__(self, duck: Duck, identity: str, inputs: int = 1) -> None:
        self.duck = duck
        self.identity = identity
        self.outputs: list[tuple[Operator, int]] = []
        self.aligner = BarrierAligner(inputs)
        self.n_inputs = inputs
        self.rows_in = 0
        self.rows_out = 0

    def process(self, chunk: pa.Table, port: int) -> pa.Table | None:
        """Handle a change batch from input `port`; return the output changes."""
        raise NotImplementedError

    def on_barrier(self, epoch: int) -> pa.Table | None:
        """The epoch ended on every input: emit what was held back, if anything."""
        return None

    def initial(self) -> pa.Table | None:
        """Rows the operator emits before any input (a global aggregate's one row)."""
        return None

    def state_tables(self) -> list[StateTable]:
        """The state tables this operator owns."""
        return []

    def drop(self) -> None:
        """Release the operator's state."""
        for table in self.state_tables():
            table.drop()
