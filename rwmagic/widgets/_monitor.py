"""`monitor()`: the engine's epochs, checkpoints, sources and sinks, live.

Shows the current, committed, checkpoint and durable epoch; charts of barrier
latency, checkpoint duration and bytes written per checkpoint over the last
epochs; per-source offsets and lag; per-sink pending epochs (when the engine
reports sinks); the last errors.
"""

from __future__ import annotations

import json
from collections.abc import Hashable
from typing import Any

import ipywidgets as widgets
import traitlets

from rwmagic.widgets._chart import Series, chart
from rwmagic.widgets._common import (
    LiveWidget,
    esc,
    fmt_bytes,
    html_table,
    refresher,
    resolve,
)

__all__ = ["EpochMonitor", "monitor"]

HISTORY = 120  # points per chart
SINK_COLUMNS = ("state", "delivered_epoch", "pending_epochs", "lag_epochs", "rows", "retries",
                "error")  # shown first, in this order, when a sink reports them


def _listed(seq: Any) -> list[Any]:
    """A copy of a deque another thread appends to."""
    for _ in range(5):
        try:
            return list(seq)
        except RuntimeError:  # mutated during iteration
            continue
    return []


def _compact(value: Any) -> str:
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True, default=str)[:80]
    return "—" if value is None else str(value)


class EpochMonitor(LiveWidget, widgets.VBox):
    """Epoch counters, checkpoint charts, source offsets and sink progress of one engine."""

    current_epoch = traitlets.Int(0, help="The epoch the engine is processing.")
    committed_epoch = traitlets.Int(0, help="The newest epoch visible to queries.")
    checkpoint_epoch = traitlets.Int(0, help="The newest epoch snapshotted for a checkpoint.")
    durable_epoch = traitlets.Int(0, help="The newest epoch whose checkpoint is durable.")
    refreshes = traitlets.Int(0, help="How many times the monitor re-rendered.")

    def __init__(self, db: Any) -> None:
        self.db = db
        self.counters = widgets.HTML()
        self.chart = widgets.HTML()
        self.sources = widgets.HTML()
        self.sinks = widgets.HTML()
        self.errors = widgets.HTML()
        super().__init__([self.counters, self.chart, self.sources, self.sinks, self.errors])
        self.add_class("rw-monitor")
        self._start_live()
        self.refresh(force=True)
        refresher().add(self)

    # ---- the Live protocol ---------------------------------------------------------------

    def change_token(self) -> Hashable:
        """Epochs, counts of checkpoints and errors, and the engine incarnation."""
        p = self.db.progress
        return (id(self.db.coordinator), p.current_epoch, p.committed_epoch, p.checkpoint_epoch,
                p.durable_epoch, len(p.checkpoints), len(p.errors), self.db.crashed)

    def refresh(self, force: bool = False) -> bool:
        """Re-render if anything moved since the last render."""
        with self._lock:
            if not self._moved(force):
                return False
            p = self.db.progress
            epochs = (p.current_epoch, p.committed_epoch, p.checkpoint_epoch, p.durable_epoch)
            self.counters.value = self._counters(*epochs)
            self.chart.value = self._chart(p)
            self.sources.value = self._sources()
            self.sinks.value = self._sinks(p)
            self.errors.value = self._errors(p)
            with self.hold_trait_notifications():  # traits last: the HTML already shows them
                self.current_epoch, self.committed_epoch = epochs[0], epochs[1]
                self.checkpoint_epoch, self.durable_epoch = epochs[2], epochs[3]
                self.refreshes += 1
            return True

    def show_error(self, err: BaseException) -> None:
        """Say what went wrong under the counters."""
        self.errors.value = (f'<div class="rw-error" style="color:#c0392b;font-size:12px">'
                             f"monitor refresh failed: {esc(err)}</div>")


    # ---- parts ---------------------------------------------------------------------------

    def _counters(self, current: int, committed: int, checkpoint: int, durable: int) -> str:
        state = ('<span style="color:#c0392b">crashed</span>' if self.db.crashed
                 else '<span style="color:#2e7d32">running</span>')
        storage = getattr(self.db.storage, "url", None) or "memory (no checkpoints)"
        cells = "".join(
            f'<div style="display:inline-block;margin-right:18px"><div style="font-size:10px;'
            f'opacity:.7">{label}</div><div class="rw-{cls}" style="font-size:20px;'
            f'font-weight:bold">{value}</div></div>'
            for label, cls, value in (("current epoch", "current-epoch", current),
                                      ("committed", "committed-epoch", committed),
                                      ("checkpoint", "checkpoint-epoch", checkpoint),
                                      ("durable", "durable-epoch", durable)))
        return (f'<div style="font-family:sans-serif">{cells}<div style="font-size:11px;'
                f'opacity:.8">engine {state} · {esc(self.db.guarantee)} · '
                f'state in {esc(storage)}</div></div>')

    def _chart(self, p: Any) -> str:
        latency = _listed(p.barrier_latency_ms)[-HISTORY:]
        checkpoints = _listed(p.checkpoints)[-HISTORY:]
        return chart([
            Series("barrier latency", [(e, ms) for e, ms in latency], "#1f77b4",
                   lambda v: f"{v:.1f} ms"),
            Series("checkpoint duration", [(c["epoch"], c["duration_ms"]) for c in checkpoints],
                   "#9467bd", lambda v: f"{v:.0f} ms"),
            Series("bytes written", [(c["epoch"], c["bytes"]) for c in checkpoints], "#d62728",
                   fmt_bytes),
        ])

    def _sources(self) -> str:
        durability = self.db.durability
        rows = []
        for rel in list(self.db.catalog.relations.values()):
            if rel.kind not in ("table", "source"):
                continue
            rows.append(_source_row(rel, durability))
        if not rows:
            return '<div style="font-size:12px;opacity:.7">no sources yet</div>'
        columns = ["source", "kind", "rows read", "offset", "logged", "checkpointed", "lag"]
        return '<div style="font-size:12px;margin-top:4px"><b>Sources</b></div>' + \
            html_table(columns, rows, css_class="rw-sources")

    def _sinks(self, p: Any) -> str:
        sinks = getattr(p, "sinks", None) or getattr(self.db, "sinks", None)
        if not sinks:
            return ""
        items = sinks.items() if isinstance(sinks, dict) else ((getattr(s, "name", str(s)), s)
                                                               for s in sinks)
        infos = [(name, info if isinstance(info, dict) else dict(vars(info)))
                 for name, info in items]
        found = {k for _, info in infos for k in info if k != "name"}
        keys = [k for k in SINK_COLUMNS if k in found] + sorted(found - set(SINK_COLUMNS))
        rows = [[name, *(_pending(info[k]) if "pending" in k else _compact(info.get(k))
                         for k in keys)] for name, info in infos]
        return '<div style="font-size:12px;margin-top:4px"><b>Sinks</b></div>' + \
            html_table(["sink", *keys], rows, css_class="rw-sinks")

    def _errors(self, p: Any) -> str:
        errors = list(p.errors)[-5:]
        if not errors:
            return ""
        items = "".join(f"<li>{esc(e)}</li>" for e in errors)
        return (f'<div class="rw-error" style="color:#c0392b;font-size:12px">'
                f"<b>{len(p.errors)} errors</b> (last {len(errors)})<ul>{items}</ul></div>")


def _pending(value: Any) -> str:
    if isinstance(value, list | tuple | set):
        shown = ", ".join(str(v) for v in sorted(value)[:10])
        return f"{len(value)} [{shown}]" if value else "0"
    return _compact(value)


def _source_row(rel: Any, durability: Any) -> list[Any]:
    """One source's offsets: what was read, logged, checkpointed, and the lag between."""
    read = rel.op.rows_in
    if durability is None:
        return [rel.name, rel.kind, read, "—", "—", "—", "—"]
    if rel.reader is not None:
        offset = durability.offsets.get("connector:" + rel.name)
        lag = getattr(rel.reader, "lag", None)
        return [rel.name, "connector", read, _compact(offset), "—", "—",
                _compact(lag() if callable(lag) else lag)]
    log = durability.logs.get(rel.name)
    logged = log.next_seq - 1 if log is not None else 0
    offset = int(durability.offsets.get(rel.name, 0))
    checkpointed = durability.checkpointed.get(rel.name, "—")
    return [rel.name, "table (DML log)", read, offset, logged, checkpointed,
            f"{max(0, logged - offset)} batches"]


def monitor(db: Any = None) -> EpochMonitor:
    """A live monitor of the engine's epochs, checkpoints, sources and sinks.

    `db` defaults to the kernel's engine (`rwmagic.engine()`).

        >>> import rwmagic
        >>> rwmagic.monitor()   # doctest: +SKIP
    """
    return EpochMonitor(resolve(db))
