"""What every widget shares: the engine lookup, the refresh thread, HTML helpers.

Live widgets are refreshed by one daemon thread per kernel (`Refresher`), never
by the engine thread: each tick asks every registered widget for a cheap
change token (epochs, counters) and re-renders only the widgets whose token
moved, at most `RATE_HZ` times a second. A widget that fails shows the error
in its own status line; nothing is ever printed into a cell.
"""

from __future__ import annotations

import html
import threading
import time
import weakref
from collections.abc import Hashable, Sequence
from datetime import datetime
from typing import Any, Protocol

__all__ = ["RATE_HZ", "Live", "LiveWidget", "Refresher", "engine_alive", "esc", "fmt_bytes",
           "fmt_value", "html_table", "refresher", "resolve"]

RATE_HZ = 4.0  # at most this many updates a second per widget

CELL = ("padding:2px 8px;border-bottom:1px solid rgba(128,128,128,0.25);text-align:{align};"
        "white-space:nowrap")
HEAD = "padding:2px 8px;border-bottom:1px solid rgba(128,128,128,0.6);text-align:{align}"


def resolve(db: Any) -> Any:
    """`db`, or the kernel's engine (`rwmagic.engine()`) when `db` is None."""
    if db is not None:
        return db
    from rwmagic._engine import engine

    return engine()


def esc(value: object) -> str:
    """HTML-escaped text of a value."""
    return html.escape(str(value), quote=True)


def fmt_value(value: object) -> str:
    """A cell's text: NULL for None, floats trimmed, timestamps without microseconds."""
    if value is None:
        return "NULL"
    if isinstance(value, float):
        return format(value, ".6g")
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    return str(value)


def fmt_bytes(n: float) -> str:
    """A byte count in B, KiB, MiB or GiB."""
    for unit in ("B", "KiB", "MiB"):
        if abs(n) < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def _align(value: object) -> str:
    return "right" if isinstance(value, int | float) and not isinstance(value, bool) else "left"


def html_table(columns: Sequence[str], rows: Sequence[Sequence[Any]],
               styles: Sequence[str] | None = None, css_class: str = "rw-table",
               dense: bool = False) -> str:
    """An HTML table; `styles` (one per row) adds inline CSS to a row (highlights).

    `dense` tables use less padding and a smaller font (for side-by-side layouts).
    """
    first = rows[0] if rows else [None] * len(columns)
    cell, header = (CELL, HEAD) if not dense else (
        CELL.replace("2px 8px", "1px 4px"), HEAD.replace("2px 8px", "1px 4px"))
    head = "".join(f'<th style="{header.format(align=_align(v))}">{esc(c)}</th>'
                   for c, v in zip(columns, first, strict=False))
    body = []
    for i, row in enumerate(rows):
        style = styles[i] if styles is not None else ""
        cells = "".join(f'<td style="{cell.format(align=_align(v))}">{esc(fmt_value(v))}</td>'
                        for v in row)
        body.append(f'<tr style="{style}">{cells}</tr>')
    size = 11 if dense else 12
    return (f'<table class="{css_class}" style="border-collapse:collapse;font-size:{size}px;'
            f'line-height:1.4;font-family:var(--jp-code-font-family,monospace)">'
            f'<thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table>')


class Live(Protocol):
    """A widget the refresh thread keeps up to date."""

    def change_token(self) -> Hashable:
        """Something cheap that changes whenever the widget should re-render."""
        ...

    def refresh(self, force: bool = False) -> bool:
        """Re-render if the token moved (or `force`); True if it re-rendered."""
        ...

    def show_error(self, err: BaseException) -> None:
        """Show a failure in the widget (never print it)."""
        ...

    def alive(self) -> bool:
        """False once the widget was closed or its engine is gone: stop refreshing it."""
        ...


class LiveWidget:
    """The bookkeeping of a live widget (mixed in before `widgets.VBox`): a lock, the
    last change token, closing; `alive()` for the refresh thread."""

    db: Any
    _lock: threading.Lock
    _closed: bool
    _token: Hashable

    def _start_live(self) -> None:
        self._lock = threading.Lock()
        self._closed = False
        self._token = None

    def change_token(self) -> Hashable:
        """Something cheap that changes whenever the widget should re-render."""
        raise NotImplementedError

    def show_error(self, err: BaseException) -> None:
        """Show a failure in the widget (never print it)."""
        raise NotImplementedError

    def refresh(self, force: bool = False) -> bool:
        """Re-render if the token moved (or `force`); True if it re-rendered."""
        raise NotImplementedError

    def _moved(self, force: bool) -> bool:
        """Whether the change token moved since the last call (or `force`); hold `_lock`."""
        token = self.change_token()
        if not force and token == self._token:
            return False
        self._token = token
        return True

    def _engine_gone(self) -> None:
        self.show_error(RuntimeError("the engine was closed: no more refreshes"))

    def alive(self) -> bool:
        """False once closed or once the connection was closed."""
        if self._closed:
            return False
        if not engine_alive(self.db):
            self._engine_gone()
            return False
        return True

    def close(self) -> None:
        """Stop refreshing and close the widget."""
        self._closed = True
        refresher().remove(self)
        super().close()  # type: ignore[misc]


class Refresher:
    """One daemon thread that refreshes every registered live widget."""

    def __init__(self, rate_hz: float = RATE_HZ) -> None:
        self.interval = 1.0 / rate_hz
        self._widgets: weakref.WeakSet[Any] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def add(self, widget: Live) -> None:
        """Keep `widget` refreshed until it is closed."""
        with self._lock:
            self._widgets.add(widget)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="rwmagic-widgets",
                                                daemon=True)
                self._thread.start()

    def remove(self, widget: Live) -> None:
        """Stop refreshing `widget`."""
        with self._lock:
            self._widgets.discard(widget)

    def tick(self) -> None:
        """Refresh every widget once (the thread's body; tests may call it directly)."""
        with self._lock:
            widgets = list(self._widgets)
        for widget in widgets:
            try:
                if not widget.alive():
                    self.remove(widget)
                    continue
                widget.refresh()
            except Exception as err:  # noqa: BLE001 - shown in the widget, never printed
                try:
                    widget.show_error(err)
                except Exception:  # noqa: BLE001 - a closed widget: forget it
                    self.remove(widget)

    def _run(self) -> None:
        while True:
            started = time.monotonic()
            self.tick()
            with self._lock:
                if not self._widgets:
                    self._thread = None
                    return
            time.sleep(max(0.0, self.interval - (time.monotonic() - started)))


_REFRESHER = Refresher()


def refresher() -> Refresher:
    """The kernel's refresh thread."""
    return _REFRESHER


def engine_alive(db: Any) -> bool:
    """False once the connection was closed."""
    return not getattr(db, "_closed", False)
