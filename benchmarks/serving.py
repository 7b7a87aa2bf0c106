"""Serving benchmark: loopback load test of the API and batch-scoring throughput.

Run (about 6 minutes on 2 cores)::

    python benchmarks/serving.py            # writes benchmarks/results/serving.json and .md
    python benchmarks/serving.py --quick    # smoke run: short phases, 50k batch users, results not written
    python benchmarks/serving.py --batch-only   # batch part only; keeps the load-test results of serving.json

Setup: the full CDNOW master log (23,570 users) and German Credit are loaded into a temporary
store; ``buyerscore train`` (the example config, as of 1997-09-30) writes a bundle, which is
promoted and served by ``buyerscore serve`` in its own process (one uvicorn worker, background
warm-up of every user's features and scores).

Load test: an open-loop asyncio client (raw HTTP/1.1 keep-alive connections by default, because
httpx's own CPU cost dominates on 2 shared cores; ``--client httpx`` uses ``httpx.AsyncClient``) sends ``GET /v1/users/{id}/score`` for random CDNOW users
at a fixed rate (100 and 500 requests/s, 60 s each); latency is measured from each request's
*scheduled* start (so client-side queueing counts, no coordinated omission).  A third phase mixes
10 % ``POST /v1/events`` (one new event, which invalidates that user's features) into 100 requests/s.
Client and server share the same 2 cores.

Batch: 1,000,000 users (CDNOW feature rows resampled with replacement and jittered, so values are
realistic) scored by ``buyerscore score`` in a subprocess (rows/s, peak RSS of that process), versus a
naive loop calling ``ScoringPipeline.score_frame`` on one row at a time (timed on 1,000 rows).  The
machine's load average is recorded before and after the batch runs: the 2 cores are shared, and
throughput measured while other processes run is lower than on an idle machine.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
KEY = "bench-key-not-secret"
AS_OF = "1997-09-30"


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-c", "from buyerscore.cli import main; main()", *args]


def setup(tmp: Path) -> tuple[Path, Path, list[str], dict]:
    from buyerscore.config import load_config
    from buyerscore.datasets import load_dataset
    from buyerscore.events.store import EventStore
    from buyerscore.registry import ModelRegistry
    from buyerscore.serving.train import train_bundle

    db, reg = tmp / "store.duckdb", tmp / "registry"
    with EventStore(db) as store:
        load_dataset("cdnow", store)
        load_dataset("german_credit", store)
        users = [r[0] for r in store.con.execute("SELECT DISTINCT user_id FROM events ORDER BY 1").fetchall()]
    cfg_path = tmp / "buyerscore.toml"
    cfg_path.write_text((ROOT / "buyerscore.toml.example").read_text().replace(
        'db = "buyerscore.duckdb"', f'db = "{db.as_posix()}"'))
    t0 = time.perf_counter()
    version = train_bundle(load_config(cfg_path), reg, as_of=AS_OF)
    train_s = time.perf_counter() - t0
    registry = ModelRegistry(reg)
    note = ""
    if "power_spend" not in registry.show(version)["models"]:
        # purchasing-power models not installed yet: add LightGBM stand-ins so the load exercises every section
        from buyerscore.registry import ModelEntry
        from buyerscore.serving._testing import standin_bundle
        with EventStore(db, read_only=True) as store:
            sv = standin_bundle(store.con, tmp / "standin", as_of=AS_OF, kinds=("power_spend", "power_tier"),
                                n_estimators=100, promote=False)
        trained, extra = registry.load(version), ModelRegistry(tmp / "standin").load(sv)
        entries = {k: ModelEntry(m, meta.features, metrics=meta.metrics, training_data_hash=meta.training_data_hash)
                   for b in (trained, extra) for k, (m, meta) in b.models.items()}
        version = registry.create(entries, as_of=trained.as_of, training_data_hash=trained.manifest[
            "training_data_hash"], config=trained.manifest["config"], description="trained + stand-in power")
        note = "power_spend/power_tier are LightGBM stand-ins (buyerscore SpendForecaster/SpendTier not installed)"
    registry.promote(version)
    manifest = registry.show(version)
    # what each scored user costs: the spend model's chosen candidate and the trees behind every model
    shape = {kind: _model_shape(m) for kind, (m, _) in registry.load(version).models.items()}
    return db, reg, users, {"train_seconds": round(train_s, 1), "models": sorted(manifest["models"]),
                            "version": version, "note": note,
                            "classes": {k: v["class"] for k, v in manifest["models"].items()}, "shape": shape}


def _model_shape(model: object) -> dict:
    """Chosen method (SpendForecaster) and tree counts of the LightGBM boosters / isolation forest in a model."""
    import lightgbm as lgb
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.ensemble import IsolationForest

    trees: list[int] = []

    def walk(o: object, depth: int = 0) -> None:
        if depth > 3 or o is None:
            return
        if isinstance(o, lgb.LGBMModel):
            trees.append(o.booster_.num_trees())
        elif isinstance(o, IsolationForest):
            trees.append(len(o.estimators_))
        elif isinstance(o, CalibratedClassifierCV):
            for cc in o.calibrated_classifiers_:
                walk(cc.estimator, depth + 1)
        elif isinstance(o, (tuple, list)):
            for x in o:
                walk(x, depth + 1)
        else:
            for attr in ("model_", "iforest_"):
                walk(getattr(o, attr, None), depth + 1)

    walk(model)
    out: dict = {"trees": trees}
    if getattr(model, "method_", None) is not None:
        out["method"] = model.method_  # type: ignore[attr-defined]
    return out


class Server:
    def __init__(self, reg: Path, db: Path, tmp: Path) -> None:
        from buyerscore.serving.api.settings import hash_key
        keys = tmp / "keys.txt"
        keys.write_text(hash_key(KEY) + "\n")
        self.port_file = tmp / "port"
        self.log = (tmp / "server.log").open("wb")
        self.proc = subprocess.Popen(_cli("serve", "--registry", str(reg), "--db", str(db), "--port", "0",
                                          "--port-file", str(self.port_file), "--keys-file", str(keys),
                                          "--warm-interval", "300"), stdout=self.log, stderr=subprocess.STDOUT)
        while not self.port_file.exists():
            if self.proc.poll() is not None:
                raise RuntimeError((tmp / "server.log").read_text())
            time.sleep(0.1)
        self.url = f"http://127.0.0.1:{self.port_file.read_text()}"

    def wait_warm(self, timeout: float = 300) -> float:
        import httpx
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < timeout:
            try:
                m = httpx.get(self.url + "/metrics", timeout=5).text
                for line in m.splitlines():
                    if line.startswith("buyerscore_online_warm_seconds "):
                        return float(line.split()[1])
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        raise RuntimeError("server did not warm up")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


async def load_phase(url: str, users: list[str], rps: int, seconds: float, write_share: float = 0.0,
                     seed: int = 0) -> dict:
    import httpx
    rng = random.Random(seed)
    n = int(rps * seconds)
    lat: list[float] = []
    status: dict[str, int] = {}
    errors = 0
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(base_url=url, headers={"X-API-Key": KEY}, limits=limits, timeout=10) as client:
        # warm the connection pool
        await asyncio.gather(*[client.get("/healthz") for _ in range(20)])
        t0 = time.perf_counter() + 0.2

        async def one(i: int) -> None:
            nonlocal errors
            sched = t0 + i / rps
            delay = sched - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            u = rng.choice(users)
            try:
                if rng.random() < write_share:
                    ev = {"user_id": u, "platform": "cdnow", "ts": "1998-06-30T12:00:00", "event_type": "purchase",
                          "amount": round(rng.uniform(1, 100), 2), "event_id": f"bench-{seed}-{i}"}
                    r = await client.post("/v1/events", json={"events": [ev]})
                else:
                    r = await client.get(f"/v1/users/{u}/score", params={"platform": "cdnow"})
                code = str(r.status_code)
                if r.status_code >= 400:
                    errors += 1
            except httpx.HTTPError as exc:
                code = type(exc).__name__
                errors += 1
            lat.append(time.perf_counter() - sched)
            status[code] = status.get(code, 0) + 1

        tasks = [asyncio.create_task(one(i)) for i in range(n)]
        await asyncio.gather(*tasks)
        wall = time.perf_counter() - t0
    a = np.asarray(lat) * 1000
    return {"client": "httpx", "target_rps": rps, "seconds": seconds, "requests": n,
            "achieved_rps": round(n / wall, 1),
            "write_share": write_share, "errors": errors, "status": status,
            "p50_ms": round(float(np.percentile(a, 50)), 2), "p95_ms": round(float(np.percentile(a, 95)), 2),
            "p99_ms": round(float(np.percentile(a, 99)), 2), "max_ms": round(float(a.max()), 2)}


class RawPool:
    """Minimal asyncio HTTP/1.1 keep-alive client (a pool of connections); ~20x less client CPU than httpx."""

    def __init__(self, url: str, size: int) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.host, self.port, self.size = host, int(port), size
        self.free: asyncio.Queue = asyncio.Queue()

    async def open(self) -> None:
        for _ in range(self.size):
            self.free.put_nowait(await asyncio.open_connection(self.host, self.port))

    async def request(self, method: str, path: str, body: bytes = b"") -> int:
        reader, writer = await self.free.get()
        try:
            head = (f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\nX-API-Key: {KEY}\r\n"
                    f"Content-Length: {len(body)}\r\n" + ("Content-Type: application/json\r\n" if body else "")
                    + "\r\n").encode()
            writer.write(head + body)
            status_line = await reader.readline()
            length = 0
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            code = int(status_line.split()[1])
        except Exception:
            writer.close()
            reader, writer = await asyncio.open_connection(self.host, self.port)
            raise
        finally:
            self.free.put_nowait((reader, writer))
        return code

    async def close(self) -> None:
        while not self.free.empty():
            _, w = self.free.get_nowait()
            w.close()


async def raw_load_phase(url: str, users: list[str], rps: int, seconds: float, write_share: float = 0.0,
                         seed: int = 0) -> dict:
    rng = random.Random(seed)
    n = int(rps * seconds)
    pool = RawPool(url, 64)
    await pool.open()
    lat: list[float] = []
    status: dict[str, int] = {}
    errors = 0
    t0 = time.perf_counter() + 0.2

    async def one(i: int, sched: float) -> None:
        nonlocal errors
        u = rng.choice(users)
        try:
            if rng.random() < write_share:
                ev = {"user_id": u, "platform": "cdnow", "ts": "1998-06-30T12:00:00", "event_type": "purchase",
                      "amount": round(rng.uniform(1, 100), 2), "event_id": f"bench-{seed}-{rps}-{i}"}
                code = await pool.request("POST", "/v1/events", json.dumps({"events": [ev]}).encode())
            else:
                code = await pool.request("GET", f"/v1/users/{u}/score?platform=cdnow")
            if code >= 400:
                errors += 1
            key = str(code)
        except Exception as exc:  # noqa: BLE001 - every failure counts as an error
            key = type(exc).__name__
            errors += 1
        lat.append(time.perf_counter() - sched)
        status[key] = status.get(key, 0) + 1

    # tasks are created when due (not all up front) and the client's GC is paused, so the load generator
    # itself does not stall; latency still counts from the scheduled time
    gc.collect()
    gc.disable()
    pending: set[asyncio.Task] = set()
    try:
        for i in range(n):
            sched = t0 + i / rps
            delay = sched - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            t = asyncio.create_task(one(i, sched))
            pending.add(t)
            t.add_done_callback(pending.discard)
        await asyncio.gather(*list(pending))
    finally:
        gc.enable()
    wall = time.perf_counter() - t0
    await pool.close()
    a = np.asarray(lat) * 1000
    return {"client": "raw-asyncio", "target_rps": rps, "seconds": seconds, "requests": n,
            "achieved_rps": round(n / wall, 1), "write_share": write_share, "errors": errors, "status": status,
            "p50_ms": round(float(np.percentile(a, 50)), 2), "p95_ms": round(float(np.percentile(a, 95)), 2),
            "p99_ms": round(float(np.percentile(a, 99)), 2), "max_ms": round(float(a.max()), 2)}


def server_hist(url: str) -> dict[str, float]:
    """Cumulative server-side latency buckets of GET /v1/users/{user_id}/score (from /metrics)."""
    import httpx
    out: dict[str, float] = {}
    for line in httpx.get(url + "/metrics", timeout=10).text.splitlines():
        if line.startswith("buyerscore_request_duration_seconds_bucket") and "/v1/users/{user_id}/score" in line \
                and 'method="GET"' in line:
            le = line.split('le="')[1].split('"')[0]
            out[le] = out.get(le, 0.0) + float(line.rsplit(" ", 1)[1])
    return out


_RUSAGE_LAUNCHER = """
import json, resource, subprocess, sys
rc = subprocess.run(sys.argv[2:]).returncode
u = resource.getrusage(resource.RUSAGE_CHILDREN)
open(sys.argv[1], "w").write(json.dumps({"maxrss_kb": u.ru_maxrss, "cpu_s": u.ru_utime + u.ru_stime}))
sys.exit(rc)
"""
"""Runs a command and writes its peak RSS and CPU time (forked from this small process, not the benchmark)."""


def batch_bench(tmp: Path, db: Path, reg: Path, n_users: int, n_naive: int = 1000) -> dict:
    from buyerscore.events.store import EventStore
    from buyerscore.features import build_features
    from buyerscore.pipeline import ScoringPipeline

    with EventStore(db, read_only=True) as store:
        base = build_features(store.con, as_of=AS_OF)
    rng = np.random.default_rng(0)
    X = base.iloc[rng.integers(0, len(base), n_users)].reset_index(drop=True)
    num = [c for c in X.columns if c not in ("platform", "user_id") and X[c].dtype.kind == "f"]
    X[num] = X[num] * rng.uniform(0.9, 1.1, size=(n_users, len(num)))
    X["user_id"] = [f"b{i}" for i in range(n_users)]
    src = tmp / "batch_features.parquet"
    X.to_parquet(src, index=False)
    n_reasons = min(n_users, 50_000)
    X.head(n_reasons).to_parquet(tmp / "batch_features_small.parquet", index=False)
    from buyerscore.serving.batch import default_jobs
    out: dict = {"users": n_users, "input_mb": round(src.stat().st_size / 2**20, 1), "users_with_reasons": n_reasons,
                 "n_jobs": default_jobs(), "load_avg_before": [round(x, 2) for x in os.getloadavg()]}
    for label, extra in (("no_reasons", []), ("with_reasons", ["--reasons"])):
        if label == "with_reasons":
            src = tmp / "batch_features_small.parquet"
        t0 = time.perf_counter()
        usage_file = tmp / f"{label}.rusage.json"
        with open(tmp / f"{label}.out", "w+") as fo, open(tmp / f"{label}.err", "w+") as fe:
            # run through a small launcher: a child forked from this (large) process would report this
            # process's RSS at fork time as its own peak (Linux carries ru_maxrss across fork + exec)
            proc = subprocess.run([sys.executable, "-c", _RUSAGE_LAUNCHER, str(usage_file),
                                   *_cli("score", "--registry", str(reg), "--input", str(src), "--out",
                                         str(tmp / f"scores_{label}.parquet"), "--json", *extra)],
                                  stdout=fo, stderr=fe, check=False)
            fo.seek(0)
            fe.seek(0)
            stdout, stderr = fo.read(), fe.read()
        usage = json.loads(usage_file.read_text()) if usage_file.exists() else {}
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise RuntimeError(f"buyerscore score failed ({proc.returncode}): {stderr[-2000:]}")
        s = json.loads(stdout)
        out[label] = {"rows": s["rows"], "seconds_in_scoring": s["seconds"], "users_per_s": s["rows_per_s"],
                      "process_wall_s": round(wall, 2), "peak_rss_mb": round(usage["maxrss_kb"] / 1024, 1),
                      "cpu_s": round(usage["cpu_s"], 2)}
    out["load_avg_after"] = [round(x, 2) for x in os.getloadavg()]
    pipe = ScoringPipeline.from_registry(reg)
    part = X.head(20_000)
    per_kind = {}
    lacks = pipe.missing_features(part.columns)
    for kind in pipe.kinds:
        if lacks[kind]:  # e.g. the credit model of applicant columns: score_frame would skip it, timing nothing
            per_kind[kind] = f"not in the behaviour features table (lacks {len(lacks[kind])} input columns)"
            continue
        for reasons in (False, True):
            warm = pipe.score_frame(part.head(256), kinds=[kind], reasons=reasons)  # one-time costs (compiled
            if reasons and not any(c.endswith("_reason_1") for c in warm.columns):  # kernels, caches) not timed
                per_kind[f"{kind} +reasons"] = "no reasons of its own"  # e.g. power_tier: the power section's
                continue  # reasons come from power_spend
            t0 = time.perf_counter()
            pipe.score_frame(part, kinds=[kind], reasons=reasons)
            per_kind[f"{kind}{' +reasons' if reasons else ''}"] = round(len(part) / (time.perf_counter() - t0), 1)
    out["users_per_s_by_model"] = per_kind
    sample = X.head(n_naive)
    t0 = time.perf_counter()
    for i in range(len(sample)):
        pipe.score_frame(sample.iloc[[i]])
    dt = time.perf_counter() - t0
    out["naive_per_row"] = {"rows": len(sample), "seconds": round(dt, 2), "users_per_s": round(len(sample) / dt, 1)}
    out["speedup_vs_naive"] = round(out["no_reasons"]["users_per_s"] / out["naive_per_row"]["users_per_s"], 1)
    return out


def markdown(res: dict) -> str:
    shape = res["bundle"].get("shape") or {}
    shape_txt = ("Trees evaluated per user: " + "; ".join(
        f"{k} {'+'.join(map(str, v['trees'])) or 0}" + (f" ({v['method']})" if v.get("method") else "")
        for k, v in sorted(shape.items())) + ". ") if shape else ""
    lines = ["# Serving benchmark", "", (f"Generated by `python benchmarks/serving.py` on {res['date']} "
             f"({res['machine']}). Client and server share the machine; numbers are what was measured."), "",
             (f"Bundle {res['bundle']['version']}: models {', '.join(res['bundle']['models'])} "
             f"(trained in {res['bundle']['train_seconds']} s on CDNOW master + German Credit). "
             f"{res['bundle']['note'] + '. ' if res['bundle']['note'] else ''}{shape_txt}"
             f"Background warm-up of {res['warm']['users']:,} users' features and scores took "
             f"{res['warm']['seconds']:.2f} s."), "", "## Load test (loopback, open loop, latency from scheduled start)",
             *(["", f"Load test {res['load_note']}."] if res.get("load_note") else []),
             "", "| phase | client | target rps | achieved rps | requests | errors | p50 ms | p95 ms | p99 ms | max ms |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, p in res["load"].items():
        lines.append(f"| {name} | {p['client']} | {p['target_rps']} | {p['achieved_rps']} | {p['requests']:,} | {p['errors']} | "
                     f"{p['p50_ms']} | {p['p95_ms']} | {p['p99_ms']} | {p['max_ms']} |")
    b = res["batch"]
    lines += ["", "Server-side (time inside the service, from its own `/metrics` histogram, GET score requests of "
              "each phase): " + "; ".join(f"{n}: {p['server_share_le_10ms']:.2%} <= 10 ms, "
                                          f"{p['server_share_le_20ms']:.2%} <= 20 ms"
                                          for n, p in res["load"].items() if "server_share_le_10ms" in p) + ".",
              "", f"Goal: p99 < 20 ms at 500 rps with 0 errors: **{'met' if res['goals']['p99_500'] else 'not met'}**.",
              "", "## Batch scoring", "",
              (f"{b['users']:,} users ({b['input_mb']} MB Parquet of features), `buyerscore score` in a subprocess "
               f"(with reasons: the first {b['users_with_reasons']:,} users)"
               + (f"; {b['note']}, measured on {b.get('date', 'an earlier date')}" if b.get("note") else "") + ":"), "",
              "| run | users/s | scoring s | process wall s | process CPU s | peak RSS MB |", "|---|---|---|---|---|---|"]
    for k in ("no_reasons", "with_reasons"):
        r = b[k]
        if not isinstance(r, dict):
            continue
        lines.append(f"| {k} | {r['users_per_s']:,.0f} | {r['seconds_in_scoring']} | {r['process_wall_s']} | "
                     f"{r.get('cpu_s', '')} | {r['peak_rss_mb']} |")
    lines.append(f"| naive per-row `score_frame` loop ({b['naive_per_row']['rows']:,} rows) | "
                 f"{b['naive_per_row']['users_per_s']:,.1f} | {b['naive_per_row']['seconds']} | | | |")
    lines += ["", (f"Speed-up of chunked batch over the per-row loop: {b['speedup_vs_naive']}x. "
              f"Goal >= 200k users/s: **{'met' if res['goals']['batch_200k'] else 'not met'}**.")]
    if "load_avg_before" in b:
        lines += ["", (f"`buyerscore score` ran {b['n_jobs']} chunk(s) at a time. Load average (1, 5, 15 min) of "
                       f"the 2-core machine before the batch runs: {b['load_avg_before']}, after: "
                       f"{b['load_avg_after']} (a load above 2 means other processes shared the cores).")]
    if b.get("users_per_s_by_model"):
        lines += ["", "Per model (`score_frame(kinds=[kind])` on 20,000 rows in the benchmark process, after one "
                  "untimed warm-up call, users/s): "
                  + ", ".join(f"{k} {v:,.0f}" if isinstance(v, int | float) else f"{k}: {v}"
                              for k, v in b["users_per_s_by_model"].items()) + "."]
    lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="short smoke run; results are not written")
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--batch-users", type=int, default=1_000_000)
    ap.add_argument("--render", action="store_true", help="only re-render serving.md from serving.json")
    ap.add_argument("--skip-batch", action="store_true",
                    help="reuse the batch results of benchmarks/results/serving.json (load test only)")
    ap.add_argument("--batch-only", action="store_true",
                    help="batch part only; reuse the load-test results of benchmarks/results/serving.json")
    ap.add_argument("--client", choices=("raw", "httpx"), default="raw",
                    help="load generator: raw asyncio HTTP/1.1 (default) or httpx.AsyncClient")
    args = ap.parse_args()
    if args.render:
        (RESULTS / "serving.md").write_text(markdown(json.loads((RESULTS / "serving.json").read_text())))
        return
    seconds = 5.0 if args.quick else args.seconds
    n_batch = 50_000 if args.quick else args.batch_users
    with tempfile.TemporaryDirectory(prefix="bs-serving-bench-") as d:
        tmp = Path(d)
        db, reg, users, bundle = setup(tmp)
        print(f"bundle {bundle}", flush=True)
        prev = json.loads((RESULTS / "serving.json").read_text()) if (RESULTS / "serving.json").exists() else {}
        load_note = ""
        if args.batch_only:
            if args.skip_batch:
                ap.error("--batch-only and --skip-batch exclude each other")
            load, warm_s = prev["load"], prev["warm"]["seconds"]
            load_note = f"from the previous run (--batch-only), measured on {prev.get('load_date', prev['date'])}"
        else:
            load, warm_s = load_test(args, reg, db, tmp, users, seconds)
        if args.skip_batch:
            batch = {**prev["batch"], "note": "from the previous run (--skip-batch)",
                     "date": prev["batch"].get("date", prev["date"])}
        else:
            batch = batch_bench(tmp, db, reg, n_batch, n_naive=100 if args.quick else 1000)
            batch["date"] = datetime.now(UTC).isoformat(timespec="seconds")
        print("batch", batch, flush=True)
    res = {"date": datetime.now(UTC).isoformat(timespec="seconds"),
           "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
           "command": "python benchmarks/serving.py" + (" --quick" if args.quick else "")
           + (" --batch-only" if args.batch_only else ""),
           "bundle": bundle, "warm": {"users": len(users), "seconds": warm_s}, "load": load, "batch": batch,
           "load_date": prev.get("load_date", prev.get("date")) if args.batch_only else None, "load_note": load_note}
    if res["load_date"] is None:
        res["load_date"] = res["date"]
    p500 = res["load"]["GET score @500"]
    res["goals"] = {"p99_500": p500["p99_ms"] < 20 and p500["errors"] == 0,
                    "batch_200k": batch["no_reasons"]["users_per_s"] >= 200_000}
    if args.quick:
        print(markdown(res))
        return
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "serving.json").write_text(json.dumps(res, indent=2) + "\n")
    (RESULTS / "serving.md").write_text(markdown(res))
    print(markdown(res))


def load_test(args: argparse.Namespace, reg: Path, db: Path, tmp: Path, users: list[str],
              seconds: float) -> tuple[dict, float]:
    srv = Server(reg, db, tmp)
    try:
        warm_s = srv.wait_warm()
        load = {}
        for name, rps, share in (("GET score @100", 100, 0.0), ("GET score @500", 500, 0.0),
                                 ("90% GET + 10% POST events @100", 100, 0.1)):
            phase = raw_load_phase if args.client == "raw" else load_phase
            h0 = server_hist(srv.url)
            load[name] = asyncio.run(phase(srv.url, users, rps, seconds, share))
            h1 = server_hist(srv.url)
            n_srv = h1.get("+Inf", 0) - h0.get("+Inf", 0)
            if n_srv:
                load[name]["server_share_le_10ms"] = round((h1["0.01"] - h0.get("0.01", 0)) / n_srv, 5)
                load[name]["server_share_le_20ms"] = round((h1["0.02"] - h0.get("0.02", 0)) / n_srv, 5)
            print(name, load[name], flush=True)
    finally:
        srv.stop()
    return load, warm_s


if __name__ == "__main__":
    main()
