"""Sinks: deliver a relation's changes to PostgreSQL or to files, per delivery guarantee.

`CREATE SINK ... WITH (connector = 'jdbc' | 'postgres' | 'fs' | 's3', ...)` builds a sink
operator at the end of the relation's stream. At each barrier it seals the epoch's changes
(collapsed per key for upsert) into the sink log, which is checkpointed with the engine's
state; a delivery thread writes sealed epochs to the target once their checkpoint is
durable, in one transaction per delivery together with the sink's progress record, so a
recovery neither loses nor repeats an epoch. See `runner` for the delivery guarantees.
"""

from __future__ import annotations

from kernel_engine.sinks.errors import SinkDataError, TransientSinkError
from kernel_engine.sinks.log import SinkLog
from kernel_engine.sinks.operator import SinkOperator
from kernel_engine.sinks.runner import SinkRunner
from kernel_engine.sinks.spec import SinkSpec

__all__ = ["SinkDataError", "SinkLog", "SinkOperator", "SinkRunner", "SinkSpec",
           "TransientSinkError"]
