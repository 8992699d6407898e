"""SQL front end: parse, bind and plan (SQL text to a streaming plan)."""

from __future__ import annotations

__all__: list[str] = []
