"""Exactly-once across real process deaths: SIGKILL a child mid-ingestion, recover, repeat.

A child process connects to a checkpoint location (recovering whatever is there), creates
`ev` and two views if they are missing, then inserts batches of rows with consecutive ids
forever, printing each id range once the insert call has returned (acknowledged). The
parent kills it with SIGKILL at random moments, several times, each time starting a new
child that resumes after the last acknowledged id. A final child recovers, FLUSHes and
prints everything as JSON. Then:

- every acknowledged id is present exactly once;
- a batch that was never acknowledged is present entirely or not at all, never twice;
- both views equal DuckDB's evaluation over the recovered table.

Runs on a local folder and on S3 (moto on loopback).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa

REPO = Path(__file__).resolve().parents[1]
BATCH = 200
KEYS = 50
# When each child dies: seconds after it began ingesting, or (the second one) after it was
# started, which may be in the middle of its recovery.
KILLS = (("ingest", 1.0, 4.0), ("start", 0.2, 2.0), ("ingest", 1.0, 4.0), ("ingest", 1.0, 4.0))
CHILD_TIMEOUT_S = 60

CHILD = '''
import json, os, sys
import pyarrow as pa
import kernel_engine

location, mode, first = sys.argv[1], sys.argv[2], int(sys.argv[3])
BATCH, KEYS = {batch}, {keys}
options = json.loads(os.environ.get("KE_STORAGE_OPTIONS", "null"))
db = kernel_engine.connect(location, storage_options=options, barrier_interval_ms=100)
db.execute("CREATE TABLE IF NOT EXISTS ev (id BIGINT, k INT, v INT)")
db.execute("CREATE MATERIALIZED VIEW IF NOT EXISTS ev_by_k AS "
           "SELECT k, SUM(v) AS s, COUNT(*) AS n FROM ev GROUP BY k")
db.execute("CREATE MATERIALIZED VIEW IF NOT EXISTS ev_count AS SELECT COUNT(*) AS n FROM ev")
if mode == "final":
    db.execute("FLUSH")
    out = {{name: db.execute(f"SELECT * FROM {{name}}").arrow().to_pydict()
            for name in ("ev", "ev_by_k", "ev_count")}}
    print("final " + json.dumps(out), flush=True)
    db.close()
    sys.exit(0)
top = db.execute("SELECT max(id) FROM ev").fetchone()[0]
first = max(first, (top or 0) + 1)  # a recovered, never acknowledged batch is not redone
print(f"resume {{first}}", flush=True)
n = 0
while True:
    ids = list(range(first, first + BATCH))
    ks = [i * 7919 % KEYS for i in ids]
    vs = [i * 104729 % 1000 - 500 for i in ids]
    if n % 3 == 2:
        db.execute("INSERT INTO ev VALUES " + ", ".join(
            f"({{i}}, {{k}}, {{v}})" for i, k, v in zip(ids, ks, vs)))
    else:
        db.insert("ev", pa.table({{"id": pa.array(ids, pa.int64()), "k": pa.array(ks, pa.int32()),
                                  "v": pa.array(vs, pa.int32())}}))
    print(f"ack {{first}} {{first + BATCH - 1}}", flush=True)
    first += BATCH
    n += 1
    if n % 4 == 0:
        db.execute("FLUSH")
'''


@dataclass
class Child:
    """What one child printed before it died."""

    resume: int | None = None
    acked: list[tuple[int, int]] = field(default_factory=list)
    final: dict | None = None
    other: list[str] = field(default_factory=list)  # warnings, tracebacks

    @property
    def in_flight(self) -> range | None:
        """The batch it may have been inserting when it was killed."""
        if self.resume is None:
            return None
        start = self.acked[-1][1] + 1 if self.acked else self.resume
        return range(start, start + BATCH)


def run_child(script: Path, location: str, env: dict[str, str], mode: str, first: int,
              kill: tuple[str, float] | None) -> Child:
    """Run a child; with `kill` = (moment, seconds), SIGKILL it that long after it started
    ("start") or after it began ingesting ("ingest")."""
    proc = subprocess.Popen([sys.executable, str(script), location, mode, str(first)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                            text=True)
    child = Child()
    ingesting = threading.Event()
    reader = threading.Thread(target=read_lines, args=(proc, child, ingesting), daemon=True)
    reader.start()
    try:
        if kill is not None:
            moment, seconds = kill
            if moment == "ingest":
                assert ingesting.wait(CHILD_TIMEOUT_S), "child never began ingesting"
            time.sleep(seconds)
            proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=CHILD_TIMEOUT_S)
        reader.join(timeout=CHILD_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    expected_rc = -signal.SIGKILL if kill is not None else 0
    assert proc.returncode == expected_rc, (f"child exited with {proc.returncode}:\n"
                                            + "\n".join(child.other[-30:]))
    return child


def read_lines(proc: subprocess.Popen[str], child: Child, ingesting: threading.Event) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        word, _, rest = line.strip().partition(" ")
        if word == "resume":
            child.resume = int(rest)
            ingesting.set()
        elif word == "ack":
            lo, hi = map(int, rest.split())
            child.acked.append((lo, hi))
        elif word == "final":
            child.final = json.loads(rest)
        else:
            child.other.append(line.rstrip())


def ingest_with_kills(tmp_path: Path, location: str, extra_env: dict[str, str],
                      seed: int) -> tuple[list[Child], dict]:
    script = tmp_path / "child.py"
    script.write_text(CHILD.format(batch=BATCH, keys=KEYS))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep), **extra_env}
    rng = random.Random(seed)
    children: list[Child] = []
    next_id = 1
    for moment, low, high in KILLS:
        child = run_child(script, location, env, "ingest", next_id,
                          (moment, rng.uniform(low, high)))
        children.append(child)
        if child.acked:
            next_id = child.acked[-1][1] + 1
    final = run_child(script, location, env, "final", next_id, None)
    assert final.final is not None
    return children, final.final


def check(children: list[Child], final: dict) -> None:
    acked = {i for c in children for lo, hi in c.acked for i in range(lo, hi + 1)}
    assert acked, "no child lived long enough to acknowledge a batch"
    counts = Counter(final["ev"]["id"])
    twice = sorted(i for i, n in counts.items() if n > 1)
    assert not twice, f"ids present more than once: {twice[:10]}"
    missing = sorted(acked - counts.keys())
    assert not missing, f"acknowledged ids lost: {len(missing)}, first {missing[:10]}"
    unacked = set(counts) - acked
    batches = [set(c.in_flight) for c in children if c.in_flight is not None]
    for batch in batches:
        assert not (batch & unacked) or batch <= unacked, "a batch was applied in part"
    stray = unacked - set().union(*batches)
    assert not stray, f"ids nobody tried to insert: {sorted(stray)[:10]}"

    ev = pa.table(final["ev"])
    oracle = duckdb.connect()
    oracle.register("ev", ev)
    by_k = oracle.sql("SELECT k, SUM(v) AS s, COUNT(*) AS n FROM ev GROUP BY k "
                      "ORDER BY k").fetchall()
    got = sorted(zip(final["ev_by_k"]["k"], final["ev_by_k"]["s"], final["ev_by_k"]["n"],
                     strict=True))
    assert got == [tuple(r) for r in by_k]
    assert final["ev_count"]["n"] == [ev.num_rows]


def test_sigkill_local_folder(tmp_path):
    children, final = ingest_with_kills(tmp_path, str(tmp_path / "checkpoints"), {}, seed=1)
    check(children, final)


def test_sigkill_s3(tmp_path, s3_server, s3_bucket):
    options = json.dumps(s3_server.storage_options())
    children, final = ingest_with_kills(tmp_path, f"s3://{s3_bucket}/sigkill",
                                        {"KE_STORAGE_OPTIONS": options}, seed=2)
    check(children, final)
