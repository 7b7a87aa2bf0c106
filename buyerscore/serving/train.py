"""``buyerscore train``: fit the configured models into one versioned bundle of a registry.

* purchasing power: :class:`~buyerscore.models.purchasing_power.SpendForecaster` (expected spend in
  ``(as_of, as_of + horizon]``) and :class:`~buyerscore.models.purchasing_power.SpendTier`
  (high / mid / low), on the behaviour features of every user at ``as_of``;
* anomaly: :class:`~buyerscore.models.anomaly.AnomalyDetector` on the same features;
* credit: :class:`~buyerscore.models.credit.CreditScorecard` or ``CreditGBM`` on the applicant table
  named in ``[credit] dataset`` (from the store, or read from the data folder when not loaded).

A model family whose package is not installed or whose data is missing is left out with a warning,
so a bundle holds whichever models can be trained.  Each model's metrics are measured on a 20 %
hold-out of users (applicants) before the final fit on all rows.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from buyerscore.artifacts import data_hash
from buyerscore.config import BuyerscoreConfig
from buyerscore.events.store import EventStore
from buyerscore.exceptions import SchemaError
from buyerscore.registry import ModelEntry, ModelRegistry

logger = logging.getLogger(__name__)

ID = ("platform", "user_id")


def _holdout(n: int, seed: int = 0, share: float = 0.2) -> np.ndarray:
    rng = np.random.default_rng(seed)
    test = np.zeros(n, dtype=bool)
    test[rng.choice(n, size=max(1, round(n * share)), replace=False)] = True
    return test


def _metrics(d: dict[str, Any]) -> dict[str, Any]:
    """JSON-ready metrics: numpy numbers as Python ones, counts staying integers (``n_test=472``, not 472.0)."""
    return {k: (int(v) if isinstance(v, (int, np.integer)) and not isinstance(v, bool) else
                float(v) if isinstance(v, (float, np.floating)) else v) for k, v in d.items()}


def train_power(X: pd.DataFrame, spend: np.ndarray, cfg: BuyerscoreConfig,
                report: list[Any] | None = None) -> dict[str, ModelEntry]:
    """Spend forecaster and tier model (whichever the purchasing-power package provides); the hold-out's
    actual and predicted spend and tiers are appended to ``report`` (report inputs) when given."""
    try:
        from buyerscore.models.purchasing_power import SpendForecaster, SpendTier  # type: ignore[attr-defined]
    except ImportError:
        logger.warning("purchasing-power models (SpendForecaster, SpendTier) are not available; skipping them")
        return {}
    from buyerscore.models.purchasing_power.metrics import normalized_gini, spearman, top_decile_capture

    feats = [c for c in X.columns if c not in ID]
    Xf = X[feats]
    test = _holdout(len(Xf))
    out: dict[str, ModelEntry] = {}
    fkw: dict[str, Any] = {"horizon_days": float(cfg.power.horizon_days)} if _accepts(SpendForecaster, "horizon_days") else {}
    m = SpendForecaster(**fkw).fit(Xf[~test], spend[~test])
    pred = np.asarray(m.predict(Xf[test]), dtype=float)
    met = _metrics({"normalized_gini": normalized_gini(spend[test], pred), "spearman": spearman(spend[test], pred),
                    "top_decile_capture": top_decile_capture(spend[test], pred), "n_train": int((~test).sum()),
                    "n_test": int(test.sum())})
    out["power_spend"] = ModelEntry(SpendForecaster(**fkw).fit(Xf, spend), feats, metrics=met,
                                    params={"horizon_days": cfg.power.horizon_days})
    tq = (float(cfg.power.tier_quantiles[0]), float(cfg.power.tier_quantiles[1]))
    tier = SpendTier(thresholds=tq, kind="quantile") if _accepts(SpendTier, "thresholds") else SpendTier()
    t = tier.fit(Xf[~test], spend[~test])
    proba = np.asarray(t.predict_proba(Xf[test]), dtype=float)
    classes = [str(c) for c in t.classes_]
    score = proba[:, classes.index("high")] if "high" in classes else proba.max(axis=1)
    if report is not None:
        from buyerscore.explain.report import power_inputs

        report.append(power_inputs(spend[test], pred, tiers=t.predict(Xf[test]), tier_quantiles=tq))
    out["power_tier"] = ModelEntry(tier.__class__(**tier.get_params()).fit(Xf, spend), feats,
                                   metrics=_metrics({"normalized_gini_p_high": normalized_gini(spend[test], score)}),
                                   params={"tier_quantiles": list(cfg.power.tier_quantiles)})
    return out


def _accepts(cls: type, name: str) -> bool:
    import inspect
    return name in inspect.signature(cls).parameters


def train_anomaly(X: pd.DataFrame, cfg: BuyerscoreConfig, report: list[Any] | None = None) -> dict[str, ModelEntry]:
    try:
        from buyerscore.models.anomaly import AnomalyDetector
    except ImportError:
        logger.warning("AnomalyDetector is not available; skipping the anomaly model")
        return {}
    feats = [c for c in X.columns if c not in ID]
    det = AnomalyDetector(contamination=cfg.anomaly.contamination).fit(X[feats])
    flagged = float(np.mean(det.flag(X[feats])))
    if report is not None:  # the training users' scores (no ids): the report's distribution and top rows
        from buyerscore.explain.report import anomaly_inputs

        report.append(anomaly_inputs(det, X[feats]))
    return {"anomaly": ModelEntry(det, list(det.feature_names_in_), metrics={"train_flag_rate": flagged},
                                  params={"contamination": cfg.anomaly.contamination})}


def train_credit(store: EventStore, cfg: BuyerscoreConfig,
                 report: list[Any] | None = None) -> tuple[dict[str, ModelEntry], str | None]:
    name = cfg.credit.dataset
    if not name:
        return {}, None
    try:
        from buyerscore.models.base import split_applicants
        from buyerscore.models.credit import CreditEnsemble, CreditForest, CreditGBM, CreditScorecard
    except ImportError:
        logger.warning("credit models are not available; skipping the credit model")
        return {}, None
    from buyerscore.models.metrics import auc, brier, ks

    if f"applicants_{name}" in store.applicant_tables():
        app = store.read_applicants(name)
    else:
        from buyerscore.datasets import read_applicants
        try:
            app = read_applicants(name)
        except (FileNotFoundError, SchemaError) as exc:
            logger.warning("credit dataset %s not available (%s); skipping the credit model", name, exc)
            return {}, None
    X, y = split_applicants(app, target=cfg.credit.target)
    cls = {"scorecard": CreditScorecard, "gbm": CreditGBM, "forest": CreditForest,
           "ensemble": CreditEnsemble}[cfg.credit.model]
    kw: dict[str, Any] = {"pdo": cfg.credit.pdo, "base_score": cfg.credit.base_score, "base_odds": cfg.credit.base_odds}
    if cfg.credit.model == "ensemble":
        kw["members"] = list(cfg.credit.members)
    if cfg.credit.model == "scorecard":  # the dataset's special codes get their own bins, as in 'credit train'
        from buyerscore.models.credit import special_codes_for

        codes = {c: v for c, v in special_codes_for(name).items() if c in X.columns}
        if codes:
            kw["special_codes"] = codes
    test = _holdout(len(X))
    m = cls(**kw).fit(X[~test], y[~test])
    p = m.predict_proba(X[test])[:, 1]
    met = _metrics({"auc": auc(y[test], p), "ks": ks(y[test], p), "brier": brier(y[test], p),
                    "n_train": int((~test).sum()), "n_test": int(test.sum())})
    final = cls(**kw).fit(X, y)
    if report is not None:  # hold-out ROC/KS/calibration/grades of the hold-out model; the final model's table
        from buyerscore.explain.report import credit_inputs

        part = credit_inputs(m, X[test], y[test])
        if hasattr(final, "scorecard_table"):
            part.scorecard_table = final.scorecard_table()
        report.append(part)
    # the model's own parameters (coding, trend, members, ...) beside the config's, as 'credit train' records them
    params = {**final.get_params(deep=False), **kw, "model": cfg.credit.model, "dataset": name}
    entry = ModelEntry(final, list(final.features_), metrics=met, training_data_hash=data_hash(app), params=params,
                       extra={"dataset": name, "target": cfg.credit.target,
                              "feature_names_in": list(final.feature_names_in_),
                              "excluded_features": list(final.excluded_features_)})
    return {"credit": entry}, name


def train_bundle(cfg: BuyerscoreConfig, registry: str | Path, *, as_of: Any, description: str = "") -> str:
    """Train every configured model and write one (unpromoted) bundle; returns its version."""
    from buyerscore.features import build_features, build_labels, describe, unit
    from buyerscore.features.sql import to_timestamp

    ts = to_timestamp(as_of)
    windows = tuple(cfg.features.windows)
    db = Path(cfg.store.db)
    if not db.exists():
        raise FileNotFoundError(f"Event store {db} does not exist; load events first ('buyerscore datasets load "
                                "cdnow --db ...') or set [store] db in the config.")
    entries: dict[str, ModelEntry] = {}
    parts: list[Any] = []
    with EventStore(db, read_only=True) as store:
        X = build_features(store.con, as_of=ts, windows=windows)
        feature_hash = data_hash(X)
        if len(X):
            y = build_labels(store.con, as_of=ts, horizon_days=cfg.power.horizon_days)
            spend = X[list(ID)].merge(y, on=list(ID), how="left")["future_spend"].fillna(0.0).to_numpy(float)
            entries.update(train_power(X, spend, cfg, parts))
            entries.update(train_anomaly(X, cfg, parts))
        else:
            logger.warning("no behaviour events at or before %s: no purchasing-power or anomaly model", ts)
        credit, credit_dataset = train_credit(store, cfg, parts)
        entries.update(credit)
    for e in entries.values():
        e.training_data_hash = e.training_data_hash or feature_hash
    if not entries:
        raise SchemaError("No model could be trained: no behaviour events before as_of and no credit dataset. "
                          "Load data first ('buyerscore datasets load ...').")
    from buyerscore.explain.report import ReportInputs, merge_inputs

    as_of_text = str(ts.date()) if ts == ts.normalize() else str(ts)
    header = ReportInputs(title=f"buyerscore bundle trained as of {as_of_text}", metadata={
        "as of": as_of_text, "users": f"{len(X):,}", "credit dataset": credit_dataset or "none",
        "metrics measured on": "a 20 % hold-out of users (applicants), before the final fit on all rows; "
                               "the anomaly section shows the detector's own training users"})
    evaluated: dict[str, str] = {}
    if "credit" in entries:
        n_ct = int(entries["credit"].metrics.get("n_test", 0))
        evaluated.update(dict.fromkeys(("roc", "ks", "calibration", "score-distribution", "lift", "shap"),
                                       f"{n_ct:,} held-out applicants ({credit_dataset}), not used in fitting"))
        evaluated["scorecard"] = "bins, counts and bad rates of the final model, fitted on every applicant"
    if "power_spend" in entries:
        n_pt = int(entries["power_spend"].metrics.get("n_test", 0))
        evaluated.update(dict.fromkeys(("power", "tiers"), f"{n_pt:,} held-out users (20 %), not used in fitting; "
                                       f"actual spend over the {cfg.power.horizon_days} days after {as_of_text}"))
    if "anomaly" in entries:
        evaluated["anomaly"] = (f"all {len(X):,} users, the rows the detector was fitted on (in-sample: "
                                f"{cfg.anomaly.contamination:.0%} of them are flagged by construction)")
    header.evaluated_on = evaluated
    names = sorted({f for e in entries.values() for f in e.features})
    spec = {f: {"description": describe(f), "unit": unit(f)} for f in names}
    return ModelRegistry(registry).create(
        entries, as_of=str(ts), training_data_hash=feature_hash, feature_spec=spec, description=description,
        metrics={"n_users": len(X), "credit_dataset": credit_dataset},
        config={**cfg.model_dump(mode="json"), "windows": list(windows)},
        report_inputs=merge_inputs(header, *parts))
