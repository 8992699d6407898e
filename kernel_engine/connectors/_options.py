"""Typed access to WITH (...) options that names the option in every error.

`Options` remembers which keys were read, so a connector can reject the
ones it does not know (a typo such as `fields.id.kindd` is an error, not a
silently ignored option).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from kernel_engine.errors import BindError

__all__ = ["Options", "parse_seconds"]

_TRUE = {"true", "t", "1", "yes", "on"}
_FALSE = {"false", "f", "0", "no", "off"}


class Options:
    """The options of one connector, read by key with typed getters."""

    def __init__(self, options: Mapping[str, str], connector: str) -> None:
        self._options = {key.strip().lower(): str(value) for key, value in options.items()}
        self._used: set[str] = {"connector"}
        self.connector = connector

    def keys(self) -> list[str]:
        """Return every option key (lower-cased)."""
        return list(self._options)

    def text(self, key: str, default: str | None = None) -> str | None:
        """Return the option's value, or `default` if absent."""
        self._used.add(key)
        return self._options.get(key, default)

    def require(self, *keys: str) -> str:
        """Return the value of the first of `keys` that is present; error if none is."""
        for key in keys:
            value = self.text(key)
            if value is not None:
                return value
        names = " or ".join(f"'{key}'" for key in keys)
        raise BindError(f"connector '{self.connector}' needs the option {names}")

    def integer(self, key: str, default: int | None = None) -> int | None:
        """Return the option as an int (error naming the option if it is not one)."""
        value = self.text(key)
        if value is None:
            return default
        try:
            return int(value.strip())
        except ValueError:
            raise BindError(f"option '{key}' must be an integer, got '{value}'") from None

    def number(self, key: str, default: float | None = None) -> float | None:
        """Return the option as a float (error naming the option if it is not a number)."""
        value = self.text(key)
        if value is None:
            return default
        try:
            return float(value.strip())
        except ValueError:
            raise BindError(f"option '{key}' must be a number, got '{value}'") from None

    def positive(self, key: str, default: float) -> float:
        """Return the option as a float > 0."""
        value = self.number(key, default)
        assert value is not None
        if not value > 0:
            raise BindError(f"option '{key}' must be greater than 0, got '{self.text(key)}'")
        return value

    def boolean(self, key: str, default: bool) -> bool:
        """Return the option as a bool ('true'/'false' and the usual spellings)."""
        value = self.text(key)
        if value is None:
            return default
        word = value.strip().lower()
        if word in _TRUE or word in _FALSE:
            return word in _TRUE
        raise BindError(f"option '{key}' must be true or false, got '{value}'")

    def choice(self, key: str, choices: Iterable[str], default: str) -> str:
        """Return the option lower-cased, which must be one of `choices`."""
        value = self.text(key)
        if value is None:
            return default
        allowed = list(choices)
        word = value.strip().lower()
        if word not in allowed:
            listed = ", ".join(f"'{c}'" for c in allowed)
            raise BindError(f"option '{key}' must be one of {listed}, got '{value}'")
        return word

    def seconds(self, key: str, default: float) -> float:
        """Return an interval option ('30', '2h 37min', '1 day') in seconds."""
        value = self.text(key)
        if value is None:
            return default
        try:
            return parse_seconds(value)
        except ValueError:
            raise BindError(
                f"option '{key}' must be an interval such as '30s', '2h 37min' or '1 day', "
                f"got '{value}'"
            ) from None

    def reject_unknown(self, ignored: Iterable[str] = ()) -> None:
        """Raise a BindError naming the first option that no getter read."""
        skip = set(ignored)
        for key in self._options:
            if key not in self._used and key not in skip:
                raise BindError(f"unknown option '{key}' for connector '{self.connector}'")


_UNITS = {
    "us": 1e-6, "usec": 1e-6, "microsecond": 1e-6, "microseconds": 1e-6,
    "ms": 1e-3, "msec": 1e-3, "millisecond": 1e-3, "milliseconds": 1e-3,
    "s": 1.0, "sec": 1.0, "secs": 1.0, "second": 1.0, "seconds": 1.0,
    "m": 60.0, "min": 60.0, "mins": 60.0, "minute": 60.0, "minutes": 60.0,
    "h": 3600.0, "hr": 3600.0, "hour": 3600.0, "hours": 3600.0,
    "d": 86400.0, "day": 86400.0, "days": 86400.0,
}
_PART = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-z]*)\s*")


def parse_seconds(text: str) -> float:
    """Parse '30', '1.5s', '2h 37min', '1 day' into seconds; ValueError otherwise."""
    words = text.strip().lower().strip("'")
    if not words:
        raise ValueError(text)
    total, pos = 0.0, 0
    while pos < len(words):
        match = _PART.match(words, pos)
        if match is None or match.end() == pos:
            raise ValueError(text)
        unit = match.group(2) or "s"
        if unit not in _UNITS:
            raise ValueError(text)
        total += float(match.group(1)) * _UNITS[unit]
        pos = match.end()
    return total
