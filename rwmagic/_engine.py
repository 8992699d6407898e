"""The kernel's one engine, shared by the ``%%stream_sql`` magic, widgets and Python code.

    >>> import rwmagic
    >>> db = rwmagic.engine()            # started lazily, state in memory
    >>> db is rwmagic.engine()           # the same engine every time
    True
    >>> rwmagic.close_engine()

``engine(location, **options)`` switches to another engine (a checkpoint folder
or ``s3://bucket/prefix``): the old one is closed first, so a kernel never
runs two. Calling it again with the same arguments returns the running engine.
"""

from __future__ import annotations

import inspect
import threading
from typing import Any

import kernel_engine

__all__ = ["close_engine", "current_engine", "engine", "engine_settings"]

_lock = threading.RLock()
_engine: kernel_engine.Connection | None = None
_settings: tuple[str | None, dict[str, Any]] = (None, {})


def engine(location: str | None = None, **options: Any) -> kernel_engine.Connection:
    """Return the kernel's engine, starting it on first use.

    With no arguments: the running engine, or a new in-memory one. With a
    ``location`` (local folder or ``s3://...``) or options for
    ``kernel_engine.connect`` (``storage_options``, ``delivery_guarantee``,
    ``barrier_interval_ms``, ``checkpoint_retention``): the engine for those
    settings, replacing (closing) the running one unless it already matches.
    """
    global _engine, _settings
    with _lock:
        wanted = (location, _with_defaults(options))
        asked = location is not None or bool(options)
        running = _engine is not None and not _engine._closed
        if running and (not asked or wanted == _settings):
            assert _engine is not None
            return _engine
        close_engine()
        _engine = kernel_engine.connect(location, **options)
        _settings = wanted
        return _engine


def _with_defaults(options: dict[str, Any]) -> dict[str, Any]:
    """``options`` completed with ``kernel_engine.connect``'s defaults, to compare settings."""
    defaults = {name: p.default for name, p in
                inspect.signature(kernel_engine.connect).parameters.items()
                if p.kind is p.KEYWORD_ONLY}
    return {**defaults, **options}


def current_engine() -> kernel_engine.Connection | None:
    """The running engine, or None when none was started (or it was closed)."""
    with _lock:
        if _engine is None or _engine._closed:
            return None
        return _engine


def engine_settings() -> tuple[str | None, dict[str, Any]]:
    """The location and options the running engine was started with."""
    with _lock:
        return _settings[0], dict(_settings[1])


def close_engine() -> None:
    """Stop the kernel's engine, if any; the next ``engine()`` starts a fresh one."""
    global _engine, _settings
    with _lock:
        if _engine is not None:
            try:
                _engine.close()
            finally:
                _engine = None
                _settings = (None, {})
