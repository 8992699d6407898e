"""Operator state: keyed state tables that change only through deltas."""

from __future__ import annotations

from kernel_engine.state.table import StateTable

__all__ = ["StateTable"]
