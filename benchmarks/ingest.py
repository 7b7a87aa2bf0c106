"""Ingestion benchmark: validation and a full `ingest_file` of N synthetic rows (default 1,000,000).

Run from the repository root:

    python benchmarks/ingest.py            # N = 1,000,000, writes benchmarks/results/ingest.{json,md}
    python benchmarks/ingest.py --rows 200000 --no-write

Each measurement runs in a fresh child process so that its peak memory (ru_maxrss) is its own.
After the file, 60 single-event frames are ingested one call each (the API path; the first 10 are
not counted) and their median and p90 latency are reported.
5% of the rows are planted bad (bad timestamp, unknown type, empty user), no event_id column,
so event ids are derived: the path a user's own file takes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from buyerscore.events.store import DEFAULT_CHUNK_ROWS

HERE = Path(__file__).resolve().parent


def make_csv(path: Path, n: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    ts = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 86400 * 365, n), unit="s")
    df = pd.DataFrame({
        "user_id": "u" + pd.Series(rng.integers(0, 50_000, n)).astype(str),
        "ts": pd.Series(ts.strftime("%Y-%m-%d %H:%M:%S")),
        "event_type": rng.choice(["view", "click", "cart", "purchase", "refund", "favorite"], n),
        "item_id": "i" + pd.Series(rng.integers(0, 9_000, n)).astype(str),
        "quantity": rng.integers(1, 5, n).astype(str),
        "amount": np.round(rng.gamma(2.0, 20.0, n), 2).astype(str),
        "currency": "USD",
    })
    k = n // 20
    idx = rng.choice(n, k, replace=False)
    df.loc[idx[: k // 3], "ts"] = "not-a-date"
    df.loc[idx[k // 3: 2 * k // 3], "event_type"] = "teleport"
    df.loc[idx[2 * k // 3:], "user_id"] = ""
    df.to_csv(path, index=False)


CHILD = r"""
import json, resource, sys, time
mode, src, db = sys.argv[1], sys.argv[2], sys.argv[3]
from buyerscore.events.io import read_input
from buyerscore.events.store import EventStore
from buyerscore.events.validate import validate_events
out = {}
if mode == "validate":
    t = time.perf_counter(); inp = read_input(src); out["read_s"] = time.perf_counter() - t
    c = time.process_time(); t = time.perf_counter(); res = validate_events(inp.frame)
    out["validate_s"] = time.perf_counter() - t; out["validate_cpu_s"] = time.process_time() - c
    out.update(read=res.read, accepted=len(res.accepted), rejected=len(res.rejects))
else:
    c = time.process_time(); t = time.perf_counter()
    with EventStore(db) as s:
        sm = s.ingest_file(src)
    out["ingest_s"] = time.perf_counter() - t; out["ingest_cpu_s"] = time.process_time() - c
    out.update(read=sm.read, accepted=sm.accepted, rejected=sm.rejected, by_reason=sm.by_reason)
    t = time.perf_counter()
    with EventStore(db) as s:
        again = s.ingest_file(src)
    out["reingest_s"] = time.perf_counter() - t
    out["reingest_inserted"] = again.inserted
    # the API path: one new event per call (POST /v1/events), each its own committed transaction
    import pandas as pd
    with EventStore(db) as s:
        lat = []
        for i in range(60):
            one = pd.DataFrame([{"event_id": f"single-{i}", "user_id": "u1", "ts": "2024-06-01 10:00:00",
                                 "event_type": "purchase", "amount": 12.5, "currency": "USD"}]).astype(object)
            t = time.perf_counter()
            s.ingest_frame(one, source="api")
            lat.append(time.perf_counter() - t)
    lat = sorted(lat[10:])  # the first calls warm caches
    out["single_event_ms_median"] = 1000 * lat[len(lat) // 2]
    out["single_event_ms_p90"] = 1000 * lat[int(0.9 * len(lat))]
out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out))
"""


def child(mode: str, src: Path, db: Path) -> dict[str, object]:
    r = subprocess.run([sys.executable, "-c", CHILD, mode, str(src), str(db)], capture_output=True, text=True,
                       check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--no-write", action="store_true", help="Print only; do not write benchmarks/results.")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        src, db = Path(d) / "events.csv", Path(d) / "store.duckdb"
        make_csv(src, args.rows)
        size_mb = src.stat().st_size / 2**20
        val = child("validate", src, db)
        ing = child("ingest", src, db)
    result = {
        "rows": args.rows, "csv_mb": round(size_mb, 1),
        "read_csv_s": round(float(val["read_s"]), 2), "validate_s": round(float(val["validate_s"]), 2),
        "validate_cpu_s": round(float(val["validate_cpu_s"]), 2),
        "load_average_1min": round(os.getloadavg()[0], 1),
        "validate_rows_per_s": round(args.rows / float(val["validate_s"])),
        "validate_peak_rss_mb": round(float(val["peak_rss_mb"])),
        "ingest_chunk_rows": DEFAULT_CHUNK_ROWS,
        "ingest_file_s": round(float(ing["ingest_s"]), 2), "ingest_file_cpu_s": round(float(ing["ingest_cpu_s"]), 2), "ingest_peak_rss_mb": round(float(ing["peak_rss_mb"])),
        "reingest_same_file_s": round(float(ing["reingest_s"]), 3), "reingest_inserted": ing["reingest_inserted"],
        "single_event_ms_median": round(float(ing["single_event_ms_median"]), 1),
        "single_event_ms_p90": round(float(ing["single_event_ms_p90"]), 1),
        "read": ing["read"], "accepted": ing["accepted"], "rejected": ing["rejected"], "by_reason": ing["by_reason"],
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
        "command": f"python benchmarks/ingest.py --rows {args.rows}",
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    print(json.dumps(result, indent=2))
    if not args.no_write:
        res = HERE / "results"
        res.mkdir(exist_ok=True)
        (res / "ingest.json").write_text(json.dumps(result, indent=2) + "\n")
        md = [
            "# Ingestion benchmark", "",
            (f"`{result['command']}` on {result['machine']['cpus']} CPUs, Python {result['machine']['python']}, "
             f"{result['measured_at']}; 1-minute load average {result['load_average_1min']} (a shared machine: "
             "wall times are inflated when it is busy; CPU seconds are steadier)."), "",
            "| step | rows | seconds | peak RSS (MB) |", "|---|---|---|---|",
            f"| read CSV ({result['csv_mb']} MB) | {args.rows:,} | {result['read_csv_s']} | |",
            (f"| validate_events | {args.rows:,} | {result['validate_s']} (CPU {result['validate_cpu_s']}) | "
             f"{result['validate_peak_rss_mb']} |"),
            (f"| ingest_file (read + validate in chunks of {DEFAULT_CHUNK_ROWS:,} + one transaction) | {args.rows:,} | {result['ingest_file_s']} (CPU {result['ingest_file_cpu_s']}) | "
             f"{result['ingest_peak_rss_mb']} |"),
            f"| ingest the same file again (no-op) | {args.rows:,} | {result['reingest_same_file_s']} | |",
            (f"| one new event per `ingest_frame` call (the `POST /v1/events` path), 50 calls on the store above | 1 | "
             f"median {result['single_event_ms_median']} ms, p90 {result['single_event_ms_p90']} ms | |"), "",
            (f"read {result['read']:,} = accepted {result['accepted']:,} + rejected {result['rejected']:,}; "
             f"by reason: {result['by_reason']}."), "",
        ]
        (res / "ingest.md").write_text("\n".join(md))


if __name__ == "__main__":
    main()
