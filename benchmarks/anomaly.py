"""Anomaly benchmark: documented anomalies injected into real shop logs, precision@k and recall per type.

Command (the committed results were produced by exactly this; ~3 min on 2 busy cores)::

    python benchmarks/anomaly.py

Protocol.  Public shop logs carry no fraud labels, so :func:`buyerscore.models.anomaly.inject_anomalies`
adds four documented patterns (card-testing bursts of tiny orders, refund abuse, bot-like view storms,
sudden spend spikes) to randomly chosen real users in the 14 days before a cut-off:

* UCI Online Retail (real purchases and cancellations, GBP), cut-off 2011-09-30: 25 card testers,
  25 refund abusers and 25 spend spikes among the ~3,600 customers active before the cut-off;
* Taobao UserBehavior (814 real users' views/carts/favourites/purchases, no prices), cut-off
  2017-12-03: 15 view storms (the only pattern that needs no prices).

Features are built as of the cut-off (``anomaly_features``: the behaviour features plus short-burst and
recent-refund counts), the detectors are fitted on all users (unsupervised, injected users included, as in
production) and users are ranked by ``anomaly_score``.  Metrics per configuration, averaged over seeds
0, 1, 2 (a different injection each): precision@k (k = number of injected users), recall per anomaly type
within the top k and at the contamination flag (2 % of users), and ROC AUC of the score per type
(injected users of that type vs all real users).  Random ranking gives precision@k = k / users.

Configurations: the default ensemble (IForest + ECOD + COPOD, calibrated, max) with the
recent-vs-history ratio features; the same with the mean; each detector alone; and the ensemble on the
lifetime behaviour features only (no burst or ratio features) as an ablation.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from buyerscore import __version__
from buyerscore.datasets import default_data_dir, load_dataset
from buyerscore.events.store import EventStore
from buyerscore.features import build_features
from buyerscore.models.anomaly import AnomalyDetector, inject_anomalies
from buyerscore.models.anomaly.features import anomaly_features

LOG = logging.getLogger("benchmarks.anomaly")
CONTAMINATION = 0.02
SETUPS = {
    "online_retail": {"as_of": "2011-09-30", "n": {"card_testing": 25, "refund_abuse": 25, "spend_spike": 25}},
    "taobao": {"as_of": "2017-12-03", "n": {"view_storm": 15}, "window_days": 7},
}
CONFIGS: dict[str, dict[str, Any]] = {
    "ensemble_max": {"features": "anomaly", "params": {"change_features": True, "combine": "max"}},
    "ensemble_mean": {"features": "anomaly", "params": {"change_features": True, "combine": "mean"}},
    "iforest": {"features": "anomaly", "params": {"change_features": True, "detectors": ["iforest"]}},
    "ecod": {"features": "anomaly", "params": {"change_features": True, "detectors": ["ecod"]}},
    "copod": {"features": "anomaly", "params": {"change_features": True, "detectors": ["copod"]}},
    "ensemble_max_lifetime_features": {"features": "lifetime", "params": {"combine": "max"}},
}


def evaluate(score: np.ndarray, flag: np.ndarray, types: pd.Series) -> dict[str, Any]:
    y = types.notna().to_numpy()
    k = int(y.sum())
    top = np.zeros(len(y), dtype=bool)
    top[np.argsort(-score, kind="stable")[:k]] = True
    out: dict[str, Any] = {"k": k, "users": len(y), "precision_at_k": float(y[top].mean()),
                           "random_precision_at_k": k / len(y), "flagged": int(flag.sum()),
                           "precision_at_flag": float(y[flag].mean()) if flag.any() else float("nan"),
                           "per_type": {}}
    real = ~y
    for t in sorted(types.dropna().unique()):
        m = (types == t).to_numpy()
        sel = m | real
        out["per_type"][t] = {"n": int(m.sum()), "recall_at_k": float(top[m].mean()),
                              "recall_at_flag": float(flag[m].mean()),
                              "auc": float(roc_auc_score(m[sel], score[sel]))}
    return out


def run_dataset(name: str, data_dir: Path, seeds: list[int]) -> dict[str, Any]:
    setup = SETUPS[name]
    tmp = Path(tempfile.mkdtemp())
    t0 = time.perf_counter()
    store = EventStore(tmp / "bench.duckdb")
    load_dataset(name, store, data_dir)
    events = store.con.execute("SELECT * FROM events ORDER BY event_id").df()
    LOG.info("%s: %d events loaded in %.1fs", name, len(events), time.perf_counter() - t0)
    runs: dict[str, list[dict[str, Any]]] = {c: [] for c in CONFIGS}
    fit_s: dict[str, list[float]] = {c: [] for c in CONFIGS}
    for seed in seeds:
        res = inject_anomalies(events, as_of=setup["as_of"], n_per_type=setup["n"],
                               window_days=setup.get("window_days", 14.0), random_state=seed)
        store.con.register("injected_df", res.events)
        store.con.execute("CREATE OR REPLACE TABLE events_injected AS SELECT * FROM injected_df")
        store.con.unregister("injected_df")
        feats = {"anomaly": anomaly_features(store.con, as_of=setup["as_of"], table="events_injected"),
                 "lifetime": build_features(store.con, as_of=setup["as_of"], table="events_injected")}
        for cname, cfg in CONFIGS.items():
            F = feats[cfg["features"]]
            types = F[["platform", "user_id"]].merge(res.labels, how="left")["anomaly_type"]
            t1 = time.perf_counter()
            det = AnomalyDetector(contamination=CONTAMINATION, random_state=seed, **cfg["params"]).fit(F)
            fit_s[cname].append(time.perf_counter() - t1)
            score = det.anomaly_score(F)
            runs[cname].append(evaluate(score, score >= det.threshold_, types))
        example = det  # noqa: F841  (kept for debugging)
        LOG.info("%s seed %d done (%.0fs)", name, seed, time.perf_counter() - t0)
    store.close()
    summary: dict[str, Any] = {"as_of": setup["as_of"], "injected_per_seed": setup["n"], "seeds": seeds,
                               "users": runs[next(iter(CONFIGS))][0]["users"], "configs": {}}
    for cname, rs in runs.items():
        types = rs[0]["per_type"].keys()
        summary["configs"][cname] = {
            "precision_at_k": float(np.mean([r["precision_at_k"] for r in rs])),
            "precision_at_k_std": float(np.std([r["precision_at_k"] for r in rs])),
            "random_precision_at_k": float(np.mean([r["random_precision_at_k"] for r in rs])),
            "precision_at_flag": float(np.nanmean([r["precision_at_flag"] for r in rs])),
            "per_type": {t: {m: float(np.mean([r["per_type"][t][m] for r in rs]))
                             for m in ("recall_at_k", "recall_at_flag", "auc")} for t in types},
            "fit_seconds_median": float(np.median(fit_s[cname])),
            "params": CONFIGS[cname],
        }
    return summary


def markdown(res: dict[str, Any]) -> str:
    lines = ["# Anomaly benchmark", "", (f"Command: `{res['command']}` — {res['date']}, buyerscore {res['version']}, "
             f"Python {res['python']}, {res['cpu_note']}."), "",
             ("Injected, documented anomalies in real shop logs (see `benchmarks/anomaly.py` and "
             "`buyerscore/models/anomaly/inject.py`); mean over seeds "
             f"{res['datasets'][next(iter(res['datasets']))]['seeds']}. "
             f"Flag = top {CONTAMINATION:.0%} of users by anomaly score."), ""]
    for ds, r in res["datasets"].items():
        types = list(next(iter(r["configs"].values()))["per_type"])
        lines += [f"## {ds} (cut-off {r['as_of']}, {r['users']:,} users, injected per seed: {r['injected_per_seed']})",
                  "", "| configuration | precision@k | (random) | precision at flag | "
                  + " | ".join(f"{t} recall@k / @flag / AUC" for t in types) + " | fit s |",
                  "|---|---|---|---|" + "---|" * len(types) + "---|"]
        for c, v in r["configs"].items():
            cells = " | ".join(f"{v['per_type'][t]['recall_at_k']:.2f} / {v['per_type'][t]['recall_at_flag']:.2f} / "
                               f"{v['per_type'][t]['auc']:.3f}" for t in types)
            lines.append(f"| {c} | {v['precision_at_k']:.3f} ± {v['precision_at_k_std']:.3f} | "
                         f"{v['random_precision_at_k']:.3f} | {v['precision_at_flag']:.3f} | {cells} | "
                         f"{v['fit_seconds_median']:.1f} |")
        lines.append("")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--datasets", default="online_retail,taobao")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--no-write", action="store_true", help="Print instead of writing benchmarks/results.")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    data_dir = default_data_dir()
    seeds = [int(s) for s in args.seeds.split(",")]
    res: dict[str, Any] = {"command": "python benchmarks/anomaly.py" + (f" --datasets {args.datasets}"
                           if args.datasets != "online_retail,taobao" else "") +
                           (f" --seeds {args.seeds}" if args.seeds != "0,1,2" else ""),
                           "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "version": __version__,
                           "python": platform.python_version(), "cpu_note": "2 shared CPU cores",
                           "contamination": CONTAMINATION, "datasets": {}}
    for ds in args.datasets.split(","):
        res["datasets"][ds] = run_dataset(ds, data_dir, seeds)
    md = markdown(res)
    if args.no_write:
        print(md)
        return
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / "anomaly.json").write_text(json.dumps(res, indent=2) + "\n", encoding="utf-8")
    (out / "anomaly.md").write_text(md, encoding="utf-8")
    print(md)


if __name__ == "__main__":
    main()
