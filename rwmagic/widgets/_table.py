"""`watch("mv")`: a materialized view as a live table, one refresh per committed epoch.

The table shows the epoch it reflects and highlights what changed since its
previous content: new rows green, updated rows amber, and rows that went away
struck through below the table (until the next change).
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import ipywidgets as widgets
import traitlets

from rwmagic.widgets._common import LiveWidget, esc, html_table, refresher, resolve

__all__ = ["LiveTable", "watch"]

NEW = "background:rgba(46,160,67,0.22)"
UPDATED = "background:rgba(230,170,20,0.28)"
REMOVED = "text-decoration:line-through;opacity:0.6;background:rgba(220,50,50,0.15)"
STATUS = '<span class="rw-status" style="color:{color}">{text}</span>'


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class LiveTable(LiveWidget, widgets.VBox):
    """A materialized view (or table) kept up to date at every committed epoch."""

    epoch = traitlets.Int(0, help="The committed epoch whose content the table shows.")
    row_count = traitlets.Int(0, help="Rows in the relation at that epoch.")
    inserted = traitlets.Int(0, help="Rows new in the last change.")
    updated = traitlets.Int(0, help="Rows whose values changed in the last change.")
    removed = traitlets.Int(0, help="Rows gone in the last change.")
    refreshes = traitlets.Int(0, help="How many times the content was re-read.")

    def __init__(self, name: str, db: Any, max_rows: int = 200) -> None:
        self.db = db
        self.name = name
        self.max_rows = max_rows
        self.header = widgets.HTML()
        self.table = widgets.HTML()
        super().__init__([self.header, self.table])
        self.add_class("rw-watch")
        self._start_live()
        self._rows: dict[Any, tuple[Any, ...]] | None = None
        self._styles: dict[Any, str] = {}
        self._gone: list[tuple[Any, ...]] = []
        self._shown = {"epoch": 0, "total": 0, "reads": 0, "new": 0, "updated": 0, "removed": 0}
        self._columns, self._key = self._describe()
        self.refresh(force=True)
        refresher().add(self)

    def _describe(self) -> tuple[list[str], list[int]]:
        """Visible columns, and the positions of the key among them (empty: whole row)."""
        rel = self.db.catalog.get(self.name)
        if rel is None:
            raise ValueError(f'relation "{self.name}" does not exist')
        visible = [c for c, _, hidden in rel.columns if not hidden]
        key = [visible.index(k) for k in rel.key if k in visible]
        return visible, key if len(key) == len(rel.key) else []

    # ---- the Live protocol ---------------------------------------------------------------

    def change_token(self) -> Hashable:
        """The committed epoch (and the engine incarnation: RECOVER starts a new one)."""
        return (id(self.db.coordinator), self.db.progress.committed_epoch, self.db.crashed)

    def _engine_gone(self) -> None:
        self._status("the engine was closed: no more refreshes", "#c0392b")

    def refresh(self, force: bool = False) -> bool:
        """Re-read the relation if an epoch was committed since the last read."""
        with self._lock:
            if not self._moved(force):
                return False
            if self.db.crashed:
                self._status("engine crashed: showing the last content; RECOVER to go on",
                             "#c0392b")
                return True
            epoch, rows, total = self._read()
            self._update(rows, total)
            self._shown.update(epoch=epoch, total=total, reads=self._shown["reads"] + 1)
            self._render()
            self._publish()  # traits last: once `epoch` moves, the HTML shows that epoch
            return True

    def _publish(self) -> None:
        s = self._shown
        with self.hold_trait_notifications():
            self.row_count, self.refreshes = s["total"], s["reads"]
            self.inserted, self.updated, self.removed = s["new"], s["updated"], s["removed"]
            self.epoch = s["epoch"]

    def show_error(self, err: BaseException) -> None:
        """Keep the last content and say what went wrong."""
        self._status(f"refresh failed: {err}", "#c0392b")


    # ---- reading and diffing ---------------------------------------------------------------

    def _read(self) -> tuple[int, list[tuple[Any, ...]], int]:
        """The relation's rows at one committed epoch (re-read if an epoch committed meanwhile)."""
        order = ", ".join(str(i + 1) for i in (self._key or range(len(self._columns))))
        cols = ", ".join(_quote(c) for c in self._columns)
        for _ in range(5):
            before = self.db.progress.committed_epoch
            total = self.db.execute(f"SELECT COUNT(*) FROM {_quote(self.name)}").fetchone()[0]
            rows = self.db.execute(f"SELECT {cols} FROM {_quote(self.name)} ORDER BY {order} "
                                   f"LIMIT {self.max_rows}").fetchall()
            if self.db.progress.committed_epoch == before:
                break
        return int(before), rows, int(total)

    def _identity(self, row: tuple[Any, ...]) -> Any:
        return tuple(row[i] for i in self._key) if self._key else row

    def _update(self, rows: list[tuple[Any, ...]], total: int) -> None:
        new = {self._identity(r): r for r in rows}
        old = self._rows
        self._rows = new
        if old is None or old == new:
            return
        self._styles = {k: NEW for k in new if k not in old}
        self._styles.update({k: UPDATED for k, r in new.items() if k in old and old[k] != r})
        complete = total <= self.max_rows
        self._gone = [r for k, r in old.items() if k not in new] if complete else []
        inserted = sum(1 for s in self._styles.values() if s == NEW)
        self._shown.update(new=inserted, updated=len(self._styles) - inserted,
                           removed=len(self._gone))

    # ---- rendering -----------------------------------------------------------------------

    def _render(self) -> None:
        rows = list((self._rows or {}).items())
        shown = [r for _, r in rows] + self._gone[:20]
        styles = [self._styles.get(k, "") for k, _ in rows] + [REMOVED] * len(self._gone[:20])
        more = self._shown["total"] - len(rows)
        tail = f"<div style='font-size:11px;opacity:.7'>… {more} more rows</div>" if more > 0 \
            else ""
        self.table.value = html_table(self._columns, shown, styles) + tail
        self._status("live", "#2e7d32")

    def _status(self, text: str, color: str) -> None:
        s = self._shown
        changes = (f"{s['new']} new, {s['updated']} updated, {s['removed']} removed"
                   if s["reads"] > 1 else "first read")
        self.header.value = (
            f'<div style="font-size:12px"><b>{esc(self.name)}</b> · epoch '
            f'<span class="rw-epoch">{s["epoch"]}</span> · '
            f'<span class="rw-rows">{s["total"]}</span> rows · {changes} · '
            f'{STATUS.format(color=color, text=esc(text))}</div>')


def watch(name: str, db: Any = None, max_rows: int = 200) -> LiveTable:
    """A live table of materialized view (or table) `name`, refreshed at each committed epoch.

    `db` defaults to the kernel's engine (`rwmagic.engine()`). At most `max_rows`
    rows are shown, ordered by the view's key.

        >>> import rwmagic
        >>> rwmagic.watch("cons_user_spend")   # doctest: +SKIP
    """
    return LiveTable(name, resolve(db), max_rows)
