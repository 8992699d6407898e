"""The streaming runtime: messages, operators, barrier alignment and the graph."""

from __future__ import annotations

from kernel_engine.stream.align import BarrierAligner
from kernel_engine.stream.graph import Graph
from kernel_engine.stream.message import Barrier
from kernel_engine.stream.operator import Operator

__all__ = ["Barrier", "BarrierAligner", "Graph", "Operator"]
