"""`make demo`: the article's examples 1-4, then the crash lab under each guarantee.

Part 1 prints every statement of examples 1-4 and, for queries, its result
table. The SQL (in `kernel_engine.article`) is copied exactly as printed in
"Consistency Guarantees in Streaming Systems".

Part 2 runs the article's example-2 pipeline against a checkpoint folder under
each delivery guarantee, crashes the engine after the barrier snapshot (state
taken, checkpoint not yet durable), recovers, finishes the workload, and prints
the views and the verdict: events duplicated and lost, per view.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

import kernel_engine
from kernel_engine.article import EXAMPLES
from kernel_engine.meta.crashlab import ARTICLE_WORKLOAD, CrashLabResult, CrashLabRun
from kernel_engine.meta.durability import GUARANTEES
from kernel_engine.result import Result
from kernel_engine.sql.split import split_statements

__all__ = ["CRASH_AT", "EXAMPLES", "format_rows", "format_table", "main", "run_crash_lab",
           "run_examples"]

CRASH_AT = "after_snapshot"  # where part 2 crashes: state snapshotted, not yet durable


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    return "" if value is None else str(value)


def format_table(result: Result) -> str:
    """A result in psql's aligned format (DOUBLE values with two decimals)."""
    return format_rows(result.arrow().column_names, result.fetchall())


def format_rows(names: list[str], values: list[tuple[Any, ...]]) -> str:
    """Rows in psql's aligned format (numbers right-aligned, floats with two decimals)."""
    rows = [[_cell(v) for v in row] for row in values]
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


def _step(out: TextIO, text: str) -> None:
    print(f"  {time.strftime('%H:%M:%S')}  {text}", file=out, flush=True)


def run_crash_lab(guarantee: str, at: str = CRASH_AT,
                  out: TextIO = sys.stdout) -> CrashLabResult:
    """One crash-lab run, printing its progress, the view after recovery and the verdict."""
    print(f"== Crash lab: {guarantee}, crash at {at}\n", file=out)
    run = CrashLabRun(ARTICLE_WORKLOAD, at, guarantee)
    try:
        run.start()
        done = run.crash_after
        _step(out, f"ran {done} of {len(run.workload)} statements; committed epoch "
                   f"{run.epochs['before_crash']}")
        run.crash()
        _step(out, f"crashed at {at}: the engine's memory is gone")
        result = run.recover()
        _step(out, f"RECOVER, then the remaining {len(run.workload) - done} statements; "
                   f"committed epoch {run.epochs['after_recovery']}")
    finally:
        run.close()
    view = result.outcomes["cons_user_spend"]
    print("\ncons_user_spend after recovery:\n", file=out)
    print(format_rows(run.columns["cons_user_spend"], sorted(view.observed)), file=out)
    print(file=out)
    return result


def verdicts(results: list[CrashLabResult]) -> str:
    """One row per guarantee and relation: events duplicated and lost, and the verdict."""
    rows = [(r.guarantee, o.name, o.duplicated, o.lost,
             "exact" if o.ok else ("DUPLICATES" if o.duplicated else "LOSSES"))
            for r in results for o in r.outcomes.values()]
    return format_rows(["guarantee", "relation", "duplicated", "lost", "verdict"], rows)


def main() -> None:
    """Entry point of `make demo`."""
    out = sys.stdout
    print("# Part 1: the article's examples 1-4\n", file=out)
    with kernel_engine.connect() as db:
        run_examples(db, out)
    print("# Part 2: a crash under each delivery guarantee\n", file=out)
    results = [run_crash_lab(g, out=out) for g in GUARANTEES]
    print("== Verdicts (against the same workload without a crash)\n", file=out)
    print(verdicts(results), file=out)


if __name__ == "__main__":
    main()
