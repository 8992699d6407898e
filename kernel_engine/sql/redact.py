"""Masking secrets (passwords, secret keys) in statement text, options and messages.

Anything shown to a user (SHOW CREATE SINK, EXPLAIN, errors, progress, widgets) passes
through here, so a password typed in `CREATE SINK ... WITH (password = '...')` never
appears outside the catalog.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

__all__ = ["MASK", "is_secret", "redact_options", "redact_text"]

MASK = "***"

_SECRET_KEY = re.compile(r"(password|passwd|secret|token|credentials?\.secret)", re.I)
_OPTION = re.compile(r"([\w.]+)(\s*=\s*)'((?:[^']|'')*)'")
_URL_USERINFO = re.compile(r"(://[^/:@\s']+:)([^@\s']+)(@)")
_URL_PASSWORD = re.compile(r"([?&;]password=)([^&;\s']+)", re.I)
_DSN_PASSWORD = re.compile(r"(\bpassword\s*=\s*)('(?:[^']|'')*'|[^\s',;&)]+)", re.I)


def is_secret(key: str) -> bool:
    """Whether an option of this name holds a secret."""
    return bool(_SECRET_KEY.search(key))


def redact_options(options: Mapping[str, str]) -> dict[str, str]:
    """The options with every secret value masked (and passwords inside URLs)."""
    return {k: MASK if is_secret(k) else _redact_urls(v) for k, v in options.items()}


def _redact_urls(text: str) -> str:
    text = _URL_USERINFO.sub(lambda m: m.group(1) + MASK + m.group(3), text)
    return _URL_PASSWORD.sub(lambda m: m.group(1) + MASK, text)


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Statement text or a message with secrets masked: `password = '...'` options, URL
    passwords, libpq `password=...`, and every literal occurrence of `secrets`."""
    text = _OPTION.sub(lambda m: m.group(1) + m.group(2) + (
        f"'{MASK}'" if is_secret(m.group(1)) else "'" + _redact_urls(m.group(3)) + "'"), text)
    text = _redact_urls(text)
    text = _DSN_PASSWORD.sub(lambda m: m.group(1) + (
        m.group(2) if m.group(2) in (f"'{MASK}'", MASK) else
        f"'{MASK}'" if m.group(2).startswith("'") else MASK), text)
    for secret in secrets:
        if secret and len(secret) >= 3:
            text = text.replace(secret, MASK)
    return text
