"""IPython extension for kernel_engine: the ``%%stream_sql`` magic, display and widgets.

Load it in a notebook with ``%load_ext rwmagic``, then write RisingWave SQL in
``%%stream_sql`` cells. Python code reaches the same engine with
``rwmagic.engine()``; the widgets (``rwmagic.watch``, ``rwmagic.monitor``,
``rwmagic.crash_lab``, ``rwmagic.crash_lab_compare``, ``rwmagic.show_plan``) are
imported from ``rwmagic.widgets`` on first use, so loading the magic does not
need ipywidgets.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from rwmagic._engine import close_engine, current_engine, engine

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

__all__ = [
    "close_engine", "crash_lab", "crash_lab_compare", "current_engine", "engine",
    "load_ipython_extension", "monitor", "show_plan", "unload_ipython_extension", "watch",
]

_WIDGETS = ("watch", "monitor", "crash_lab", "crash_lab_compare", "show_plan")


def load_ipython_extension(ipython: InteractiveShell) -> None:
    """Register the rwmagic magics with ``ipython`` (called by ``%load_ext rwmagic``)."""
    from rwmagic.magic import StreamSqlMagic

    ipython.register_magics(StreamSqlMagic)


def unload_ipython_extension(ipython: InteractiveShell) -> None:
    """Remove the magics (``%unload_ext`` / ``%reload_ext rwmagic``).

    The engine keeps running, with its tables and views: ``rwmagic.close_engine()``
    stops it.
    """
    from rwmagic.magic import StreamSqlMagic

    for kind in ("line", "cell"):
        ipython.magics_manager.magics[kind].pop("stream_sql", None)
    ipython.configurables[:] = [c for c in ipython.configurables
                                if not isinstance(c, StreamSqlMagic)]


def __getattr__(name: str) -> Any:
    """The widget entry points, imported from ``rwmagic.widgets`` when first used."""
    if name in _WIDGETS:
        widgets = importlib.import_module("rwmagic.widgets")
        return getattr(widgets, name)
    raise AttributeError(f"module 'rwmagic' has no attribute {name!r}")
