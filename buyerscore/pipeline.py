"""The one scoring path: :meth:`ScoringPipeline.score_frame`.

The API (one user at a time), batch scoring (chunks of a Parquet file) and any later
Spark job call the same :meth:`ScoringPipeline.score_frame` on a frame of features, so a
score never depends on the path that computed it.

Output columns (present only for the model kinds the bundle holds and whose input
features are in the frame):

====================  ======================================================================
``power_expected_spend``  expected spend in the forecast horizon (``power_spend`` model)
``power_tier``            high / mid / low (``power_tier`` model) and ``power_p_high|mid|low``
``credit_pd``             probability of default; ``credit_score`` (points), ``credit_grade``
``anomaly_score``         anomaly score in [0, 1]; ``anomaly_flag`` (bool)
``<section>_reason_<i>``  i-th adverse reason (feature name) and ``..._contribution`` (> 0 = adverse)
``model_version``         bundle version that produced the row
====================  ======================================================================

Reason codes follow :mod:`buyerscore.explain.reason_codes`: a contribution > 0 pushes toward
the adverse outcome (higher default risk, higher anomaly score, lower expected spend).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from buyerscore._validation import check_param, examples
from buyerscore.exceptions import ModelInputError, SchemaError

logger = logging.getLogger(__name__)

ID_COLUMNS: tuple[str, ...] = ("platform", "user_id")
TIERS: tuple[str, ...] = ("high", "mid", "low")
SECTIONS: dict[str, str] = {"power_spend": "power", "power_tier": "power", "credit": "credit", "anomaly": "anomaly"}
"""Model kind -> output section (both power models share the ``power`` section)."""
# kinds whose raw contributions point toward a *favourable* outcome (more spend): negate them
_FAVOURABLE_KINDS = frozenset({"power_spend"})
_DEFAULT_PDO, _DEFAULT_BASE_SCORE, _DEFAULT_BASE_ODDS = 20.0, 600.0, 50.0


def categorical_features(model: Any) -> frozenset[str]:
    """Columns a model takes as categories (buyerscore credit models record ``feature_dtypes_``)."""
    d = getattr(model, "feature_dtypes_", None)
    return frozenset(c for c, t in d.items() if t == "categorical") if isinstance(d, dict) else frozenset()


def model_frame(X: pd.DataFrame, features: Sequence[str], categorical: frozenset[str] = frozenset()) -> pd.DataFrame:
    """The ``features`` columns of ``X`` as float64 (categorical columns kept as they are); without
    categorical columns, one column-major float64 block.

    Dtypes are checked from ``X.dtypes`` (one look-up, not one Series per column), so the cost per
    call stays small for the one-row frames of the API.
    """
    sub = X.loc[:, list(features)]
    names = list(sub.columns)
    num = [c for c in names if c not in categorical]
    bad = [c for c, dt in zip(names, sub.dtypes.to_numpy(), strict=True)  # one pass, no per-column look-up
           if c not in categorical and getattr(dt, "kind", "O") not in "fiub"
           and not (pd.api.types.is_numeric_dtype(dt) or pd.api.types.is_bool_dtype(dt))]
    if bad:
        conv = {c: pd.to_numeric(sub[c], errors="coerce") for c in bad}
        broken = [c for c in bad if conv[c].isna().sum() > sub[c].isna().sum()]
        if broken:
            raise ModelInputError(f"Feature column(s) {broken[:3]} are not numeric (dtype "
                                  f"{sub[broken[0]].dtype}); pass numbers (null for unknown).")
        sub = sub.assign(**conv)
    if not categorical:
        # one column-major float64 block: every model of the set reads it without another copy
        A = sub.to_numpy(dtype=np.float64, na_value=np.nan)
        return pd.DataFrame(np.asfortranarray(A), columns=sub.columns, index=sub.index, copy=False)
    return sub.astype({c: "float64" for c in num})


def _lgbm_contrib(model: Any, Xf: pd.DataFrame) -> np.ndarray | None:
    try:
        import lightgbm as lgb
    except ImportError:  # pragma: no cover
        return None
    booster = None
    if isinstance(model, lgb.LGBMModel):
        booster = model.booster_
    elif isinstance(model, lgb.Booster):
        booster = model
    if booster is None or getattr(model, "n_classes_", 2) > 2 or booster.num_model_per_iteration() > 1:
        return None  # multiclass: contributions have no single adverse direction
    c: np.ndarray = np.asarray(booster.predict(Xf.to_numpy(dtype=np.float64), pred_contrib=True))
    nf = Xf.shape[1]
    if c.shape[1] != nf + 1:  # multiclass: not a single direction
        return None
    return np.asarray(c[:, :nf])


def contributions(model: Any, Xf: pd.DataFrame) -> np.ndarray | None:
    """Per-row, per-feature contributions of ``model`` in its own output direction, or None.

    Uses the model's ``contributions(X)`` method (buyerscore models), else LightGBM
    ``pred_contrib`` (SHAP values); other models give no reason codes.
    """
    fn = getattr(model, "contributions", None)
    if callable(fn):
        c = fn(Xf)
        arr = c.reindex(columns=Xf.columns).to_numpy(dtype=float) if isinstance(c, pd.DataFrame) else np.asarray(c, float)
        return arr
    return _lgbm_contrib(model, Xf)


def top_k_adverse(contrib: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and values of the ``k`` largest positive entries per row (-1 / NaN where fewer).

    Ties keep the feature order (stable), like :func:`buyerscore.explain.reason_codes.top_reasons`.

    >>> idx, val = top_k_adverse(np.array([[3.0, -1.0, 2.0], [0.0, 0.5, np.nan]]), 2)
    >>> idx.tolist(), val.tolist()
    ([[0, 2], [1, -1]], [[3.0, 2.0], [0.5, nan]])
    """
    n, f = contrib.shape
    k_eff = min(k, f)
    key = np.where(np.isnan(contrib), -np.inf, contrib)
    order = np.argsort(-key, axis=1, kind="stable")[:, :k_eff]
    vals = np.take_along_axis(key, order, axis=1)
    ok = vals > 0
    idx = np.where(ok, order, -1)
    vals = np.where(ok, vals, np.nan)
    if k_eff < k:
        idx = np.hstack([idx, np.full((n, k - k_eff), -1)])
        vals = np.hstack([vals, np.full((n, k - k_eff), np.nan)])
    return idx, vals


class ScoringPipeline:
    """Score frames of features with every model of a bundle.

    Parameters
    ----------
    models : dict
        Model kind (``power_spend``, ``power_tier``, ``credit``, ``anomaly``) -> fitted model.
    features : dict
        Model kind -> the feature columns it was trained on (in order).
    version : str
        Bundle version, copied into every scored row.
    reason_k : int
        Adverse reason codes per section and row (0 = none).
    credit_scaling : tuple of float
        (pdo, base_score, base_odds) used to turn PD into points when the credit model has no
        ``score`` method of its own.
    windows : sequence of int, optional
        Behaviour-feature windows (days) the bundle was trained with; used to build features
        from raw events.

    Examples
    --------
    >>> import pandas as pd
    >>> from sklearn.linear_model import LinearRegression
    >>> X = pd.DataFrame({"user_id": ["a", "b"], "spend_90d": [10.0, 30.0]})
    >>> m = LinearRegression().fit(X[["spend_90d"]], [5.0, 15.0])
    >>> p = ScoringPipeline({"power_spend": m}, features={"power_spend": ["spend_90d"]}, version="v1")
    >>> p.score_frame(X)[["user_id", "power_expected_spend", "model_version"]].round(3).values.tolist()
    [['a', 5.0, 'v1'], ['b', 15.0, 'v1']]
    """

    def __init__(self, models: dict[str, Any], *, features: dict[str, list[str]], version: str = "unversioned",
                 reason_k: int = 4, credit_scaling: tuple[float, float, float] | None = None,
                 windows: Sequence[int] | None = None) -> None:
        check_param("ScoringPipeline", "reason_k", reason_k, lambda v: isinstance(v, int) and v >= 0, "an int >= 0")
        unknown = [k for k in models if k not in SECTIONS]
        if unknown:
            raise ModelInputError(f"Unknown model kind(s) {unknown}; allowed: {sorted(SECTIONS)}.")
        lacking = [k for k in models if k not in features]
        if lacking:
            raise ModelInputError(f"No feature list for model kind(s) {lacking}; pass features={{kind: [...]}}.")
        self.models = dict(models)
        self.features = {k: list(features[k]) for k in models}
        self.version = version
        self.reason_k = reason_k
        self.credit_scaling = credit_scaling or (_DEFAULT_PDO, _DEFAULT_BASE_SCORE, _DEFAULT_BASE_ODDS)
        self.windows = tuple(int(w) for w in windows) if windows is not None else None

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def from_bundle(cls, bundle: Any, *, reason_k: int = 4) -> ScoringPipeline:
        """Build from a :class:`buyerscore.registry.Bundle`."""
        models = {kind: m for kind, (m, _) in bundle.models.items()}
        feats = {kind: list(meta.features) for kind, (_, meta) in bundle.models.items()}
        cfg = (bundle.manifest.get("config") or {}).get("credit") or {}
        scaling = (float(cfg.get("pdo", _DEFAULT_PDO)), float(cfg.get("base_score", _DEFAULT_BASE_SCORE)),
                   float(cfg.get("base_odds", _DEFAULT_BASE_ODDS)))
        m = bundle.manifest
        windows = m.get("windows") or ((m.get("config") or {}).get("features") or {}).get("windows")
        return cls(models, features=feats, version=bundle.version, reason_k=reason_k, credit_scaling=scaling,
                   windows=windows)

    @classmethod
    def from_registry(cls, root: Any, version: str | None = None, *, reason_k: int = 4) -> ScoringPipeline:
        """Load the promoted (or given) bundle of a registry folder."""
        from buyerscore.registry import ModelRegistry
        return cls.from_bundle(ModelRegistry(root).load(version), reason_k=reason_k)

    # -- introspection --------------------------------------------------------------------------
    @property
    def kinds(self) -> list[str]:
        return list(self.models)

    @property
    def input_features(self) -> list[str]:
        """Union of every model's input features, in first-seen order."""
        seen: dict[str, None] = {}
        for fs in self.features.values():
            for f in fs:
                seen.setdefault(f, None)
        return list(seen)

    def missing_features(self, columns: Iterable[str]) -> dict[str, list[str]]:
        """Model kind -> features absent from ``columns`` (empty list = scorable)."""
        key = tuple(columns)
        memo = self.__dict__.setdefault("_missing_memo", {})
        hit = memo.get(key)
        if hit is None:
            cols = set(key)
            hit = {k: [f for f in fs if f not in cols] for k, fs in self.features.items()}
            if len(memo) < 256:
                memo[key] = hit
        return {k: list(v) for k, v in hit.items()}

    def scorable(self, columns: Iterable[str], *, source: str, fix: str) -> tuple[list[str], dict[str, list[str]]]:
        """The model kinds that can score a table with ``columns``, and the others with the features they lack.

        When no model can, a :class:`~buyerscore.exceptions.SchemaError` says what each model lacks, which
        columns ``source`` has, and ``fix``.
        """
        cols = list(columns)
        missing = self.missing_features(cols)
        kinds = [k for k in self.kinds if not missing[k]]
        skipped = {k: missing[k] for k in self.kinds if missing[k]}
        if not kinds:
            lacks = "; ".join(f"{k} lacks {len(v)} of {len(self.features[k])} (e.g. {examples(v, 5)})"
                              for k, v in skipped.items())
            raise SchemaError(f"{source} cannot be scored by any model of bundle {self.version}: {lacks}. "
                              f"Columns present: {examples(cols, 5)}. {fix}")
        return kinds, skipped

    # -- scoring --------------------------------------------------------------------------------
    def score_frame(self, X: pd.DataFrame, *, reasons: bool = True, kinds: Sequence[str] | None = None,
                    strict: bool = False) -> pd.DataFrame:
        """Score every row of ``X`` with every model whose features are present.

        Parameters
        ----------
        X : DataFrame
            Feature columns (as from :func:`buyerscore.features.build_features`, or applicant
            predictors for the credit model); id columns ``platform``/``user_id`` are copied through.
            Missing values (NaN) are passed to the models, which must handle them.
        reasons : bool
            Add the top ``reason_k`` adverse reason codes per section.
        kinds : sequence of str, optional
            Restrict to these model kinds (default: all in the bundle).
        strict : bool
            Raise :class:`~buyerscore.exceptions.ModelInputError` when a selected model's features are
            missing, instead of leaving that model out.

        Returns
        -------
        DataFrame
            One row per input row, same index; columns as in the module docstring.
        """
        kinds = list(kinds) if kinds is not None else self.kinds
        unknown = [k for k in kinds if k not in self.models]
        if unknown:
            raise ModelInputError(f"Model kind(s) {unknown} are not in bundle {self.version} (has {self.kinds}).")
        out = pd.DataFrame(index=X.index)
        for c in ID_COLUMNS:
            if c in X.columns:
                out[c] = X[c].array  # the column's own array (no conversion of string ids per chunk)
        missing = self.missing_features(X.columns)
        section_contrib: dict[str, tuple[np.ndarray, list[str]]] = {}
        frames: dict[tuple[tuple[str, ...], frozenset[str]], pd.DataFrame] = {}  # one conversion per feature set
        for kind in kinds:
            if missing[kind]:
                if strict:
                    raise ModelInputError(
                        f"Input lacks {len(missing[kind])} feature(s) of the {kind} model, e.g. "
                        f"{missing[kind][:3]}; build features with the same windows as bundle {self.version}.")
                logger.debug("skipping %s: %d features missing", kind, len(missing[kind]))
                continue
            model = self.models[kind]
            key = (tuple(self.features[kind]), categorical_features(model))
            Xf = frames.get(key)
            if Xf is None:
                Xf = frames[key] = model_frame(X, *key)
            getattr(self, f"_score_{kind}")(model, Xf, out)
            section = SECTIONS[kind]
            if reasons and self.reason_k and len(Xf) and section not in section_contrib:
                contrib = contributions(model, Xf)
                if contrib is not None:
                    section_contrib[section] = (-contrib if kind in _FAVOURABLE_KINDS else contrib,
                                                self.features[kind])
        for section, (contrib, feats) in section_contrib.items():
            idx, vals = top_k_adverse(contrib, self.reason_k)
            names = np.asarray(list(feats) + [None], dtype=object)
            for i in range(self.reason_k):
                out[f"{section}_reason_{i + 1}"] = pd.array(names[idx[:, i]], dtype="string")
                out[f"{section}_reason_{i + 1}_contribution"] = vals[:, i]
        out["model_version"] = self.version
        return out

    # -- one method per model kind ----------------------------------------------------------------
    @staticmethod
    def _score_power_spend(model: Any, Xf: pd.DataFrame, out: pd.DataFrame) -> None:
        pred = np.asarray(model.predict(Xf), dtype=float).reshape(-1)
        out["power_expected_spend"] = np.clip(pred, 0.0, None)

    @staticmethod
    def _score_power_tier(model: Any, Xf: pd.DataFrame, out: pd.DataFrame) -> None:
        proba = np.asarray(model.predict_proba(Xf), dtype=float)
        classes = [str(c) for c in getattr(model, "classes_", TIERS)]
        for t in TIERS:
            out[f"power_p_{t}"] = proba[:, classes.index(t)] if t in classes else 0.0
        if not len(Xf):
            out["power_tier"] = []
        elif hasattr(model, "tiers_from_proba"):  # SpendTier: its decision rule (class weights), as its predict
            out["power_tier"] = np.asarray(model.tiers_from_proba(proba), dtype=object).astype(str)
        else:
            out["power_tier"] = np.asarray(classes, dtype=object)[np.argmax(proba, axis=1)]

    def _score_credit(self, model: Any, Xf: pd.DataFrame, out: pd.DataFrame) -> None:
        proba = np.asarray(model.predict_proba(Xf), dtype=float)
        pd_ = proba[:, 1] if proba.ndim == 2 else proba
        out["credit_pd"] = pd_
        if callable(getattr(model, "score", None)) and _is_points_method(model):
            out["credit_score"] = np.asarray(model.score(Xf), dtype=float)
        else:
            pdo, base, odds0 = self.credit_scaling
            p = np.clip(pd_, 1e-9, 1 - 1e-9)
            out["credit_score"] = base + pdo / math.log(2) * (np.log((1 - p) / p) - math.log(odds0))
        grade = getattr(model, "grade", None)
        out["credit_grade"] = np.asarray(grade(Xf), dtype=object) if callable(grade) else None

    @staticmethod
    def _score_anomaly(model: Any, Xf: pd.DataFrame, out: pd.DataFrame) -> None:
        if callable(getattr(model, "score", None)) and _is_points_method(model):
            s = np.asarray(model.score(Xf), dtype=float)
        else:
            s = np.asarray(model.score_samples(Xf), dtype=float)
        out["anomaly_score"] = s
        thr = getattr(model, "threshold_", None)
        flag = getattr(model, "flag", None)
        if thr is not None:  # flag = score >= threshold_ (buyerscore detectors): no second pass over X
            out["anomaly_flag"] = s >= float(thr)
        elif callable(flag):
            out["anomaly_flag"] = np.asarray(flag(Xf), dtype=bool)
        else:
            out["anomaly_flag"] = s >= 0.5


def _is_points_method(model: Any) -> bool:
    """True when ``model.score(X)`` is a per-row score (buyerscore models), not scikit-learn's
    ``score(X, y)`` accuracy / R2 of a plain estimator."""
    fn = getattr(type(model), "score", None)
    return callable(fn) and str(getattr(fn, "__module__", "")).startswith("buyerscore.")
