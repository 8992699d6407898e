"""Exactly-once delivery across real process deaths: a child process feeds a pipeline with
two PostgreSQL sinks (append-only rows, upsert aggregate) and is SIGKILLed several times,
each time at a random moment (while ingesting, or while starting and recovering); a new
child recovers and goes on. In the end the append-only target holds every row of the
recovered table exactly once and the upsert target equals the recovered view."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

from ._pg import make_table, normalized, pg_rows

REPO = Path(__file__).resolve().parents[2]
KILLS = (("ingest", 0.5, 2.5), ("start", 0.3, 1.5), ("ingest", 0.5, 2.5))
TIMEOUT_S = 60

CHILD = '''
import json, os, sys
import pyarrow as pa
import kernel_engine

location, mode, first = sys.argv[1], sys.argv[2], int(sys.argv[3])
opts = os.environ["PG_SINK_OPTIONS"]
raw, agg = os.environ["PG_RAW"], os.environ["PG_AGG"]
db = kernel_engine.connect(location, barrier_interval_ms=100)
db.execute("CREATE TABLE IF NOT EXISTS ev (id BIGINT, k INT, v INT)")
db.execute("CREATE MATERIALIZED VIEW IF NOT EXISTS ev_by_k AS "
           "SELECT k, SUM(v) AS s, COUNT(*) AS n FROM ev GROUP BY k")
db.execute(f"CREATE SINK IF NOT EXISTS raw_sink FROM ev WITH ({opts}, table.name = '{raw}', "
           "type = 'append-only')")
db.execute(f"CREATE SINK IF NOT EXISTS agg_sink FROM ev_by_k WITH ({opts}, "
           f"table.name = '{agg}', type = 'upsert', primary_key = 'k')")
if mode == "final":
    db.execute("FLUSH")
    out = {name: db.execute(f"SELECT * FROM {name}").fetchall() for name in ("ev", "ev_by_k")}
    print("final " + json.dumps(out, default=float), flush=True)
    print("sinks " + json.dumps(db.progress.sinks), flush=True)
    db.close()
    sys.exit(0)
top = db.execute("SELECT max(id) FROM ev").fetchone()[0]
first = max(first, (top or 0) + 1)
print(f"resume {first}", flush=True)
n = 0
while True:
    ids = list(range(first, first + 100))
    db.insert("ev", pa.table({"id": pa.array(ids, pa.int64()),
                              "k": pa.array([i * 7919 % 13 for i in ids], pa.int32()),
                              "v": pa.array([i % 100 - 50 for i in ids], pa.int32())}))
    print(f"ack {first + 99}", flush=True)
    first += 100
    n += 1
    if n % 5 == 0:
        db.execute("FLUSH")
'''


def run_child(script: Path, location: str, env: dict[str, str], mode: str, first: int,
              kill: tuple[str, float] | None) -> list[str]:
    proc = subprocess.Popen([sys.executable, str(script), location, mode, str(first)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                            text=True)
    lines: list[str] = []
    ingesting = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip())
            if line.startswith("resume"):
                ingesting.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        if kill is not None:
            moment, seconds = kill
            if moment == "ingest":
                assert ingesting.wait(TIMEOUT_S), "child never began ingesting:\n" + "\n".join(
                    lines[-30:])
            time.sleep(seconds)
            proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=TIMEOUT_S)
        reader.join(timeout=TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    expected = -signal.SIGKILL if kill is not None else 0
    assert proc.returncode == expected, f"child exited {proc.returncode}:\n" + "\n".join(
        lines[-30:])
    return lines


def test_sigkill_with_postgres_sinks(tmp_path, pg_server):
    import json

    pg = pg_server
    raw = make_table(pg, "id BIGINT, k INT, v INT", prefix="raw")
    agg = make_table(pg, "k INT PRIMARY KEY, s BIGINT, n BIGINT", prefix="agg")
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    options = (f"connector = 'jdbc', jdbc.url = '{pg.jdbc_url}', user = '{pg.user}', "
               f"password = '{pg.password}'")
    env = {**os.environ, "PG_SINK_OPTIONS": options, "PG_RAW": raw, "PG_AGG": agg,
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    location = str(tmp_path / "state")
    rng = random.Random(4)
    first = 1
    acked = 0
    for moment, low, high in KILLS:
        lines = run_child(script, location, env, "ingest", first, (moment, rng.uniform(low, high)))
        acks = [int(x.split()[1]) for x in lines if x.startswith("ack ")]
        if acks:
            first = acks[-1] + 1
            acked = max(acked, acks[-1])
    assert acked > 0, "no child lived long enough to acknowledge a batch"
    lines = run_child(script, location, env, "final", first, None)
    final = json.loads(next(x for x in lines if x.startswith("final "))[6:])
    ids = Counter(row[0] for row in final["ev"])
    assert all(n == 1 for n in ids.values()) and set(range(1, acked + 1)) <= set(ids)
    got = Counter(r[0] for r in pg_rows(pg, raw))
    assert got == ids, f"target duplicated {got - ids}, lost {ids - got}"
    assert pg_rows(pg, agg) == normalized(sorted(tuple(r) for r in final["ev_by_k"]))
