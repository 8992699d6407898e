"""Epochs and the barrier coordinator: the engine thread."""

from __future__ import annotations

from kernel_engine.meta.coordinator import Coordinator, Progress

__all__ = ["Coordinator", "Progress"]
