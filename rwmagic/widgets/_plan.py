"""`show_plan("mv")`: the streaming plan of a materialized view as a live SVG picture.

Operators are boxes (kind, identity, rows in and out, state-table rows),
drawn top to bottom from the upstream tables to the materialize operator;
edges carry an animated barrier marker labelled with the last committed
epoch, and the picture is redrawn whenever an epoch commits.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import ipywidgets as widgets
import traitlets

from rwmagic.widgets._common import LiveWidget, esc, refresher, resolve

__all__ = ["PlanView", "plan_svg", "show_plan"]

BOX_W, BOX_H, GAP_X, LAYER_H, MARGIN = 220, 66, 30, 100, 20
COLORS = {"StreamTableSource": "#2e7d32", "StreamMaterialize": "#1565c0",
          "StreamHashAgg": "#8e24aa", "StreamHashJoin": "#ef6c00", "StreamTopN": "#6d4c41",
          "StreamRecompute": "#c62828"}


def _graph(db: Any, name: str) -> tuple[list[Any], list[tuple[Any, Any, int]], set[int]]:
    """The view's operators plus the upstream operators feeding them; edges; upstream ids."""
    rel = db.catalog.get(name)
    if rel is None:
        raise ValueError(f'relation "{name}" does not exist')
    own = list(rel.operators) or [rel.op]
    ids = {id(op) for op in own}
    upstream = [op for op in list(db.graph.operators) if id(op) not in ids
                and any(id(t) in ids for t, _ in op.outputs)]
    nodes = upstream + own
    member = {id(op) for op in nodes}
    edges = [(u, t, port) for u in nodes for t, port in u.outputs if id(t) in member]
    return nodes, edges, {id(op) for op in upstream}


def _layers(nodes: list[Any], edges: list[tuple[Any, Any, int]]) -> dict[int, int]:
    """Longest distance from an upstream operator, per operator id."""
    layer = {id(op): 0 for op in nodes}
    for _ in range(len(nodes)):
        changed = False
        for u, v, _ in edges:
            if layer[id(v)] < layer[id(u)] + 1:
                layer[id(v)] = layer[id(u)] + 1
                changed = True
        if not changed:
            break
    return layer


def _state_rows(db: Any, op: Any) -> int | None:
    """Rows in the operator's state tables (committed state), None for stateless ones."""
    tables = op.state_tables()
    if not tables:
        return None
    reader = db.duck.reader()
    total = 0
    for t in tables:
        quoted = '"' + t.name.replace('"', '""') + '"'
        total += int(reader.arrow(f"SELECT COUNT(*) AS n FROM {quoted}").column(0)[0].as_py())
    return total


def _box(op: Any, x: float, y: float, upstream: bool, state: int | None) -> str:
    color = COLORS.get(op.kind, "#546e7a")
    role = "upstream " if upstream else ""
    state_text = "stateless" if state is None else f"state: {state} rows"
    tables = ", ".join(t.name for t in op.state_tables())
    title = f"{op.kind} {op.identity}" + (f" — state tables: {tables}" if tables else "")
    return (f'<g class="rw-op" data-op="{esc(op.identity)}"><title>{esc(title)}</title>'
            f'<rect x="{x}" y="{y}" width="{BOX_W}" height="{BOX_H}" rx="6" '
            f'fill="{color}" fill-opacity="0.12" stroke="{color}" stroke-width="1.5"/>'
            f'<text x="{x + 8}" y="{y + 16}" font-size="12" font-weight="bold" '
            f'fill="{color}">{esc(role + op.kind)}</text>'
            f'<text x="{x + 8}" y="{y + 31}" font-size="11" fill="currentColor">'
            f'{esc(op.identity)}</text>'
            f'<text x="{x + 8}" y="{y + 46}" font-size="11" fill="currentColor" '
            f'class="rw-rows">rows in {op.rows_in} · out {op.rows_out}</text>'
            f'<text x="{x + 8}" y="{y + 60}" font-size="11" fill="currentColor" '
            f'class="rw-state">{esc(state_text)}</text></g>')


def plan_svg(db: Any, name: str) -> str:
    """The SVG picture of view `name`'s streaming plan, with the current counters."""
    nodes, edges, upstream = _graph(db, name)
    layer = _layers(nodes, edges)
    rows: dict[int, list[Any]] = {}
    for op in nodes:
        rows.setdefault(layer[id(op)], []).append(op)
    widest = max(len(r) for r in rows.values())
    width = MARGIN * 2 + widest * BOX_W + (widest - 1) * GAP_X
    height = MARGIN * 2 + 24 + len(rows) * LAYER_H - (LAYER_H - BOX_H)
    pos: dict[int, tuple[float, float]] = {}
    for depth, ops in rows.items():
        span = len(ops) * BOX_W + (len(ops) - 1) * GAP_X
        for i, op in enumerate(ops):
            pos[id(op)] = ((width - span) / 2 + i * (BOX_W + GAP_X),
                           MARGIN + 24 + depth * LAYER_H)
    epoch = db.progress.committed_epoch
    parts = [f'<text x="{MARGIN}" y="{MARGIN}" font-size="12" fill="currentColor">'
             f'<tspan font-weight="bold">{esc(name)}</tspan> · barriers flowing · last '
             f'committed epoch <tspan class="rw-epoch" font-weight="bold">{epoch}</tspan>'
             f'</text>']
    for u, v, port in edges:
        (ux, uy), (vx, vy) = pos[id(u)], pos[id(v)]
        inputs = max(getattr(v, "n_inputs", 1), 1)
        x1, y1 = ux + BOX_W / 2, uy + BOX_H
        x2, y2 = vx + BOX_W * (port + 1) / (inputs + 1), vy
        path = f"M{x1:.1f},{y1:.1f} L{x2:.1f},{y2:.1f}"
        begin = f"{0.25 * layer[id(u)]:.2f}s"
        parts.append(
            f'<path d="{path}" stroke="currentColor" stroke-opacity="0.5" fill="none" '
            f'marker-end="url(#rw-arrow)"/>'
            f'<g class="rw-barrier" visibility="hidden"><set attributeName="visibility" '
            f'to="visible" begin="{begin}" fill="freeze"/>'
            f'<rect x="-14" y="-5" width="28" height="10" rx="2" fill="#f9a825"/>'
            f'<text x="0" y="3.5" font-size="8" text-anchor="middle" '
            f'fill="#000">e{epoch}</text><animateMotion dur="1.2s" begin="{begin}" '
            f'repeatCount="indefinite" path="{path}"/></g>')
    for op in nodes:
        x, y = pos[id(op)]
        parts.append(_box(op, x, y, id(op) in upstream, _state_rows(db, op)))
    arrow = ('<defs><marker id="rw-arrow" viewBox="0 0 10 10" refX="9" refY="5" '
             'markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
             '<path d="M0,0 L10,5 L0,10 z" fill="currentColor" fill-opacity="0.6"/>'
             '</marker></defs>')
    return (f'<svg class="rw-plan" xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" '
            f'height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" '
            f'style="font-family:sans-serif">{arrow}{"".join(parts)}</svg>')


class PlanView(LiveWidget, widgets.VBox):
    """The streaming plan of a materialized view, redrawn at every committed epoch."""

    epoch = traitlets.Int(0, help="The committed epoch the counters were read at.")
    operators = traitlets.Int(0, help="Operators drawn (the view's and its upstream ones).")

    def __init__(self, name: str, db: Any, live: bool = True) -> None:
        self.db = db
        self.name = name
        self.svg = widgets.HTML()
        super().__init__([self.svg])
        self.add_class("rw-plan-view")
        self._start_live()
        self.refresh(force=True)
        if live:
            refresher().add(self)

    def change_token(self) -> Hashable:
        """The committed epoch and the rows every operator has seen."""
        rows = tuple(op.rows_in for op in list(self.db.graph.operators))
        return (id(self.db.coordinator), self.db.progress.committed_epoch, rows)

    def refresh(self, force: bool = False) -> bool:
        """Redraw if an epoch committed since the last drawing."""
        with self._lock:
            if not self._moved(force):
                return False
            if self.db.crashed:  # its state is gone until RECOVER; keep the last picture
                return False
            epoch = int(self.db.progress.committed_epoch)
            self.svg.value = plan_svg(self.db, self.name)
            with self.hold_trait_notifications():  # traits last: the picture already shows them
                self.operators = len(_graph(self.db, self.name)[0])
                self.epoch = epoch
            return True

    def show_error(self, err: BaseException) -> None:
        """Keep the last picture and say what went wrong."""
        self.svg.value += (f'<div class="rw-error" style="color:#c0392b;font-size:12px">'
                           f"plan refresh failed: {esc(err)}</div>")



def show_plan(name: str, db: Any = None, live: bool = True) -> PlanView:
    """A picture of materialized view `name`'s streaming plan, with live counters.

    Boxes are operators (rows in and out, state-table rows); barrier markers
    move along the edges. `db` defaults to the kernel's engine.

        >>> import rwmagic
        >>> rwmagic.show_plan("cons_user_spend")   # doctest: +SKIP
    """
    return PlanView(name, resolve(db), live)
