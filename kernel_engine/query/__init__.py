"""Ad-hoc queries over committed state."""

from __future__ import annotations

from kernel_engine.query.adhoc import translate_query

__all__ = ["translate_query"]
