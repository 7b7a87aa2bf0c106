"""Inner-fold comparison of credit model candidates: how changes are chosen before the outer benchmark.

A candidate model is compared on folds *inside the first outer training fold* of ``benchmarks/credit.py``,
so that the outer folds, on which the published numbers are measured, play no part in the choice:

* Taiwan and Give Me Some Credit: the first training fold of StratifiedKFold(5, shuffle, seed 0), split by
  StratifiedKFold(3, shuffle, seed 0);
* German credit: the first training fold of RepeatedStratifiedKFold(5 x 5, seed 0), split by
  RepeatedStratifiedKFold(3 x 5, seed 0), with the StatLog cost (reject when PD > 1/6).

Candidates (``--candidates``; each is run on the datasets it is defined for):

* ``gbm`` / ``gbm_unconstrained``: the benchmark's CreditGBM rows (monotone "auto" / none);
* ``mlp``: a scikit-learn MLP (64-32 units, early stopping, mean of 3 seeds) on quantile-normalised
  numeric columns and one-hot categories, and its blends with the unconstrained GBM (weights 0.1, 0.2,
  averaged probabilities of the two models' inner predictions, no refit);
* ``scorecard`` (every set) / ``scorecard_2d`` / ``scorecard_2d_monotone`` (Give Me Some Credit): the
  benchmark's monotone scorecard, and the same with two 2-D WOE columns added (optbinning's OptimalBinning2D on
  utilisation x debt ratio and monthly income x debt ratio; the ``_monotone`` one with monotone trends in
  both directions);
* ``scorecard_monotone``: the benchmark's monotone scorecard with ``coding="monotone"`` (one coefficient
  per bin, points kept in the monotone bins' WOE order), against ``scorecard`` (``coding="woe"``);
* ``ensemble_scorecard`` (German): the three-member CreditEnsemble of ``credit_ensemble_scorecard``, and
  its mean with an MLP (``+mlp``, 32 units, alpha 10) or a logistic regression (``+lr``, C 0.1) as a
  fourth member (weights 3/4 and 1/4).

Results go to ``benchmarks/results/credit_inner.json`` and ``.md``.  About 15 minutes on 2 cores:

    python benchmarks/credit_inner.py
    python benchmarks/credit_inner.py --datasets taiwan_default --candidates gbm_unconstrained mlp
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import RepeatedStratifiedKFold, StratifiedKFold
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, QuantileTransformer

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import credit as bench  # the benchmark's models, parameters and folds

from buyerscore.datasets import default_data_dir, read_applicants
from buyerscore.models import metrics as mt
from buyerscore.models.credit import CreditEnsemble, add_ratio_features, split_applicants

warnings.filterwarnings("ignore")

DATASETS = ("taiwan_default", "give_me_some_credit", "german_credit")
CANDIDATES: dict[str, tuple[str, ...]] = {
    "gbm": ("taiwan_default", "give_me_some_credit"),
    "gbm_unconstrained": ("taiwan_default", "give_me_some_credit"),
    "mlp": ("taiwan_default", "give_me_some_credit"),
    "scorecard": DATASETS,
    "scorecard_monotone": DATASETS,
    "scorecard_2d": ("give_me_some_credit",),
    "scorecard_2d_monotone": ("give_me_some_credit",),
    "ensemble_scorecard": ("german_credit",),
}
PAIRS_2D = (("RevolvingUtilizationOfUnsecuredLines", "DebtRatio", "ascending", "ascending"),
            ("MonthlyIncome", "DebtRatio", "descending", "ascending"))
FitPredict = Callable[[pd.DataFrame, np.ndarray, pd.DataFrame], np.ndarray]


def _nn_pipeline(X: pd.DataFrame, clf: Any, seed: int) -> Any:
    cat = [c for c in X.columns if not pd.api.types.is_numeric_dtype(X[c])]
    num = [c for c in X.columns if c not in cat]
    steps = [("n", make_pipeline(SimpleImputer(strategy="median"),
                                 QuantileTransformer(n_quantiles=200, output_distribution="normal",
                                                     random_state=seed)), num)]
    if cat:
        steps.append(("c", OneHotEncoder(handle_unknown="ignore"), cat))
    return make_pipeline(ColumnTransformer(steps), clf)


def nn(kind: str) -> FitPredict:
    """``mlp`` (64-32, early stopping, 3 seeds), ``mlp_small`` (32 units, alpha 10, 3 seeds) or ``lr``."""
    def f(Xtr: pd.DataFrame, ytr: np.ndarray, Xte: pd.DataFrame) -> np.ndarray:
        a = add_ratio_features(Xtr, drop_redundant=True)
        b = add_ratio_features(Xte, drop_redundant=True)
        num = [c for c in a.columns if pd.api.types.is_numeric_dtype(a[c])]
        a, b = a.astype({c: float for c in num}), b.astype({c: float for c in num})
        if kind == "lr":
            return _nn_pipeline(a, LogisticRegression(C=0.1, max_iter=3000), 0).fit(a, ytr).predict_proba(b)[:, 1]
        out = []
        for seed in range(3):
            clf = (MLPClassifier(hidden_layer_sizes=(64, 32), alpha=1e-3, early_stopping=True, validation_fraction=0.15,
                                 n_iter_no_change=10, max_iter=200, batch_size=256, random_state=seed)
                   if kind == "mlp" else
                   MLPClassifier(hidden_layer_sizes=(32,), alpha=10.0, max_iter=500, random_state=seed))
            out.append(_nn_pipeline(a, clf, seed).fit(a, ytr).predict_proba(b)[:, 1])
        return np.mean(out, axis=0)
    return f


def scorecard_2d(dataset: str, *, monotone: bool) -> FitPredict:
    """The benchmark's monotone scorecard with 2-D WOE columns of :data:`PAIRS_2D` added."""
    from optbinning import OptimalBinning2D

    base = bench.bs_scorecard(dataset)

    def f(Xtr: pd.DataFrame, ytr: np.ndarray, Xte: pd.DataFrame) -> np.ndarray:
        a, b = add_ratio_features(Xtr), add_ratio_features(Xte)
        extra_a, extra_b = {}, {}
        for x1, x2, t1, t2 in PAIRS_2D:
            kw = {"monotonic_trend_x": t1, "monotonic_trend_y": t2} if monotone else {}
            ob = OptimalBinning2D(name_x=x1, name_y=x2, max_n_prebins_x=8, max_n_prebins_y=8,
                                  min_prebin_size_x=0.02, min_prebin_size_y=0.02, time_limit=60, **kw)
            col = lambda d, c: np.nan_to_num(d[c].to_numpy(float), nan=-1.0)  # noqa: E731 - missing as its own value
            ob.fit(col(a, x1), col(a, x2), ytr)
            # -WOE: larger = riskier, like the raw columns the scorecard bins
            extra_a[f"{x1}__{x2}"] = -ob.transform(col(a, x1), col(a, x2), metric="woe")
            extra_b[f"{x1}__{x2}"] = -ob.transform(col(b, x1), col(b, x2), metric="woe")
        # bs_scorecard adds the ratio features again: they are recomputed from the raw columns, same values
        return base(Xtr.assign(**extra_a), ytr, Xte.assign(**extra_b))
    return f


def ensemble_scorecard(dataset: str) -> FitPredict:
    def f(Xtr: pd.DataFrame, ytr: np.ndarray, Xte: pd.DataFrame) -> np.ndarray:
        m = CreditEnsemble(include_sensitive=True, members=bench.ensemble_members(dataset, len(Xtr), scorecard=True))
        return (m.fit(add_ratio_features(Xtr, drop_redundant=True), ytr)
                .predict_proba(add_ratio_features(Xte, drop_redundant=True))[:, 1])
    return f


def model(name: str, dataset: str) -> FitPredict:
    return {"gbm": lambda: bench.bs_gbm(dataset), "gbm_unconstrained": lambda: bench.bs_gbm(dataset, monotone=None),
            "mlp": lambda: nn("mlp"), "scorecard": lambda: bench.bs_scorecard(dataset),
            "scorecard_monotone": lambda: bench.bs_scorecard(dataset, coding="monotone"),
            "scorecard_2d": lambda: scorecard_2d(dataset, monotone=False),
            "scorecard_2d_monotone": lambda: scorecard_2d(dataset, monotone=True),
            "ensemble_scorecard": lambda: ensemble_scorecard(dataset),
            "mlp_small": lambda: nn("mlp_small"), "lr": lambda: nn("lr")}[name]()


def inner_folds(dataset: str, X: pd.DataFrame, y: np.ndarray) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    """Row indices of the first outer training fold, and the inner folds (positions within it)."""
    outer = bench.folds(dataset, X, y, quick=False)[0][0]
    cv: Any = (RepeatedStratifiedKFold(n_splits=3, n_repeats=5, random_state=0) if dataset == "german_credit"
               else StratifiedKFold(3, shuffle=True, random_state=0))
    return outer, list(cv.split(X.iloc[outer], y[outer]))


def run(dataset: str, candidates: list[str], data_dir: Path) -> dict[str, Any]:
    X, y = split_applicants(read_applicants(dataset, data_dir))
    outer, folds = inner_folds(dataset, X, y)
    X, y = X.iloc[outer].reset_index(drop=True), y[outer]
    names = [c for c in candidates if dataset in CANDIDATES[c]]
    if dataset == "german_credit" and "ensemble_scorecard" in names:
        names += ["ensemble_scorecard+mlp", "ensemble_scorecard+lr"]
    preds: dict[str, list[np.ndarray]] = {}
    fit_s: dict[str, list[float]] = {}
    for i, (a, b) in enumerate(folds):
        for name in names:
            t0 = time.perf_counter()
            if "+" in name:  # a fourth member: mean of the ensemble (3/4) and the candidate (1/4)
                base, extra = name.split("+")
                q = model("mlp_small" if extra == "mlp" else extra, dataset)(X.iloc[a], y[a], X.iloc[b])
                p = 0.75 * preds[base][i] + 0.25 * q
            else:
                p = model(name, dataset)(X.iloc[a], y[a], X.iloc[b])
            preds.setdefault(name, []).append(p)
            fit_s.setdefault(name, []).append(time.perf_counter() - t0)
        print(dataset, "fold", i, {n: round(mt.auc(y[b], preds[n][i]), 4) for n in names}, flush=True)
    if {"gbm_unconstrained", "mlp"} <= set(names):
        for w in (0.1, 0.2):
            preds[f"gbm_unconstrained+mlp@{w}"] = [(1 - w) * g + w * m for g, m in
                                                   zip(preds["gbm_unconstrained"], preds["mlp"], strict=True)]
    rows: dict[str, Any] = {}
    for name, ps in preds.items():
        aucs = [mt.auc(y[b], p) for (_, b), p in zip(folds, ps, strict=True)]
        r: dict[str, Any] = {"auc": round(float(np.mean(aucs)), 4), "auc_std": round(float(np.std(aucs)), 4)}
        if dataset == "german_credit":
            r["statlog_cost"] = round(float(np.mean([mt.misclassification_cost(y[b], (p > 1 / 6).astype(int))
                                                     for (_, b), p in zip(folds, ps, strict=True)])), 4)
        if name in fit_s:
            r["fit_s_median_fold"] = round(float(np.median(fit_s[name])), 2)
        rows[name] = r
    return {"rows_in_outer_fold": int(len(outer)), "inner_folds": len(folds), "candidates": rows}


def to_markdown(res: dict[str, Any]) -> str:
    out = ["# Credit candidates on inner folds", "", f"Command: `{res['command']}`  ", f"Run: {res['started']} UTC.", "",
           "Folds inside the first outer training fold of `benchmarks/credit.py` (see the script's docstring); "
           "the outer folds play no part.  AUC and StatLog cost: mean over the inner folds.", ""]
    for ds, d in res["datasets"].items():
        german = ds == "german_credit"
        out += [f"## {ds}", "", f"{d['rows_in_outer_fold']:,} rows, {d['inner_folds']} inner folds.", "",
                "| candidate | AUC | " + ("StatLog cost | " if german else "") + "fit s (median fold) |",
                "|---|---|" + ("---|" if german else "") + "---|"]
        for name, r in d["candidates"].items():
            out.append(f"| {name} | {r['auc']:.4f} ± {r['auc_std']:.4f} | "
                       + (f"{r['statlog_cost']:.4f} | " if german else "") + f"{r.get('fit_s_median_fold', '-')} |")
        out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="+", choices=DATASETS, default=list(DATASETS))
    ap.add_argument("--candidates", nargs="+", choices=list(CANDIDATES), default=list(CANDIDATES))
    ap.add_argument("--data-dir", type=Path, default=None)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    data_dir = args.data_dir or default_data_dir()
    res: dict[str, Any] = {"command": "python benchmarks/credit_inner.py " + " ".join(argv if argv is not None else sys.argv[1:]),
                           "started": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()), "datasets": {}}
    for ds in args.datasets:
        res["datasets"][ds] = run(ds, args.candidates, data_dir)
        if not args.no_write:
            (HERE / "results" / "credit_inner.json").write_text(json.dumps(res, indent=1), encoding="utf-8")
            (HERE / "results" / "credit_inner.md").write_text(to_markdown(res), encoding="utf-8")
    print(to_markdown(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
