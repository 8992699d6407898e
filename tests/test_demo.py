"""`make demo`: the article's examples, then a crash under each guarantee, with verdicts."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from contextlib import redirect_stdout
from pathlib import Path

from kernel_engine import demo


def test_demo_prints_examples_crashes_and_verdicts() -> None:
    out = io.StringIO()
    with redirect_stdout(out):
        demo.main()
    text = out.getvalue()
    assert "# Part 1" in text and "# Part 2" in text
    assert text.count("crashed at after_snapshot") == 3
    verdicts = text.split("== Verdicts", 1)[1]
    rows = {(m[0], m[1]): (int(m[2]), int(m[3]), m[4]) for m in re.findall(
        r"^ (\w+)\s+\| (\w+)\s+\|\s+(\d+) \|\s+(\d+) \| (\w+)", verdicts, re.M)}
    assert rows[("exactly_once", "cons_user_spend")] == (0, 0, "exact")
    assert rows[("exactly_once", "cons_events")] == (0, 0, "exact")
    dup, lost, verdict = rows[("at_least_once", "cons_user_spend")]
    assert dup > 0 and lost == 0 and verdict == "DUPLICATES"
    dup, lost, verdict = rows[("at_most_once", "cons_user_spend")]
    assert dup == 0 and lost > 0 and verdict == "LOSSES"
    # the exactly-once view after recovery is the article's example-2 table plus the
    # workload's later events: user 42 with 3 purchases, 1 refund, 440.00
    exact = text.split("== Crash lab: exactly_once", 1)[1].split("== Crash lab", 1)[0]
    assert re.search(r"^\s+42 \|\s+3 \|\s+1 \|\s+440\.00$", exact, re.M), exact


def test_make_demo_runs_as_a_module() -> None:
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-m", "kernel_engine.demo"], cwd=root,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "== Verdicts" in done.stdout and not done.stderr.strip()
