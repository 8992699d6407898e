"""A ``%%stream_sql`` invocation parsed into a command: options, SQL text, output name.

Options come first on the magic's line and end at the first token that is not
one; the rest of the line (and, for the cell magic, the cell) is SQL, kept
verbatim, so quotes in SQL survive. ``NAME <<`` before the SQL keeps the
result in a variable, like ``-o NAME``. The command also knows where its SQL
sits in the cell, so an error's line/column is reported in cell terms.
"""

from __future__ import annotations

import argparse
import re
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic_arguments import parse_argstring

from rwmagic._template import PLACEHOLDER as _PLACEHOLDER
from rwmagic._template import Substituted, TemplateError, lookup, substitute

__all__ = ["Command", "parse_command"]

_TOKEN = re.compile(r"""\s*('[^']*'|"[^"]*"|\S+)""")
_CAPTURE = re.compile(r"^([A-Za-z_]\w*)\s*<<\s*")


@dataclass
class Command:
    """What one magic call asks for."""

    args: argparse.Namespace
    sql: str                 # after {{name}} substitution
    out: str | None          # variable to keep the result in
    is_cell: bool            # %%stream_sql (cell) or %stream_sql (line)
    first_line: int          # the cell line (1-based) where the SQL's first line sits
    first_col: int           # the column (1-based) where the SQL's first line starts
    template: Substituted

    def position(self, line: int, col: int | None = None) -> str:
        """Describe a (line, col) of ``sql`` in the user's terms: the cell or the line."""
        if col is not None:
            col = self.template.original_column(line, col)
            if line == 1:
                col += self.first_col - 1
        if not self.is_cell:
            return f"column {col}" if col is not None else "the line"
        where = f"line {line + self.first_line - 1}"
        return f"{where}, column {col} of the cell" if col is not None else f"{where} of the cell"


def parse_command(magic: Callable[..., Any], line: str, cell: str | None,
                  namespace: Mapping[str, Any]) -> Command:
    """Split the magic line into options and SQL; substitute ``{{name}}`` values."""
    parser: argparse.ArgumentParser = magic.parser  # type: ignore[attr-defined]
    option_tokens, rest_at = _leading_options(line, parser, namespace)
    args = parse_argstring(magic, shlex.join(option_tokens))
    rest = line[rest_at:]
    out = args.out
    capture = _CAPTURE.match(rest.strip())
    if capture:
        out = capture.group(1)
        rest_at += len(rest) - len(rest.lstrip()) + capture.end()
        rest = line[rest_at:]
    lead = len(rest) - len(rest.lstrip())
    line_sql = rest.strip()
    prefix = len("%%stream_sql " if cell is not None else "%stream_sql ")
    if cell is not None and not line_sql:
        text, first_line, first_col = cell, 2, 1
    elif cell is not None:
        text, first_line, first_col = line_sql + "\n" + cell, 1, prefix + rest_at + lead + 1
    else:
        text, first_line, first_col = line_sql, 1, 1
    try:
        template = substitute(text, namespace)
    except TemplateError as err:
        raise UsageError(str(err)) from None
    return Command(args, template.sql, out, cell is not None, first_line, first_col, template)


def _leading_options(line: str, parser: argparse.ArgumentParser,
                     namespace: Mapping[str, Any]) -> tuple[list[str], int]:
    """The option tokens at the start of ``line`` (unquoted) and where the SQL begins.

    An option value written ``{{name}}`` is the text of that Python variable
    (``--connect {{folder}}``).
    """
    actions = parser._option_string_actions  # the parser's own table of option strings
    tokens: list[str] = []
    pos = 0
    while (m := _TOKEN.match(line, pos)) is not None:
        token = m.group(1)
        if not token.startswith("-") or token == "--" or token.startswith("---"):
            break  # SQL (a `--` comment included)
        name = token.split("=", 1)[0]
        if name not in actions:
            known = ", ".join(sorted(a for a in actions if a.startswith("--")))
            raise UsageError(f"unknown option {name}; %%stream_sql takes {known}")
        tokens.extend(shlex.split(token))
        pos = m.end()
        if actions[name].nargs != 0 and "=" not in token:
            value = _TOKEN.match(line, pos)
            if value is None:
                raise UsageError(f"option {name} needs a value")
            tokens.append(_option_value(value.group(1), namespace))
            pos = value.end()
    return tokens, pos


def _option_value(token: str, namespace: Mapping[str, Any]) -> str:
    """An option's value: unquoted, or the text of a ``{{name}}`` Python variable."""
    placeholder = _PLACEHOLDER.fullmatch(token)
    if placeholder is None:
        return " ".join(shlex.split(token))
    try:
        return str(lookup(placeholder.group(1), namespace))
    except TemplateError as err:
        raise UsageError(str(err)) from None
