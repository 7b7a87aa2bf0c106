"""Small stand-in bundles for tests and benchmarks of the serving layer (not for production scoring).

They exercise every model kind the pipeline knows with plain scikit-learn / LightGBM models fitted on
real behaviour features, so the serving layer can be tested independently of the model packages.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.ensemble import IsolationForest
from sklearn.utils.validation import check_is_fitted

from buyerscore.artifacts import data_hash
from buyerscore.registry import ModelEntry, ModelRegistry


class IsolationAnomaly(BaseEstimator):
    """IsolationForest with a score in [0, 1] (rank of the training scores) and a flag."""

    def __init__(self, *, contamination: float = 0.02, random_state: int = 0) -> None:
        self.contamination = contamination
        self.random_state = random_state

    def fit(self, X: pd.DataFrame, y: Any = None) -> IsolationAnomaly:
        Xa = np.nan_to_num(np.asarray(X, dtype=float))
        self.forest_ = IsolationForest(n_estimators=50, random_state=self.random_state).fit(Xa)
        self.train_raw_ = np.sort(-self.forest_.score_samples(Xa))
        self.threshold_ = 1.0 - self.contamination
        return self

    def score(self, X: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self)
        raw = -self.forest_.score_samples(np.nan_to_num(np.asarray(X, dtype=float)))
        return np.searchsorted(self.train_raw_, raw, side="right") / len(self.train_raw_)

    def flag(self, X: pd.DataFrame) -> np.ndarray:
        return self.score(X) >= self.threshold_


def standin_bundle(con: Any, registry: str | Path, *, as_of: str, horizon_days: int = 90,
                   windows: tuple[int, ...] = (7, 30, 90, 365), kinds: tuple[str, ...] = (
                       "power_spend", "power_tier", "credit", "anomaly"), seed: int = 0,
                   n_estimators: int = 30, promote: bool = True) -> str:
    """Fit stand-in models on ``build_features``/``build_labels`` of a store and register a bundle."""
    import lightgbm as lgb
    from sklearn.linear_model import LogisticRegression

    from buyerscore.features import build_features, build_labels

    X = build_features(con, as_of=as_of, windows=windows)
    y = build_labels(con, as_of=as_of, horizon_days=horizon_days, warn_censored=False)
    df = X.merge(y, on=["platform", "user_id"], how="left")
    feats = [c for c in X.columns if c not in ("platform", "user_id")]
    Xf = df[feats].astype(float)
    spend = df["future_spend"].fillna(0.0).to_numpy()
    entries: dict[str, ModelEntry] = {}
    params: dict[str, Any] = {"n_estimators": n_estimators, "num_leaves": 15, "min_child_samples": 5, "verbose": -1,
              "random_state": seed, "n_jobs": 1}
    if "power_spend" in kinds:
        entries["power_spend"] = ModelEntry(lgb.LGBMRegressor(**params).fit(Xf, spend), feats)
    if "power_tier" in kinds:
        q = np.quantile(spend, [0.5, 0.9])
        tier = np.where(spend > q[1], "high", np.where(spend > q[0], "mid", "low"))
        if len(set(tier)) < 3:  # tiny data: split by rank
            r = pd.Series(spend).rank(method="first").to_numpy() / len(spend)
            tier = np.where(r > 0.9, "high", np.where(r > 0.5, "mid", "low"))
        entries["power_tier"] = ModelEntry(lgb.LGBMClassifier(**params).fit(Xf, tier), feats)
    if "credit" in kinds:
        cf = [c for c in feats if c in ("recency_days", "n_purchases", "monetary_sum", "refund_rate", "tenure_days")]
        bad = (df["future_purchase"].fillna(0) == 0).astype(int).to_numpy()
        from sklearn.impute import SimpleImputer
        from sklearn.pipeline import make_pipeline
        clf = make_pipeline(SimpleImputer(), LogisticRegression(max_iter=500)).fit(Xf[cf], bad)
        entries["credit"] = ModelEntry(clf, cf)
    if "anomaly" in kinds:
        entries["anomaly"] = ModelEntry(IsolationAnomaly(random_state=seed).fit(Xf), feats)
    reg = ModelRegistry(registry)
    v = reg.create(entries, as_of=as_of, training_data_hash=data_hash(X), description="stand-in models",
                   feature_spec={f: {} for f in feats}, config={"features": {"windows": list(windows)}})
    if promote:
        reg.promote(v)
    return v
