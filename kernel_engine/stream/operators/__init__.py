"""Streaming operators, one concept per module."""

from __future__ import annotations

from kernel_engine.stream.operators.agg import HashAgg
from kernel_engine.stream.operators.basic import (
    Filter,
    HopExpand,
    Materialize,
    Project,
    Scan,
    TableSource,
    Union,
)
from kernel_engine.stream.operators.join import HashJoin
from kernel_engine.stream.operators.topn import Recompute, TopN

__all__ = ["Filter", "HashAgg", "HashJoin", "HopExpand", "Materialize", "Project", "Recompute",
           "Scan", "TableSource", "TopN", "Union"]
