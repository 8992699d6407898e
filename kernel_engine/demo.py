"""`make demo`: the article's examples 1-4, run verbatim through the engine.

Prints every statement and, for queries, its result table. The SQL (in
`kernel_engine.article`) is copied exactly as printed in "Consistency Guarantees
in Streaming Systems".
"""

from __future__ import annotations

import sys

import kernel_engine
from kernel_engine.article import EXAMPLES
from kernel_engine.result import Result
from kernel_engine.sql.split import split_statements

__all__ = ["EXAMPLES", "format_table", "main", "run_examples"]


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    return "" if value is None else str(value)


def format_table(result: Result) -> str:
    """A result in psql's aligned format (DOUBLE values with two decimals)."""
    table = result.arrow()
    names = table.column_names
    rows = [[_cell(v) for v in row] for row in result.fetchall()]
    widths = [max([len(n)] + [len(r[i]) for r in rows]) for i, n in enumerate(names)]
    numeric = [all(_is_number(r[i]) for r in rows) and rows != [] for i in range(len(names))]
    header = " | ".join(n.center(w) for n, w in zip(names, widths, strict=True))
    rule = "-+-".join("-" * w for w in widths)
    body = [" | ".join(v.rjust(w) if num else v.ljust(w)
                       for v, w, num in zip(r, widths, numeric, strict=True)) for r in rows]
    return "\n".join([" " + header, "-" + rule + "-", *(" " + b for b in body)])


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def run_examples(db: kernel_engine.Connection,
                 out: object = sys.stdout) -> list[tuple[str, Result]]:
    """Run every statement of examples 1-4; return (statement, result) of each query."""
    results: list[tuple[str, Result]] = []
    for title, sql in EXAMPLES:
        print(f"== {title}\n", file=out)  # type: ignore[call-overload]
        for piece in split_statements(sql):
            print(piece.text + ";", file=out)  # type: ignore[call-overload]
            result = db.execute(piece.text)
            if result.description is not None:
                print("\nOutput:\n\n" + format_table(result), file=out)  # type: ignore[call-overload]
                results.append((piece.text, db.execute(piece.text)))
            print(file=out)  # type: ignore[call-overload]
    return results


def main() -> None:
    """Entry point of `make demo`."""
    with kernel_engine.connect() as db:
        run_examples(db)


if __name__ == "__main__":
    main()
