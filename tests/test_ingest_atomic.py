"""kill -9 during ingest: the store is exactly as before the batch or after it, and opens fine."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from buyerscore.events.store import EventStore

N_ROWS = 300_000
CHUNK_ROWS = 100_000  # three chunks in one transaction: kills also land between chunks
N_KILLS = 4

# The child reports each step on stdout, so kills can be aimed at the write/commit window too.
CHILD = """
import sys, time
from buyerscore.events.store import EventStore
store = EventStore(sys.argv[1])
print("opened", time.monotonic(), flush=True)
store.ingest_file(sys.argv[2], chunk_rows=int(sys.argv[3]),
                  on_step=lambda m: print(m.split()[0], time.monotonic(), flush=True))
store.close()
print("done", time.monotonic(), flush=True)
"""


def _big_csv(path: Path, n: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    ts = pd.Timestamp("2023-01-01") + pd.to_timedelta(rng.integers(0, 86400 * 365, n), unit="s")
    df = pd.DataFrame({
        "user_id": "u" + pd.Series(rng.integers(0, 20_000, n)).astype(str),
        "ts": pd.Series(ts.strftime("%Y-%m-%dT%H:%M:%S")),
        "event_type": rng.choice(["view", "cart", "purchase", "refund"], n),
        "item_id": "i" + pd.Series(rng.integers(0, 5_000, n)).astype(str),
        "amount": np.round(rng.gamma(2.0, 15.0, n), 2).astype(str),
    })
    df.loc[rng.choice(n, n // 100, replace=False), "ts"] = "not a time"  # 1% rejects
    df.to_csv(path, index=False)


def _state(db: Path) -> dict[str, object]:
    """Counts, plus whether every table agrees with the batch records."""
    with EventStore(db) as s:
        con = s.con
        events, rejects = con.execute("SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM rejects)").fetchone()
        batches = con.execute("SELECT batch_id, summary FROM ingest_batches").fetchall()
        ev_by = dict(con.execute("SELECT batch_id, count(*) FROM events GROUP BY 1").fetchall())
        rej_by = dict(con.execute("SELECT batch_id, count(*) FROM rejects GROUP BY 1").fetchall())
    sums = {b: json.loads(js) for b, js in batches}
    consistent = (set(ev_by) <= set(sums) and set(rej_by) <= set(sums)
                  and all(ev_by.get(b, 0) == v["inserted"] and rej_by.get(b, 0) == v["rejected"] for b, v in sums.items()))
    return {"events": events, "rejects": rejects, "batches": len(batches), "consistent": consistent}


def _child(db: Path, src: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-c", CHILD, str(db), str(src), str(CHUNK_ROWS)], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env=env)


@pytest.mark.slow
def test_kill_9_leaves_store_before_or_after_the_batch(tmp_path):
    src = tmp_path / "big.csv"
    _big_csv(src, N_ROWS)
    small = tmp_path / "small.csv"
    small.write_text("user_id,ts,event_type\nu1,2024-01-01,view\nu2,bad,view\n")

    base = tmp_path / "base.duckdb"
    with EventStore(base) as s:
        s.ingest_file(small)
    before = _state(base)
    assert before == {"events": 1, "rejects": 1, "batches": 1, "consistent": True}

    # a full run: the after state and how long each step takes
    full = tmp_path / "full.duckdb"
    shutil.copy(base, full)
    p = _child(full, src)
    marks: dict[str, float] = {}
    for line in p.stdout:  # type: ignore[union-attr]
        marks.setdefault(line.split()[0], float(line.split()[1]))  # first time each step starts
    assert p.wait() == 0
    after = _state(full)
    assert after["events"] == 1 + N_ROWS - N_ROWS // 100 and after["rejects"] == 1 + N_ROWS // 100
    assert after["batches"] == 2 and after["consistent"]
    store_window = marks["done"] - marks["storing"]

    rng = random.Random(int(os.environ.get("BUYERSCORE_KILL_SEED", "20240301")))
    seen = []
    for k in range(N_KILLS):
        db = tmp_path / f"kill{k}.duckdb"
        shutil.copy(base, db)
        p = _child(db, src)
        assert p.stdout is not None
        # first kill while the first chunk is validated; the others between the first write and the commit
        # (chunks 2 and 3 are validated and written in that window) or just after it
        wait_for = "validating" if k == 0 else "storing"
        for line in p.stdout:
            if line.startswith(wait_for):
                break
        time.sleep(rng.uniform(0.0, 0.4) if k == 0 else rng.uniform(0.0, 1.2 * store_window))
        p.send_signal(signal.SIGKILL)
        p.wait()
        got = _state(db)  # opening replays DuckDB's WAL
        assert got in (before, after), (k, got)
        seen.append("after" if got == after else "before")
        if seen.count(seen[-1]) == 1:  # the store stays usable: ingesting again gives the batch exactly once
            with EventStore(db) as s:
                s.ingest_file(src)
            assert _state(db) == after
    print("kill outcomes:", seen, f"store window {store_window:.2f}s")
    assert seen[0] == "before"
