"""How much the German-credit ensemble results depend on the members' seeds.

Re-runs the ``buyerscore_credit_ensemble`` (GBM + forest) and ``buyerscore_credit_ensemble_scorecard``
(GBM + forest + peak/valley scorecard) rows of ``benchmarks/credit.py`` on German credit.
The protocol is the same: RepeatedStratifiedKFold(5 x 5, seed 0), the same members and the same
parameters. Only ``random_state`` of the GBM and of the forest changes (the scorecard has no
randomness). Results go to ``benchmarks/results/credit_seeds.json``, one entry per row. It takes
about 1 minute per seed and row on 2 cores.

    python benchmarks/credit_seeds.py --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import credit as bench  # the benchmark's folds and GBM parameters

from buyerscore.datasets import default_data_dir, read_applicants
from buyerscore.models import metrics as mt
from buyerscore.models.credit import CreditEnsemble, add_ratio_features, split_applicants

ROWS = ("buyerscore_credit_ensemble", "buyerscore_credit_ensemble_scorecard")

warnings.filterwarnings("ignore")


def run(row: str, seed: int, data_dir: Path) -> dict[str, float]:
    X, y = split_applicants(read_applicants("german_credit", data_dir))
    aucs, costs = [], []
    for tr, te in bench.folds("german_credit", X, y, quick=False):
        members = bench.ensemble_members("german_credit", len(tr), seed=seed,
                                         scorecard=row == "buyerscore_credit_ensemble_scorecard")
        m = CreditEnsemble(include_sensitive=True, random_state=seed, members=members)
        p = (m.fit(add_ratio_features(X.iloc[tr], drop_redundant=True), y[tr])
             .predict_proba(add_ratio_features(X.iloc[te], drop_redundant=True))[:, 1])
        aucs.append(mt.auc(y[te], p))
        costs.append(mt.misclassification_cost(y[te], (p > 1 / 6).astype(int)))
    return {"auc": round(float(np.mean(aucs)), 4), "auc_std": round(float(np.std(aucs)), 4),
            "statlog_cost": round(float(np.mean(costs)), 4), "folds": len(aucs)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--rows", nargs="+", choices=ROWS, default=list(ROWS))
    ap.add_argument("--data-dir", type=Path, default=None)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    data_dir = args.data_dir or default_data_dir()
    res: dict = {"command": "python benchmarks/credit_seeds.py " + " ".join(sys.argv[1:]),
                 "started": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()), "target_auc": 0.80,
                 "target_statlog_cost": 0.50, "rows": {}}
    for row in args.rows:
        seeds = {}
        for s in args.seeds:
            seeds[str(s)] = run(row, s, data_dir)
            print(row, s, seeds[str(s)], flush=True)
        r = res["rows"][row] = {"seeds": seeds}
        r["mean_auc"] = round(float(np.mean([v["auc"] for v in seeds.values()])), 4)
        r["mean_statlog_cost"] = round(float(np.mean([v["statlog_cost"] for v in seeds.values()])), 4)
        r["seeds_meeting_auc"] = sum(v["auc"] >= 0.80 for v in seeds.values())
        r["seeds_meeting_cost"] = sum(v["statlog_cost"] <= 0.50 for v in seeds.values())
        print(row, "mean AUC", r["mean_auc"], "mean cost", r["mean_statlog_cost"], "seeds meeting 0.80:",
              r["seeds_meeting_auc"], "meeting cost 0.50:", r["seeds_meeting_cost"], "of", len(args.seeds))
    if not args.no_write:
        (HERE / "results" / "credit_seeds.json").write_text(json.dumps(res, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
