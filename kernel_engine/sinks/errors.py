"""Errors of sink delivery: retry (the target is unreachable) or stop (the data is refused)."""

from __future__ import annotations

from kernel_engine.errors import ExecutionError

__all__ = ["SinkDataError", "TransientSinkError"]


class TransientSinkError(ExecutionError):
    """The target cannot be reached right now (down, restarting, network): retry later."""


class SinkDataError(ExecutionError):
    """The target refused the data (constraint, type, missing table): the sink stops until
    ALTER SINK ... RESUME / CONNECTOR WITH (...) or DROP SINK."""

    def __init__(self, message: str, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient
