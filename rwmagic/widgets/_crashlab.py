"""`crash_lab()`: crash the engine under a delivery guarantee, recover, and count.

Pick a delivery guarantee and a crash point, press **Crash** (the workload
runs up to the crash, then the engine dies there), then **Recover** (RECOVER,
the rest of the workload, and the comparison with a run without the crash).
The verdict counts, per table and view, the events duplicated and lost.
`crash_lab(compare=True)` runs the three guarantees side by side with one
pair of buttons. Built on `kernel_engine.meta.crashlab.CrashLabRun`.
"""

from __future__ import annotations

import importlib.util
from collections import Counter
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets
import traitlets

from kernel_engine.meta import durability
from kernel_engine.meta.crashlab import ARTICLE_WORKLOAD, CrashLabResult, CrashLabRun
from kernel_engine.meta.durability import CRASH_POINTS, GUARANTEES
from rwmagic.widgets._common import esc, html_table

__all__ = ["CrashLab", "CrashLabCompare", "crash_lab", "crash_lab_compare", "verdict_text"]

SINK_POINTS: tuple[str, ...] = getattr(durability, "SINK_CRASH_POINTS", ())
WRONG_ROW = "background:rgba(220,50,50,0.2)"
MISSING_ROW = "text-decoration:line-through;opacity:0.6;background:rgba(220,50,50,0.12)"
GOOD, BAD = "#2e7d32", "#c0392b"
BOX = "font-size:12px;font-family:sans-serif"


def _text(row: tuple[Any, ...]) -> tuple[str, ...]:
    return tuple(map(str, row))


def _order(row: tuple[Any, ...]) -> tuple[tuple[bool, str], ...]:
    return tuple((v is None, str(v)) for v in row)


def sinks_available() -> bool:
    """True when the engine has the crash lab's file sink (kernel_engine.sinks.lab)."""
    try:
        return importlib.util.find_spec("kernel_engine.sinks.lab") is not None
    except ImportError:
        return False


def crash_points(sink: bool) -> list[str]:
    """The crash points to offer: the engine's, the sink's (with a sink), and "now"."""
    return [*CRASH_POINTS, *(SINK_POINTS if sink else ()), "now"]


def verdict_text(result: CrashLabResult) -> str:
    """One line: the guarantee, the crash point, and events duplicated / lost per relation."""
    head = f"{result.guarantee} at {result.at}: "
    if result.ok:
        return head + "0 duplicated / 0 lost in every relation (correct)"
    parts = [f"{o.name} {o.duplicated} duplicated / {o.lost} lost"
             for o in result.outcomes.values()]
    return head + "; ".join(parts) + " (WRONG)"


def _first_line(sql: str, width: int = 70) -> str:
    line = " ".join(sql.split())
    return line if len(line) <= width else line[: width - 1] + "…"


class CrashLab(widgets.VBox):
    """One crash-lab run: guarantee and crash point, Crash and Recover, then the verdict."""

    phase = traitlets.Unicode("ready", help="ready, crashed, recovered (or error).")
    duplicated = traitlets.Int(0, help="Events duplicated in the worst relation (after Recover).")
    lost = traitlets.Int(0, help="Events lost in the worst relation (after Recover).")
    epoch_before = traitlets.Int(0, help="The lab engine's committed epoch when it crashed.")
    epoch_after = traitlets.Int(0, help="Its committed epoch after recovering and finishing.")

    def __init__(self, workload: list[str] | None = None, guarantee: str = "exactly_once",
                 at: str = "after_snapshot", crash_after: int | None = None,
                 controls: bool = True, compact: bool = False,
                 sink: bool | None = None) -> None:
        self.sink = sinks_available() if sink is None else sink  # a file sink, compared too
        self.compact = compact  # tables as row counts only (side-by-side layout)
        self.workload = list(workload or ARTICLE_WORKLOAD)
        self.crash_after = crash_after
        self.run: CrashLabRun | None = None
        self.result: CrashLabResult | None = None
        self.guarantee_picker = widgets.Dropdown(options=list(GUARANTEES), value=guarantee,
                                                 description="guarantee")
        self.point_picker = widgets.Dropdown(options=crash_points(self.sink), value=at,
                                             description="crash at")
        self.crash_button = widgets.Button(description="Crash", button_style="danger",
                                           icon="bolt", tooltip="run up to the crash and die")
        self.recover_button = widgets.Button(description="Recover", button_style="success",
                                             icon="refresh", disabled=True,
                                             tooltip="RECOVER, finish the workload, compare")
        self.crash_button.on_click(lambda _: self.crash())
        self.recover_button.on_click(lambda _: self.recover())
        self.status = widgets.HTML()
        self.steps = widgets.HTML()
        self.views = widgets.HTML()
        self.verdict = widgets.HTML()
        bar = widgets.HBox([self.guarantee_picker, self.point_picker, self.crash_button,
                            self.recover_button])
        super().__init__(([bar] if controls else [])
                         + [self.status, self.steps, self.views, self.verdict])
        self.add_class("rw-crash-lab")
        self._render_status("ready: press Crash")
        self._render_steps()

    @property
    def guarantee(self) -> str:
        """The chosen delivery guarantee."""
        return str(self.guarantee_picker.value)

    @property
    def at(self) -> str:
        """The chosen crash point."""
        return str(self.point_picker.value)

    # ---- the two steps -------------------------------------------------------------------

    def crash(self) -> None:
        """Run the workload up to the crash point and crash the lab engine there."""
        self._busy("running up to the crash…")
        try:
            if self.run is not None:
                self.run.close()
            self.result = None
            self.verdict.value = ""
            self.epoch_after = 0
            options = {"sink": True} if self.sink else {}
            self.run = CrashLabRun(self.workload, self.at, self.guarantee, self.crash_after,
                                   **options)
            self.run.start()
            self.epoch_before = self.run.epochs["before_crash"]
            self.run.crash()
        except Exception as err:  # noqa: BLE001 - shown in the widget
            self._failed(err)
            return
        self.phase = "crashed"
        self._render_status(f"crashed at {self.at}: the engine's memory is gone; "
                            "press Recover", BAD)
        self._render_steps()
        self._render_views()
        self._controls(crashed=True)

    def recover(self) -> None:
        """Recover the lab engine, finish the workload and show the verdict."""
        if self.run is None or self.run.phase != "crashed":
            self._render_status("nothing to recover: press Crash first", BAD)
            return
        self._busy("recovering…")
        try:
            self.result = self.run.recover()
        except Exception as err:  # noqa: BLE001 - shown in the widget
            self._failed(err)
            return
        self.epoch_after = self.run.epochs["after_recovery"]
        self.duplicated = max((o.duplicated for o in self.result.outcomes.values()), default=0)
        self.lost = max((o.lost for o in self.result.outcomes.values()), default=0)
        self.phase = "recovered"
        self._render_status("recovered and finished the workload", GOOD)
        self._render_steps()
        self._render_views()
        self._render_verdict()
        self._controls(crashed=False)

    def close(self) -> None:
        """Stop the lab engine (if any) and close the widget."""
        if self.run is not None:
            self.run.close()
        super().close()

    # ---- rendering -----------------------------------------------------------------------

    def _busy(self, text: str) -> None:
        self._render_status(text, "#555")
        self.crash_button.disabled = self.recover_button.disabled = True

    def _controls(self, crashed: bool) -> None:
        """Enable what makes sense next: Recover after a crash, else Crash (a fresh run with
        what the pickers say)."""
        self.crash_button.disabled = crashed
        self.recover_button.disabled = not crashed

    def _failed(self, err: BaseException) -> None:
        self.phase = "error"
        self._render_status(f"failed: {err}", BAD)
        self._controls(crashed=False)

    def _render_status(self, text: str, color: str = "inherit") -> None:
        epochs = (f' · committed epoch before the crash <b class="rw-epoch-before">'
                  f'{self.epoch_before}</b>') if self.epoch_before else ""
        if self.epoch_after:
            epochs += f' → after recovery <b class="rw-epoch-after">{self.epoch_after}</b>'
        guarantee, at = (self.run.guarantee, self.run.at) if self.run else (self.guarantee,
                                                                            self.at)
        self.status.value = (f'<div style="{BOX}"><b>{esc(guarantee)}</b> · crash point '
                             f'<b>{esc(at)}</b> · <span class="rw-phase" '
                             f'style="color:{color}">{esc(text)}</span>{epochs}</div>')

    def _render_steps(self) -> None:
        k = self.run.crash_after if self.run else (self.crash_after or max(
            len(self.workload) - 3, 1))
        items = []
        for i, sql in enumerate(self.workload):
            if self.phase == "ready" or (i >= k and self.phase != "recovered"):
                mark = "·"
            elif i < k:
                mark = "✓"
            else:
                mark = "↻"  # run after the recovery
            items.append(f"<div>{mark} {i + 1:>2}. {esc(_first_line(sql))}</div>")
            if i == k - 1:
                at = self.run.at if self.run else self.at
                items.append(f'<div style="color:{BAD}">⚡ crash at {esc(at)}</div>')
        self.steps.value = (f'<details><summary style="{BOX}">workload ({len(self.workload)} '
                            f'statements; ✓ before the crash, ↻ after recovery)</summary>'
                            f'<div style="font-family:monospace;font-size:11px">'
                            f'{"".join(items)}</div></details>')

    def _render_views(self) -> None:
        assert self.run is not None
        observed = {} if self.result is None else {
            name: o.observed for name, o in self.result.outcomes.items()}
        panels = []
        for name, (kind, rows, _) in self.run.before.items():
            if self.compact and kind == "table":
                got = len(observed[name]) if name in observed else None
                after_text = f" → {got} rows after recovery" if got is not None else ""
                panels.append(f'<div style="{BOX};margin:4px 0"><b>{esc(name)}</b> (table): '
                              f"{len(rows)} rows before the crash{after_text}</div>")
                continue
            columns = [f"c{i + 1}" for i in range(len(rows[0]))] if rows else []
            cols = self._columns(name) or columns
            before = (self._relation(f"before the crash ({len(rows)} rows)", cols, rows)
                      if not self.compact or name not in observed else "")
            after = ""
            if name in observed:
                after = self._relation(f"after recovery ({len(observed[name])} rows)", cols,
                                       observed[name],
                                       self.result.outcomes[name].expected if self.result
                                       else None)
            panels.append(f'<div style="margin:4px 12px 4px 0"><div style="{BOX}"><b>'
                          f'{esc(name)}</b> ({esc(kind)})</div><div style="display:flex;'
                          f'flex-wrap:wrap;gap:12px;align-items:flex-start">{before}{after}'
                          '</div></div>')
        panels += [self._sink_panel(name, rows) for name, rows in observed.items()
                   if name not in self.run.before]
        self.views.value = f'<div style="display:flex;flex-wrap:wrap">{"".join(panels)}</div>'

    def _sink_panel(self, name: str, rows: list[tuple[Any, ...]]) -> str:
        """What a sink delivered to its target, against what it should have."""
        assert self.result is not None and self.run is not None
        table = getattr(self.run, "_sink_table", None)
        cols = self.run.columns.get(table, []) if table else []
        if not rows or len(cols) != len(rows[0]):
            cols = [f"c{i + 1}" for i in range(len(rows[0]))] if rows else []
        target = f"file sink of {table}" if table else "sink"
        body = self._relation(f"delivered after recovery ({len(rows)} rows)", cols, rows,
                              self.result.outcomes[name].expected)
        return (f'<div style="margin:4px 12px 4px 0"><div style="{BOX}"><b>{esc(name)}</b> '
                f"({esc(target)})</div>{body}</div>")

    def _columns(self, name: str) -> list[str]:
        return self.run.columns.get(name, []) if self.run is not None else []

    def _relation(self, title: str, cols: list[str], rows: list[tuple[Any, ...]],
                  expected: list[tuple[Any, ...]] | None = None) -> str:
        """A relation's rows; against `expected`, unexpected rows (and copies beyond the
        expected ones) are tinted, and expected rows that are missing are struck through."""
        shown = sorted(rows, key=_order)[:40]
        styles = None
        if expected is not None:
            left = Counter(map(_text, expected))
            styles = []
            for r in shown:
                styles.append("" if left[_text(r)] > 0 else WRONG_ROW)
                left[_text(r)] -= 1
            have = Counter(map(_text, rows))
            missing = []
            for r in sorted(expected, key=_order):
                if have[_text(r)] > 0:
                    have[_text(r)] -= 1
                else:
                    missing.append(r)
            shown += missing[:20]
            styles += [MISSING_ROW] * len(missing[:20])
        return (f'<div><div style="font-size:11px;opacity:.8">{esc(title)}</div>'
                f'{html_table(cols, shown, styles, dense=self.compact)}</div>')

    def _render_verdict(self) -> None:
        assert self.result is not None
        assert self.run is not None
        rows: list[list[Any]] = []
        for o in self.result.outcomes.values():
            want = self.run.expected.get(o.name, ("sink", o.expected, len(o.expected)))[2]
            mark = "✓" if o.ok else "✗"
            rows.append([o.name, o.duplicated, o.lost, mark] if self.compact else
                        [o.name, want, want + o.duplicated - o.lost, o.duplicated, o.lost,
                         f"{mark} as without the crash" if o.ok else f"{mark} differs"])
        columns = (["relation", "duplicated", "lost", "ok"] if self.compact else
                   ["relation", "expected events", "observed events", "duplicated", "lost",
                    "verdict"])
        color = GOOD if self.result.ok else BAD
        self.verdict.value = (
            f'<div class="rw-verdict" style="{BOX}"><div style="font-size:14px;color:{color}">'
            f'<b>Verdict:</b> <span class="rw-verdict-line">{esc(verdict_text(self.result))}'
            f'</span></div>'
            + html_table(columns, rows, dense=self.compact) + "</div>")


class CrashLabCompare(widgets.VBox):
    """The three delivery guarantees side by side, crashed and recovered together."""

    phase = traitlets.Unicode("ready", help="ready, crashed, recovered (or error).")

    def __init__(self, workload: list[str] | None = None, at: str = "after_snapshot",
                 crash_after: int | None = None, sink: bool | None = None) -> None:
        self.labs = {g: CrashLab(workload, g, at, crash_after, controls=False, compact=True,
                                 sink=sink) for g in GUARANTEES}
        with_sink = next(iter(self.labs.values())).sink
        self.point_picker = widgets.Dropdown(options=crash_points(with_sink), value=at,
                                             description="crash at")
        self.crash_button = widgets.Button(description="Crash all", button_style="danger",
                                           icon="bolt")
        self.recover_button = widgets.Button(description="Recover all",
                                             button_style="success", icon="refresh",
                                             disabled=True)
        self.crash_button.on_click(lambda _: self.crash())
        self.recover_button.on_click(lambda _: self.recover())
        self.summary = widgets.HTML()
        columns = widgets.HBox(list(self.labs.values()),
                               layout=widgets.Layout(align_items="flex-start"))
        for lab in self.labs.values():
            lab.layout = widgets.Layout(width="33%", overflow="auto")
        bar = widgets.HBox([self.point_picker, self.crash_button, self.recover_button])
        super().__init__([bar, self.summary, columns])
        self.add_class("rw-crash-lab-compare")

    @property
    def results(self) -> dict[str, CrashLabResult]:
        """The results so far, by guarantee."""
        return {g: lab.result for g, lab in self.labs.items() if lab.result is not None}

    def crash(self) -> None:
        """Crash all three at the chosen point."""
        self._each(lambda lab: lab.crash())
        self.phase = "crashed"
        self.crash_button.disabled, self.recover_button.disabled = True, False

    def recover(self) -> None:
        """Recover all three and summarise the verdicts."""
        self._each(lambda lab: lab.recover())
        self.phase = "recovered"
        self.crash_button.disabled, self.recover_button.disabled = False, True
        rows = [[g, r.at, o.name, o.duplicated, o.lost, "✓" if o.ok else "✗"]
                for g, r in self.results.items() for o in r.outcomes.values()]
        self.summary.value = (f'<div class="rw-verdict" style="{BOX}"><b>Verdicts</b>'
                              + html_table(["guarantee", "crash at", "relation", "duplicated",
                                            "lost", "correct"], rows) + "</div>")

    def _each(self, step: Callable[[CrashLab], None]) -> None:
        for lab in self.labs.values():
            lab.point_picker.value = self.point_picker.value
            step(lab)


def crash_lab(workload: list[str] | None = None, guarantee: str | None = None,
              at: str = "after_snapshot", crash_after: int | None = None,
              compare: bool = False, db: Any = None,
              sink: bool | None = None) -> CrashLab | CrashLabCompare:
    """The crash lab: crash and recover a workload under a delivery guarantee.

    `workload` defaults to the article's example 2; the crash comes after
    statement `crash_after` (default: the third from the end). Each run uses
    its own engines and temporary folder: the kernel's engine is untouched
    (`db` only supplies the default guarantee). With `sink` (default: when the
    engine has file sinks) a file sink of the first table is compared too, and
    the sink's crash points are offered. `compare=True` shows the three
    guarantees side by side.

        >>> import rwmagic
        >>> lab = rwmagic.crash_lab(guarantee="at_least_once")   # doctest: +SKIP
        >>> lab.crash_button.click(); lab.recover_button.click()  # doctest: +SKIP
    """
    if compare:
        return CrashLabCompare(workload, at, crash_after, sink)
    chosen = guarantee or (getattr(db, "guarantee", None) if db is not None else None)
    return CrashLab(workload, chosen or "exactly_once", at, crash_after, sink=sink)


def crash_lab_compare(workload: list[str] | None = None, at: str = "after_snapshot",
                      crash_after: int | None = None,
                      sink: bool | None = None) -> CrashLabCompare:
    """The three delivery guarantees side by side (same as `crash_lab(compare=True)`)."""
    return CrashLabCompare(workload, at, crash_after, sink)
