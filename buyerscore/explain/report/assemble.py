"""Fill :class:`ReportInputs` from fitted models and data (for ``buyerscore demo`` and scheduled jobs).

Each helper returns a new ``ReportInputs`` with its own fields filled; :func:`merge_inputs` combines
them (later non-empty fields win, notes and metadata are merged).

Examples
--------
>>> merged = merge_inputs(ReportInputs(title="t", proba=[0.1]), ReportInputs(drift_verdict="stable"))
>>> merged.title, list(merged.proba), merged.drift_verdict
('t', [0.1], 'stable')
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import numpy as np
import pandas as pd

from buyerscore.explain.report.build import ReportInputs, without_identifiers


def merge_inputs(*parts: ReportInputs) -> ReportInputs:
    """Combine several partial inputs (fields set later win; ``notes``, ``metadata`` and ``evaluated_on``
    are merged)."""
    out = ReportInputs()
    default_title = out.title
    for p in parts:
        for f in fields(ReportInputs):
            v = getattr(p, f.name)
            if f.name in ("notes", "metadata", "evaluated_on"):
                getattr(out, f.name).update(v)
            elif f.name == "title":
                if v != default_title:
                    out.title = v
            elif v is not None:
                setattr(out, f.name, v)
    return out


def credit_inputs(model: Any, X: pd.DataFrame, y: Any, *, max_rows_shap: int = 5000) -> ReportInputs:
    """ROC/KS/calibration/lift inputs, points, grades, the scorecard table (if any) and contributions
    (points lost for the scorecard, SHAP for the GBM) of a fitted buyerscore credit model on ``(X, y)``."""
    proba = np.asarray(model.predict_proba(X))[:, 1]
    inp = ReportInputs(y_true=np.asarray(y, dtype=float), proba=proba)
    if hasattr(model, "grade"):
        inp.score = np.asarray(model.score(X), dtype=float)
        inp.grade = np.asarray(model.grade(X), dtype=object)
    if hasattr(model, "scorecard_table"):
        inp.scorecard_table = model.scorecard_table()
    else:
        inp.notes["scorecard"] = f"the credit model is a {type(model).__name__}, not a points scorecard"
    if hasattr(model, "contributions"):
        Xs = X.sample(n=min(len(X), max_rows_shap), random_state=0) if len(X) > max_rows_shap else X
        inp.shap = model.contributions(Xs)
        inp.shap_values = Xs[[c for c in inp.shap.columns if c in Xs.columns]]
        inp.contribution_unit = ("points lost (against each feature's best bin)" if hasattr(model, "scorecard_table")
                                 else "log-odds of default (SHAP)")
    inp.metadata["credit model"] = type(model).__name__
    return inp


def power_inputs(spend_true: Any, spend_pred: Any, *, tiers: Any = None,
                 tier_quantiles: tuple[float, float] = (0.5, 0.9)) -> ReportInputs:
    """Purchasing-power inputs; tiers default to the ``tier_quantiles`` of the prediction (actual tiers of
    the actual spend, same quantiles)."""
    from buyerscore.models.purchasing_power.metrics import quantile_tiers

    a = np.asarray(spend_true, dtype=float)
    p = np.asarray(spend_pred, dtype=float)
    t = np.asarray(tiers) if tiers is not None else quantile_tiers(p, quantiles=tier_quantiles)
    return ReportInputs(spend_true=a, spend_pred=p, tiers=t, tiers_true=quantile_tiers(a, quantiles=tier_quantiles))


def anomaly_inputs(detector: Any, features: pd.DataFrame, *, top: int = 20, lang: str = "en") -> ReportInputs:
    """Score distribution, threshold and the ``top`` most unusual users with their reasons.

    The table holds their ``rank`` (1 = most unusual), score, flag and reasons, but no ``user_id`` or other
    identifying column (the report is shared; ``buyerscore anomaly score --out`` keeps the ids).
    """
    sf = detector.score_frame(features, k=3, lang=lang)
    top_rows, _ = without_identifiers(sf.nlargest(top, "anomaly_score").reset_index(drop=True))
    if "flagged" in top_rows.columns:  # 0/1 from score_frame; a bool reads "yes" in the table
        top_rows["flagged"] = top_rows["flagged"].astype(bool)
    top_rows.insert(0, "rank", np.arange(1, len(top_rows) + 1))
    first = sf.loc[sf["flagged"].astype(bool), "reason_features"].dropna().astype(str).str.split(",").str[0]
    drivers = first[first != ""].value_counts().rename_axis("feature").reset_index(name="flagged_users")
    return ReportInputs(anomaly_scores=sf["anomaly_score"].to_numpy(), anomaly_threshold=float(detector.threshold_),
                        anomaly_table=top_rows, anomaly_drivers=drivers)


def fairness_inputs(report: Any) -> ReportInputs:
    """The per-group table, per-attribute summary and notes of a
    :class:`~buyerscore.explain.fairness.FairnessReport`."""
    return ReportInputs(fairness=report.by_group, fairness_summary=report.summary_frame(),
                        fairness_notes=list(report.notes) or None, fairness_di_threshold=report.di_threshold)


def drift_inputs(report: Any) -> ReportInputs:
    """The PSI table, verdict and the reasons for it of a :class:`~buyerscore.explain.monitoring.DriftReport`."""
    return ReportInputs(drift=report.table, drift_verdict=report.verdict, drift_reasons=list(report.reasons) or None)
