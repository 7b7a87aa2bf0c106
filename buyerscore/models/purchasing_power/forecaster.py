"""``SpendForecaster`` (expected future spend) and ``SpendTier`` (high / mid / low with calibrated
probabilities).

``SpendForecaster`` fits two candidates on a training part and keeps the one with the higher
normalised Gini on a held-out validation part, then refits it on all rows:

* ``tweedie`` – a LightGBM with a Tweedie loss (log link) on the features, started from an *offset*:
  the customer's past spend per day extrapolated over the horizon (when ``net_spend`` and
  ``days_since_first`` are among the features, as :func:`~.inputs.power_features` builds them), so the
  trees learn multiplicative corrections and the heavy tail keeps its scale.  ``offset_base="total"``
  (default) divides past spend by the longest history in the training data (the offset orders
  customers like naive past spend); ``"rate"`` by each customer's own tenure;
* ``two_part`` – P(purchase) (LightGBM classifier) × E[spend | purchase] (LightGBM with a Gamma loss);
* ``blend`` – the mean of the ``tweedie`` and ``two_part`` predictions (averaging two differently
  biased models usually orders customers a little better than either);
* ``rate`` – the offset alone (past spend per day × horizon), kept when no model beats it on validation.

Training rows may come from several cut-offs (``fit(..., label_horizon=...)``, or
:meth:`SpendForecaster.fit_windows` which builds them from the event store with
:func:`~.inputs.training_windows`): earlier cut-offs add labelled rows and teach the model how
behaviour before a cut-off turns into spend after it, using only labels known at the real cut-off.

When the features hold the RFM summary (``frequency, recency, T, monetary_value``) the forecaster first
fits a :class:`~.clv.ProbabilisticCLV` and adds its expected purchases, P(alive), expected value per
purchase and expected spend as features (stacking).  Predictions are never negative.

Missing and non-finite values follow one policy:

* a row whose RFM summary is missing or impossible (NaN, inf, ``recency > T`` ...) gets NaN stacked
  ``clv_*`` features (LightGBM routes missing values itself); the other rows keep theirs, the CLV is fit on
  the usable rows, and the rows are named in a WARNING log.  If the CLV cannot be fit at all (too few
  repeat buyers) the ``clv_*`` features are switched off for the model, also logged at WARNING;
* a missing ``net_spend`` counts as no past spend in the offset; an infinite or huge one is capped at
  the largest float64, so the offset stays finite;
* a forecast that overflows float64 (e.g. ``net_spend=inf``) is returned as the largest float64
  (``np.finfo(float).max``) and logged at WARNING: it is never turned into 0;
* labels ``y`` must be finite and >= 0 and not all 0 (:class:`~buyerscore.exceptions.ModelInputError`
  naming the rows and values otherwise).
"""

from __future__ import annotations

import itertools
import logging
import os
from typing import Any, Literal

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin

from buyerscore._validation import as_frame, check_param, target_vector
from buyerscore.exceptions import ModelInputError
from buyerscore.models import trees
from buyerscore.models.purchasing_power._base import ensure_fitted
from buyerscore.models.purchasing_power.clv import ProbabilisticCLV, rfm_problems
from buyerscore.models.purchasing_power.metrics import normalized_gini

logger = logging.getLogger(__name__)

__all__ = ["SpendForecaster", "SpendTier"]

_ID_COLS = ("platform", "user_id")
_RFM = ("frequency", "recency", "T", "monetary_value")
_HORIZON = "label_horizon_days"
TIERS = ("low", "mid", "high")
_MAX = float(np.finfo(np.float64).max)
"""Largest forecast (and offset spend) returned: a forecast that overflows is capped here, never set to 0."""


def _rows(X: pd.DataFrame, pos: np.ndarray, k: int = 3) -> str:
    """At most ``k`` example rows (positions, with ``user_id`` when ``X`` has it) for an error message."""
    pos = np.asarray(pos)[:k]
    out = f"rows {pos.tolist()}"
    if isinstance(X, pd.DataFrame) and "user_id" in X.columns:
        out += f" (user_id {X['user_id'].iloc[pos].astype(str).tolist()})"
    return out


def _check_spend(y: Any, X: pd.DataFrame, owner: str) -> np.ndarray:
    """``y`` as a float vector of future spend: one finite value >= 0 per row of ``X``, else a
    :class:`~buyerscore.exceptions.ModelInputError` naming the rows and values."""
    arr = target_vector(y, owner, "the future spend of each row of X (spend_labels builds it)", ModelInputError)
    try:
        yv = arr.astype(float)
    except (TypeError, ValueError) as exc:
        raise ModelInputError(f"{owner}: y must be numbers (future spend per row of X); {exc}.") from None
    if len(yv) != len(X):
        raise ModelInputError(f"X has {len(X)} rows but y has {len(yv)}.")
    bad = np.flatnonzero(~np.isfinite(yv) | (yv < 0))
    if bad.size:
        raise ModelInputError(
            f"{owner}: y must be finite and >= 0 (future spend); {bad.size} row(s) are not, e.g. {_rows(X, bad)} "
            f"with y = {[float(v) for v in yv[bad[:3]]]}. Drop those rows, or floor net spend at 0 and fill "
            "missing spend with 0 (spend_labels does both).")
    return yv


def _fit_errors() -> tuple[type[BaseException], ...]:
    """Errors of fitting one candidate that ``method="auto"`` survives by trying the next candidate."""
    from lightgbm.basic import LightGBMError

    return (ModelInputError, ValueError, LightGBMError)


def _numeric(X: Any, owner: str, columns: Any = None) -> pd.DataFrame:
    """The numeric feature frame of ``X``; a 2-D array gets ``columns`` (the fitted feature names, by position)
    or scikit-learn's ``x0, x1, ...`` at fit time."""
    X = as_frame(X, owner, columns=None if columns is None else list(columns))
    if columns is None and X.shape[1] == 0:
        raise ModelInputError(f"{owner}.fit got 0 feature(s) (shape={X.shape}) while a minimum of 1 is required; "
                              "pass at least one feature column.")
    if columns is None and X.shape[0] < 2:
        raise ModelInputError(f"{owner}.fit needs at least 2 rows (one per user and cut-off); got "
                              f"n_samples={X.shape[0]}.")
    if columns is not None and list(X.columns) != list(columns):
        # scoring: columns the model was not fitted on (an id, a segment label, a cut-off) are not its
        # input, so their kind does not matter; the fitted columns are checked by the caller
        keep = set(columns)
        X = X[[c for c in X.columns if c in keep]]
    ids = [c for c in _ID_COLS if c in X.columns]
    if ids:
        X = X.drop(columns=ids)
    dtypes = X.dtypes.to_numpy()  # one look-up (not one Series per column): cheap for the API's one-row frames
    if all(dt == np.float64 for dt in dtypes):
        return X  # already float64 (e.g. the scoring pipeline's frames): nothing to convert
    bad = [c for c, t in zip(X.columns, dtypes, strict=True)
           if not (pd.api.types.is_numeric_dtype(t) or pd.api.types.is_bool_dtype(t))]
    if bad:
        raise ModelInputError(f"{owner} needs numeric feature columns; {len(bad)} are not: "
                              f"{'; '.join(_not_numeric(X[c]) for c in bad[:3])}. Convert them to numbers (e.g. "
                              "pd.to_numeric, or re-read the file with numeric dtypes) or drop them before fit.")
    return X.astype(float)


def _not_numeric(col: pd.Series) -> str:
    """``'name' (dtype object), e.g. row 3 = 'abc'``: a column that is not numeric, with its first value that
    is not a number (for an error message)."""
    vals = col.to_numpy(dtype=object)
    with np.errstate(all="ignore"):
        num = pd.to_numeric(pd.Series(vals), errors="coerce").to_numpy()
    bad = np.flatnonzero(pd.isna(num) & ~pd.isna(vals))
    where = f", e.g. row {int(bad[0])} = {vals[bad[0]]!r}" if bad.size else " (its values read as numbers)"
    return f"{col.name!r} (dtype {col.dtype}){where}"


def _columns(X: pd.DataFrame, names: Any) -> pd.DataFrame:
    """``X[names]``, or ``X`` itself when it has exactly those columns in that order (no copy)."""
    names = list(names)
    return X if list(X.columns) == names else X[names]


def _lgbm(kind: str, params: dict[str, Any], seed: int) -> Any:
    import lightgbm as lgb

    base = {"n_estimators": params["n_estimators"], "learning_rate": params["learning_rate"],
            "num_leaves": params["num_leaves"], "min_child_samples": params["min_child_samples"],
            "subsample": 0.8, "subsample_freq": 1, "colsample_bytree": 0.8, "reg_lambda": 1.0,
            "random_state": seed, "n_jobs": params["n_jobs"], "verbose": -1}
    if kind == "classifier":
        return lgb.LGBMClassifier(**base)
    return lgb.LGBMRegressor(objective=kind, **base)


class SpendForecaster(RegressorMixin, BaseEstimator):
    """Expected spend of each user in the next ``horizon_days``.

    Parameters
    ----------
    horizon_days : float
        Length of the forecast window in days (used by the offset and the stacked BG/NBD).
    method : {"auto", "tweedie", "two_part", "blend", "rate"}
        "auto" picks the candidate with the highest normalised Gini on a validation split; "blend" is the
        mean of "tweedie" and "two_part"; "rate" is the past spend rate extrapolated over the horizon (no
        trees; a candidate only when the offset exists).
    n_estimators, learning_rate, num_leaves, min_child_samples : LightGBM settings.
    clv_features : bool
        Stack a ProbabilisticCLV when the RFM columns are present.
    rate_offset : bool
        Start the Tweedie model from past spend per day × horizon (needs ``net_spend`` and
        ``days_since_first``).
    offset_base : {"total", "rate"}
        Days that past spend is divided by in the offset: the longest history in the training data
        ("total": ranks like total past spend, chosen on inner validation of the three benchmark shops)
        or each customer's own tenure ("rate").
    validation_fraction : float
        Share of rows held out to choose the method (with ``label_horizon``: drawn among the rows with
        the longest label window).
    balance : bool
        Multiply the final model's forecasts by ``balance_scale_`` so that they sum to the observed
        spend on the training rows (with ``label_horizon``: on the rows with the longest label window),
        the balance property of a GLM with log link, which boosting from
        an offset with shrinkage loses; on the benchmark shops the raw forecasts were 1-9 % low.  A
        scalar: one model's ranking, hence its Gini and top-decile capture, does not change.  In
        ``benchmarks/power.py`` the decile calibration error of the cross-fitted forecaster fell from
        0.081 / 0.076 / 0.047 to 0.040 / 0.039 / 0.035 (CDNOW / Online Retail / Ta Feng); with the
        earlier-cut-off rows it fell on CDNOW and Ta Feng but rose on Online Retail (3,002 customers,
        where the held-out half's level differs from the training half's by about 10 %).
    random_state : int
    n_jobs : int
        LightGBM threads for fitting, and for :meth:`contributions` / :meth:`reason_codes` of 256 rows or
        more (``-1``: every CPU).  Change it on a fitted or loaded model with ``set_params(n_jobs=...)``.

    Attributes
    ----------
    method_ : str
        The chosen candidate.
    validation_scores_ : dict
        Normalised Gini of each candidate on the validation part.
    balance_scale_ : float
        Training spend / the final model's in-sample forecast total (1.0 without ``balance``).
    feature_names_in_ : ndarray
        Input feature names (identifier columns ``platform``/``user_id`` are dropped).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = pd.DataFrame({"past": rng.gamma(1.0, 50, 400), "visits": rng.poisson(3, 400).astype(float)})
    >>> y = np.where(rng.random(400) < 0.5, 0.0, X["past"] * rng.gamma(2, 0.5, 400))
    >>> m = SpendForecaster(horizon_days=30, n_estimators=50).fit(X, y)
    >>> bool((m.predict(X) >= 0).all())
    True
    """

    def __init__(self, *, horizon_days: float = 30.0, method: Literal["auto", "tweedie", "two_part", "blend", "rate"] = "auto",
                 n_estimators: int = 300, learning_rate: float = 0.01, num_leaves: int = 15,
                 min_child_samples: int = 50, clv_features: bool = True, rate_offset: bool = True,
                 offset_base: Literal["total", "rate"] = "total",
                 validation_fraction: float = 0.25, balance: bool = True, random_state: int = 0,
                 n_jobs: int = 1) -> None:
        self.horizon_days = horizon_days
        self.method = method
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.clv_features = clv_features
        self.rate_offset = rate_offset
        self.offset_base = offset_base
        self.validation_fraction = validation_fraction
        self.balance = balance
        self.random_state = random_state
        self.n_jobs = n_jobs

    # -- helpers -------------------------------------------------------------------------------
    def _params(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("n_estimators", "learning_rate", "num_leaves", "min_child_samples",
                                              "n_jobs")}

    def _check(self) -> None:
        check_param(self, "horizon_days", self.horizon_days, lambda v: float(v) > 0, "a float > 0")
        check_param(self, "method", self.method, lambda v: v in ("auto", "tweedie", "two_part", "blend", "rate"),
                    "one of 'auto', 'tweedie', 'two_part', 'blend', 'rate'")
        check_param(self, "n_estimators", self.n_estimators, lambda v: int(v) == v and v > 0, "an int > 0")
        check_param(self, "learning_rate", self.learning_rate, lambda v: 0 < float(v) <= 1, "a float in (0, 1]")
        check_param(self, "num_leaves", self.num_leaves, lambda v: int(v) == v and v > 1, "an int > 1")
        check_param(self, "min_child_samples", self.min_child_samples, lambda v: int(v) == v and v > 0,
                    "an int > 0")
        check_param(self, "offset_base", self.offset_base, lambda v: v in ("total", "rate"), "'total' or 'rate'")
        check_param(self, "validation_fraction", self.validation_fraction, lambda v: 0 < float(v) < 1,
                    "a float in (0, 1)")
        check_param(self, "balance", self.balance, lambda v: isinstance(v, bool | np.bool_), "True or False")

    def _clv_columns(self, X: pd.DataFrame, *, warn: bool = True) -> dict[str, np.ndarray]:
        """The stacked ``clv_*`` features; NaN on rows whose RFM summary is missing or impossible (and the
        value features NaN on repeat buyers without a finite ``monetary_value``), logged at WARNING."""
        clv = self.clv_
        assert clv is not None
        x, tx, T = (X[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T"))
        bad = rfm_problems(x, tx, T)
        ok = ~bad
        Xc = X if ok.all() else X[ok]
        out: dict[str, np.ndarray] = {}
        out["clv_expected_purchases"] = clv.expected_purchases(Xc)
        out["clv_p_alive"] = clv.p_alive(Xc)
        no_value = np.zeros(len(X), dtype=bool)
        if clv.gg_params_ is not None:
            out["clv_value_per_purchase"] = clv.expected_average_value(Xc)
            out["clv_expected_spend"] = out["clv_expected_purchases"] * out["clv_value_per_purchase"]
            m = X["monetary_value"].to_numpy(dtype=float)
            with np.errstate(invalid="ignore"):
                no_value = ok & (x > 0) & ~np.isfinite(m)
        if bad.any():  # scatter back: NaN for the unusable rows
            for k, v in out.items():
                full = np.full(len(X), np.nan)
                full[ok] = v
                out[k] = full
        if no_value.any():
            for k in ("clv_value_per_purchase", "clv_expected_spend"):
                out[k] = np.where(no_value, np.nan, out[k])
        if warn and (bad.any() or no_value.any()):
            parts = []
            if bad.any():
                i = np.flatnonzero(bad)
                parts.append(f"{i.size} row(s) with a missing or impossible RFM summary (frequency, recency, T), "
                             f"e.g. {_rows(X, i)}: {[(float(x[j]), float(tx[j]), float(T[j])) for j in i[:3]]}")
            if no_value.any():
                i = np.flatnonzero(no_value)
                parts.append(f"{i.size} repeat buyer(s) without a finite monetary_value, e.g. {_rows(X, i)}")
            logger.warning("SpendForecaster: stacked clv_* features set to NaN for %s; the other rows keep theirs. "
                           "Rebuild the summary with rfm_summary() to score them fully.", "; ".join(parts))
        return out

    def _augment(self, X: pd.DataFrame, horizon: np.ndarray | None = None, *, warn: bool = True) -> pd.DataFrame:
        extra: dict[str, Any] = {}
        if getattr(self, "horizon_feature_", False):
            extra[_HORIZON] = float(self.horizon_days) if horizon is None else horizon
        if self.clv_ is not None:
            extra.update(self._clv_columns(X, warn=warn))
        if len(X.columns) and all(dt == np.float64 for dt in X.dtypes):
            # one column-major float64 block, which the tree kernels read without another copy per
            # booster: X's own block when it has one (a view), else one interleaved copy
            A = X.to_numpy(dtype=np.float64)
            if extra:
                M = np.empty((len(X), X.shape[1] + len(extra)), order="F")
                M[:, : X.shape[1]] = A
                for j, v in enumerate(extra.values()):
                    M[:, X.shape[1] + j] = np.asarray(v, dtype=np.float64) if np.ndim(v) else v
                A = M
            return pd.DataFrame(np.asfortranarray(A), columns=[*X.columns, *extra], index=X.index, copy=False)
        return X.assign(**extra)  # a new frame: the caller's is not changed

    def _validation_rows(self, yv: np.ndarray, hz: np.ndarray | None) -> np.ndarray:
        """Rows held out to choose the method: each row with probability ``validation_fraction`` (with
        ``label_horizon``: among the rows with the longest label window).  When that draw would leave the
        training part without a buyer (y > 0) or without a non-buyer (few buyers), buyers and non-buyers
        are drawn separately instead, each keeping at least one row for training."""
        rng = np.random.default_rng(self.random_state)
        eligible = np.ones(len(yv), dtype=bool) if hz is None else hz >= hz.max()
        val = (rng.random(len(yv)) < float(self.validation_fraction)) & eligible
        buys = yv > 0
        if ((buys & ~val).any() and (~buys & ~val).any()) or buys.all():
            return val
        rng = np.random.default_rng(self.random_state)
        val = np.zeros(len(yv), dtype=bool)
        for stratum in (yv > 0, yv <= 0):
            idx = np.flatnonzero(stratum & eligible)
            k = min(round(float(self.validation_fraction) * idx.size), int(stratum.sum()) - 1)
            if k > 0:
                val[rng.choice(idx, size=k, replace=False)] = True
        return val

    def _offset_days(self, X: pd.DataFrame) -> np.ndarray | float:
        span = getattr(self, "offset_span_", None)
        if span is not None:
            return float(span) + 1.0
        return X["days_since_first"].to_numpy(float) + 1

    def _offset(self, X: pd.DataFrame, horizon: np.ndarray | None = None) -> np.ndarray | None:
        if not self.offset_:
            return None
        h = float(self.horizon_days) if horizon is None else horizon
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            # missing spend: no past spend; infinite or overflowing spend: capped, so the log stays finite
            rate = np.clip(X["net_spend"].to_numpy(float), 0, None) / self._offset_days(X)
            spend = np.clip(np.nan_to_num(rate * h, nan=0.0, posinf=_MAX), 0, _MAX)
            return np.log(np.minimum(spend + self.offset_floor_, _MAX))

    def _fit_candidate(self, method: str, X: pd.DataFrame, y: np.ndarray, off: np.ndarray | None) -> Any:
        p = self._params()
        if method == "rate":
            if off is None:
                raise ModelInputError("method='rate' needs the columns net_spend and days_since_first.")
            return float(np.median(off))  # reference level of log expected spend, for contributions
        if method == "tweedie":
            m = _lgbm("tweedie", p, self.random_state)
            m.fit(X, y, init_score=off)
            return m
        if method == "blend":
            return (self._fit_candidate("tweedie", X, y, off), self._fit_candidate("two_part", X, y, off))
        clf = _lgbm("classifier", p, self.random_state)
        pos = y > 0
        if pos.all() or not pos.any():
            raise ModelInputError("two_part needs both buyers (y > 0) and non-buyers (y == 0) in the training data.")
        clf.fit(X, pos.astype(int))
        reg = _lgbm("gamma", {**p, "min_child_samples": max(5, min(p["min_child_samples"], int(pos.sum()) // 10))},
                    self.random_state)
        reg.fit(X[pos], y[pos])
        return (clf, reg)

    def _predict_candidate(self, method: str, model: Any, X: pd.DataFrame, off: np.ndarray | None) -> np.ndarray:
        if method == "rate":
            assert off is not None
            return np.exp(off) - self.offset_floor_
        if method == "tweedie":
            raw = trees.raw_score(model, X)
            return np.exp(raw + (off if off is not None else 0.0))
        if method == "blend":
            return 0.5 * (self._predict_candidate("tweedie", model[0], X, off)
                          + self._predict_candidate("two_part", model[1], X, off))
        clf, reg = model
        return trees.predict(clf, X) * trees.predict(reg, X)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True  # LightGBM's missing branch; NaN clv_* features for bad RFM rows
        tags.target_tags.positive_only = True  # future spend, >= 0
        return tags

    # -- API -----------------------------------------------------------------------------------
    def fit(self, X: pd.DataFrame, y: Any, *, label_horizon: Any = None) -> SpendForecaster:
        """Fit on features ``X`` (one row per user and cut-off) and future spend ``y`` (>= 0).

        ``label_horizon`` (optional, one value per row, days) is the length of each row's label window
        when rows come from cut-offs with different windows (see :meth:`fit_windows`); the offset uses
        it and it becomes the feature ``label_horizon_days`` (``horizon_days`` at prediction).
        """
        self._check()
        Xn = _numeric(X, "SpendForecaster")
        yv = _check_spend(y, X if isinstance(X, pd.DataFrame) else Xn, "SpendForecaster")
        if not (yv > 0).any():
            raise ModelInputError(
                f"y (future spend) is 0 on all {len(yv)} rows: there is no spend in the label window, so there is "
                "nothing to learn. Likely cause: the cut-off (as_of) is at the end of the data, or as_of + "
                "horizon_days runs past the last event. Move as_of earlier so that the label window (as_of, "
                "as_of + horizon_days] lies inside the data, or check how the labels were built (spend_labels).")
        hz: np.ndarray | None = None
        if label_horizon is not None:
            hz = np.broadcast_to(np.asarray(label_horizon, dtype=float), yv.shape).copy()
            if not (np.isfinite(hz) & (hz > 0)).all():
                bad = np.flatnonzero(~(np.isfinite(hz) & (hz > 0)))[:3]
                raise ModelInputError(f"label_horizon must be > 0 days for every row; rows {bad.tolist()} are not.")
        self.feature_names_in_ = np.array(Xn.columns, dtype=object)
        self.n_features_in_ = Xn.shape[1]
        self.horizon_feature_ = bool(hz is not None and np.ptp(hz) > 0)
        self.clv_: ProbabilisticCLV | None = None
        if self.clv_features and all(c in Xn.columns for c in _RFM):
            x, tx, T = (Xn[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T"))
            bad = rfm_problems(x, tx, T)
            if bad.any():  # fit on the usable rows; the others get NaN clv_* features (see _clv_columns)
                i = np.flatnonzero(bad)
                logger.warning(
                    "SpendForecaster: %d training row(s) have a missing or impossible RFM summary (frequency, "
                    "recency, T), e.g. %s: %s; the stacked BG/NBD is fit without them and their clv_* features "
                    "are NaN. Rebuild the summary with rfm_summary().", i.size, _rows(X, i),
                    [(float(x[j]), float(tx[j]), float(T[j])) for j in i[:3]])
            try:
                self.clv_ = ProbabilisticCLV(horizon=float(self.horizon_days)).fit(Xn[~bad] if bad.any() else Xn)
            except ModelInputError as exc:  # too few repeat buyers: go on without stacking
                logger.warning("SpendForecaster: stacked clv_* features switched off (columns frequency, recency, "
                               "T, monetary_value): %s", exc)
        self.offset_ = bool(self.rate_offset and {"net_spend", "days_since_first"} <= set(Xn.columns))
        self.offset_span_: float | None = None
        if self.offset_:
            if self.offset_base == "total":
                self.offset_span_ = float(np.nanmax(np.r_[Xn["days_since_first"].to_numpy(float), 0.0]))
            r = np.clip(Xn["net_spend"].to_numpy(float), 0, None) / self._offset_days(Xn)
            r = r * (float(self.horizon_days) if hz is None else hz)
            self.offset_floor_ = float(0.05 * np.median(r[r > 0])) if (r > 0).any() else 1.0
        Xa = self._augment(Xn, hz, warn=False)  # the rows were named above
        off = self._offset(Xn, hz)
        self.feature_names_ = list(Xa.columns)
        candidates = ["tweedie", "two_part", "blend"] if self.method == "auto" else [self.method]
        if self.method == "auto" and self.offset_:
            candidates.append("rate")
        if (yv > 0).all():
            candidates = [c for c in candidates if c not in ("two_part", "blend")]
        self.validation_scores_: dict[str, float] = {}
        val_pred: dict[str, np.ndarray] = {}
        errors = _fit_errors()
        if len(candidates) > 1:
            val = self._validation_rows(yv, hz)
            for c in candidates:
                try:
                    if c == "blend" and {"tweedie", "two_part"} <= set(val_pred):  # the mean of the parts
                        p = 0.5 * (val_pred["tweedie"] + val_pred["two_part"])
                    else:
                        m = self._fit_candidate(c, Xa[~val], yv[~val], None if off is None else off[~val])
                        p = self._predict_candidate(c, m, Xa[val], None if off is None else off[val])
                except errors as exc:  # e.g. too few buyers in the training part: try the other candidates
                    logger.warning("SpendForecaster: candidate %r could not be fitted on the training part (%s); "
                                   "it is left out of the choice.", c, exc)
                    continue
                val_pred[c] = p
                self.validation_scores_[c] = float(normalized_gini(yv[val], p)) if yv[val].sum() > 0 else 0.0
        # best validation score first (ties keep the candidates' order); candidates that failed go last
        order = sorted(self.validation_scores_, key=lambda k: -self.validation_scores_[k])
        order += [c for c in candidates if c not in order]
        for rank, c in enumerate(order):
            try:
                self.model_ = self._fit_candidate(c, Xa, yv, off)
            except errors as exc:
                if rank == len(order) - 1:
                    raise
                logger.warning("SpendForecaster: candidate %r could not be fitted on all rows (%s); falling back "
                               "to %r.", c, exc, order[rank + 1])
                continue
            self.method_ = c
            break
        self.balance_scale_ = 1.0
        if self.balance:
            fitted = np.clip(np.nan_to_num(self._predict_candidate(self.method_, self.model_, Xa, off), nan=0.0,
                                           posinf=0.0), 0, None)
            # with rows from several cut-offs, balance the rows whose label window is the real horizon
            keep = np.ones(len(yv), dtype=bool) if hz is None else hz >= hz.max()
            if fitted[keep].sum() > 0 and yv[keep].sum() > 0:
                self.balance_scale_ = float(yv[keep].sum() / fitted[keep].sum())
        logger.info("SpendForecaster chose %s (validation %s)", self.method_, self.validation_scores_)
        return self

    def fit_windows(self, con: Any, *, as_of: Any, n_windows: int = 6, step_days: int = 30,
                    platforms: Any = None, behaviour: bool = True) -> SpendForecaster:
        """Fit on rows from ``n_windows`` earlier cut-offs ``as_of - k * step_days`` (k = 1..n), each
        labelled with the spend in its window ``(cut-off, min(cut-off + horizon_days, as_of)]``, so only
        spend known at ``as_of`` is used; then :meth:`predict` the next ``horizon_days`` from features
        built at ``as_of`` (:func:`~.inputs.model_features`).  See :func:`~.inputs.training_windows`.
        """
        from buyerscore.models.purchasing_power.inputs import training_windows

        X, y, h = training_windows(con, as_of=as_of, horizon_days=int(self.horizon_days), n_windows=n_windows,
                                   step_days=step_days, platforms=platforms, behaviour=behaviour)
        self.fit(X.drop(columns=["cutoff"]), y, label_horizon=h)
        self.training_cutoffs_ = sorted({str(c) for c in X["cutoff"]})
        return self

    def _prepare(self, X: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        ensure_fitted(self, "model_")
        Xn = _numeric(X, "SpendForecaster", self.feature_names_in_)
        missing = [c for c in self.feature_names_in_ if c not in Xn.columns]
        if missing:
            raise ModelInputError(f"SpendForecaster input lacks column(s) {missing[:5]}; score with the features "
                                  "the model was trained on (see feature_names_in_).")
        Xn = _columns(Xn, self.feature_names_in_)
        return Xn, self._augment(Xn)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Expected spend over the horizon (>= 0).

        A forecast that overflows float64 (e.g. from ``net_spend=inf``) is returned as the largest
        float64, never as 0, and its rows are logged at WARNING; rows with a missing RFM summary are scored
        with NaN ``clv_*`` features (see the module notes).
        """
        Xn, Xa = self._prepare(X)
        with np.errstate(over="ignore", invalid="ignore"):
            p = self._predict_candidate(self.method_, self.model_, Xa, self._offset(Xn))
            p = p * getattr(self, "balance_scale_", 1.0)  # models saved before the balance correction: 1.0
        bad = ~np.isfinite(p)
        if bad.any():
            i = np.flatnonzero(bad)
            spend = Xn["net_spend"].to_numpy()[i[:3]].tolist() if "net_spend" in Xn.columns else "n/a"
            logger.warning("SpendForecaster: %d forecast(s) overflowed, e.g. %s (net_spend %s); returned as the "
                           "largest float (%.3g). Check those rows' inputs.", i.size, _rows(X, i), spend, _MAX)
            p = np.where(np.isnan(p), _MAX, np.minimum(p, _MAX))
        return np.clip(p, 0, None)

    def contributions(self, X: pd.DataFrame) -> pd.DataFrame:
        """Per-feature contributions to log expected spend (LightGBM ``pred_contrib``; > 0 raises spend).

        For the two-part model it is the sum of the log-odds contributions of P(purchase) and the
        log contributions of E[spend | purchase] (an additive approximation of log expected spend).
        """
        _, Xa = self._prepare(X)
        return self._contributions(Xa, X.index)

    def _contributions(self, Xa: pd.DataFrame, index: pd.Index) -> pd.DataFrame:
        # TreeSHAP costs ~0.4 ms per row and booster: threads (``n_jobs``, the current value, so a loaded model
        # can be given more with set_params) pay off from a few hundred rows
        threads = (os.cpu_count() or 1) if self.n_jobs is None or self.n_jobs < 1 else int(self.n_jobs)
        kw: dict[str, Any] = {"pred_contrib": True, "num_threads": threads if len(Xa) >= 256 else 1}
        if not len(Xa):  # empty in, empty out (LightGBM refuses empty input)
            c = np.zeros((0, len(self.feature_names_) + 1))
        elif self.method_ == "rate":
            c = np.zeros((len(Xa), len(self.feature_names_) + 1))
            c[:, self.feature_names_.index("net_spend")] = self._offset(Xa) - self.model_
        elif self.method_ == "tweedie":
            c = self.model_.predict(Xa, **kw)
        elif self.method_ == "blend":  # mean of the two parts' log-scale contributions
            tw, (clf, reg) = self.model_
            c = 0.5 * (tw.predict(Xa, **kw) + clf.predict(Xa, **kw) + reg.predict(Xa, **kw))
        else:
            c = self.model_[0].predict(Xa, **kw) + self.model_[1].predict(Xa, **kw)
        return pd.DataFrame(c[:, :-1], columns=self.feature_names_, index=index)

    def reason_codes(self, X: pd.DataFrame, *, k: int = 4, lang: str = "en") -> list[list[Any]]:
        """Top ``k`` reasons that *lower* each user's expected spend (reason-code convention:
        contribution > 0 = toward the adverse outcome, so the spend contributions are negated)."""
        from buyerscore.explain.reason_codes import top_reasons

        _, Xa = self._prepare(X)  # once: its input checks and warnings are not repeated
        contrib = -self._contributions(Xa, X.index)
        return top_reasons(contrib, Xa.set_index(contrib.index), k=k, direction="adverse", lang=lang,
                           outcome="spend")


class SpendTier(ClassifierMixin, BaseEstimator):
    """High / mid / low purchasing power with calibrated probabilities (they sum to 1 per row).

    Parameters
    ----------
    thresholds : tuple of two floats
        Cut points between low|mid and mid|high: quantiles of the training spend (``kind="quantile"``,
        default 50 % and 90 %) or spend amounts (``kind="amount"``).  Spend above a cut point is in the
        upper tier.
    kind : {"quantile", "amount"}
    calibration : {"isotonic", "sigmoid"}
        Calibration of the LightGBM class probabilities: one map per class, fitted on ``cv``-fold
        out-of-fold predictions; predictions come from one booster refitted on all rows and passed
        through those maps (``CalibratedClassifierCV(ensemble=False)``), so scoring evaluates one
        booster per row instead of ``cv``.
    cv : int
        Folds (shuffled, stratified) for the out-of-fold predictions of the calibration and the decision.
    decision : {"macro_f1", "argmax"}
        How :meth:`predict` turns the probabilities into one tier.  ``"argmax"``: the most probable tier,
        which rarely names the small top tier.  ``"macro_f1"`` (default): the most probable tier after
        multiplying each tier's probability by a weight (``class_weights_``), chosen to maximise the
        macro-F1 of the calibrated out-of-fold probabilities on the training rows.  ``predict_proba`` is
        the same for both.  In ``benchmarks/power.py`` (cross-fitted) SpendTier's macro-F1 went from
        0.515 / 0.628 / 0.524 (unshuffled folds, argmax) to 0.569 / 0.636 / 0.548 on CDNOW / Online
        Retail / Ta Feng.
    n_estimators, learning_rate, num_leaves, min_child_samples, random_state, n_jobs : LightGBM settings.

    Attributes
    ----------
    classes_ : ndarray
        ``["high", "low", "mid"]`` (sorted, as scikit-learn orders labels).
    cut_points_ : tuple of float
        The spend amounts separating the tiers.
    class_weights_ : ndarray
        One weight per tier (``classes_`` order) that :meth:`predict` multiplies the probabilities by; all 1
        with ``decision="argmax"``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = pd.DataFrame({"past": rng.gamma(1.0, 50, 600)})
    >>> y = X["past"] * rng.gamma(2, 0.5, 600)
    >>> t = SpendTier(n_estimators=30).fit(X, y)
    >>> bool(np.allclose(t.predict_proba(X).sum(axis=1), 1.0))
    True
    """

    def __init__(self, *, thresholds: tuple[float, float] = (0.5, 0.9), kind: Literal["quantile", "amount"] = "quantile",
                 calibration: Literal["isotonic", "sigmoid"] = "isotonic", cv: int = 3,
                 decision: Literal["macro_f1", "argmax"] = "macro_f1", n_estimators: int = 200,
                 learning_rate: float = 0.03, num_leaves: int = 15, min_child_samples: int = 30,
                 random_state: int = 0, n_jobs: int = 1) -> None:
        self.thresholds = thresholds
        self.kind = kind
        self.calibration = calibration
        self.cv = cv
        self.decision = decision
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.random_state = random_state
        self.n_jobs = n_jobs

    def tiers_of(self, spend: Any) -> np.ndarray:
        """Tier labels of spend amounts under the fitted cut points."""
        ensure_fitted(self, "cut_points_")
        lo, hi = self.cut_points_
        s = np.asarray(spend, dtype=float)
        return np.where(s > hi, "high", np.where(s > lo, "mid", "low"))

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True  # LightGBM's missing branch
        return tags

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Share of rows whose predicted tier is the tier of their actual future spend ``y`` (accuracy,
        as scikit-learn's classifiers score; ``y`` is spend, as in :meth:`fit`, cut at ``cut_points_``).

        ``ClassifierMixin.score`` compared the tier names with the spend amounts and failed.
        """
        from sklearn.metrics import accuracy_score

        ensure_fitted(self, "model_")
        Xn = _numeric(X, "SpendTier", self.feature_names_in_)
        yv = _check_spend(y, X if isinstance(X, pd.DataFrame) else Xn, "SpendTier")
        return float(accuracy_score(self.tiers_of(yv), self.predict(X), sample_weight=sample_weight))

    def fit(self, X: pd.DataFrame, y: Any) -> SpendTier:
        """Fit on features ``X`` and future spend ``y`` (the tiers are derived from ``y``)."""
        from sklearn.base import clone
        from sklearn.calibration import CalibratedClassifierCV
        from sklearn.model_selection import StratifiedKFold, cross_val_predict

        check_param(self, "kind", self.kind, lambda v: v in ("quantile", "amount"), "'quantile' or 'amount'")
        check_param(self, "calibration", self.calibration, lambda v: v in ("isotonic", "sigmoid"),
                    "'isotonic' or 'sigmoid'")
        check_param(self, "thresholds", self.thresholds, lambda v: len(v) == 2 and float(v[0]) < float(v[1]),
                    "two increasing numbers")
        if self.kind == "quantile":
            check_param(self, "thresholds", self.thresholds, lambda v: 0 < v[0] < v[1] < 1,
                        "two increasing quantiles in (0, 1)")
        check_param(self, "cv", self.cv, lambda v: int(v) == v and v >= 2, "an int >= 2")
        check_param(self, "decision", self.decision, lambda v: v in ("macro_f1", "argmax"), "'macro_f1' or 'argmax'")
        Xn = _numeric(X, "SpendTier")
        yv = _check_spend(y, X if isinstance(X, pd.DataFrame) else Xn, "SpendTier")
        lo, hi = (np.quantile(yv, self.thresholds) if self.kind == "quantile" else self.thresholds)
        self.cut_points_ = (float(lo), float(hi))
        labels = self.tiers_of(yv)
        counts = {t: int((labels == t).sum()) for t in TIERS}
        if min(counts.values()) < self.cv:
            raise ModelInputError(
                f"Tier sizes {counts} at cut points {self.cut_points_}: every tier needs at least cv={self.cv} "
                "users. Move the thresholds (with many zero spenders use kind='amount' or a higher first quantile).")
        self.feature_names_in_ = np.array(Xn.columns, dtype=object)
        self.n_features_in_ = Xn.shape[1]
        base = _lgbm("classifier", {"n_estimators": self.n_estimators, "learning_rate": self.learning_rate,
                                    "num_leaves": self.num_leaves, "min_child_samples": self.min_child_samples,
                                    "n_jobs": self.n_jobs}, self.random_state)
        # shuffled folds: rows often come sorted by user id or sign-up date, and unshuffled folds would
        # then fit the calibrators on predictions for another population
        folds = StratifiedKFold(int(self.cv), shuffle=True, random_state=self.random_state)
        self.model_ = CalibratedClassifierCV(base, method=self.calibration, cv=folds, ensemble=False).fit(Xn, labels)
        self.classes_ = self.model_.classes_
        self.class_weights_ = np.ones(len(self.classes_))
        if self.decision == "macro_f1":
            # the out-of-fold raw scores the calibration maps were fitted on (same folds, same booster
            # settings), through those maps: probabilities for rows each booster did not see
            raw = cross_val_predict(clone(base), Xn, labels, cv=folds, method="decision_function")
            oof = _calibrate_raw(self.model_.calibrated_classifiers_[0], np.asarray(raw))
            if oof is not None:
                self.class_weights_ = macro_f1_weights(oof, labels, self.classes_)
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Calibrated probabilities of the tiers, columns in ``classes_`` order; rows sum to 1."""
        ensure_fitted(self, "model_")
        Xn = _numeric(X, "SpendTier", self.feature_names_in_)
        missing = [c for c in self.feature_names_in_ if c not in Xn.columns]
        if missing:
            raise ModelInputError(f"SpendTier input lacks column(s) {missing[:5]}.")
        if not len(Xn):  # empty in, empty out
            return np.zeros((0, len(self.classes_)))
        p = _calibrated_proba(self.model_, _columns(Xn, self.feature_names_in_))
        p = np.clip(p, 0, None)
        return p / p.sum(axis=1, keepdims=True)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """The tier with the highest weighted probability (``class_weights_``; see ``decision``)."""
        return self.tiers_from_proba(self.predict_proba(X))

    def tiers_from_proba(self, proba: Any) -> np.ndarray:
        """The tiers :meth:`predict` names for probabilities already computed by :meth:`predict_proba`
        (columns in ``classes_`` order): the highest weighted probability, as ``decision`` says.  Use it
        when both the probabilities and the tier are needed, instead of ``proba.argmax(axis=1)``, which
        ignores ``class_weights_``."""
        ensure_fitted(self, "model_")
        p = np.asarray(proba, dtype=float)
        if p.ndim != 2 or p.shape[1] != len(self.classes_):
            raise ModelInputError(f"proba must have one column per tier ({len(self.classes_)}: {list(self.classes_)}); "
                                  f"got shape {p.shape}. Pass the output of predict_proba.")
        w = getattr(self, "class_weights_", None)  # models saved before the decision rule: argmax
        return np.asarray(self.classes_)[np.argmax(p if w is None else p * w, axis=1)]


_WEIGHT_GRID = np.exp(np.linspace(-1.0, 2.5, 36))  # 0.37 .. 12.2, with 1.0 on it (step 0.1 in log)


def _macro_f1(y: np.ndarray, pred: np.ndarray, k: int) -> float:
    cm = np.bincount(y * k + pred, minlength=k * k).reshape(k, k)
    tp = np.diag(cm).astype(float)
    den = cm.sum(axis=0) + cm.sum(axis=1)
    return float(np.mean(np.divide(2 * tp, den, out=np.zeros(k), where=den > 0)))


def macro_f1_weights(proba: Any, labels: Any, classes: Any) -> np.ndarray:
    """Per-class weights ``w`` (the first class fixed at 1) for which ``argmax(proba * w)`` has the highest
    macro-F1 against ``labels``; a grid of 36 values from 0.37 to 12.2 per other class (three classes:
    1,296 candidates).  All ones when no candidate beats plain argmax.

    Examples
    --------
    >>> p = np.array([[0.3, 0.7], [0.4, 0.6], [0.2, 0.8], [0.1, 0.9]])
    >>> macro_f1_weights(p, np.array(["a", "a", "b", "b"]), np.array(["a", "b"])).round(2).tolist()
    [1.0, 0.37]
    """
    P = np.asarray(proba, dtype=float)
    y = np.searchsorted(np.asarray(classes), np.asarray(labels))
    k = len(classes)
    best_w, best = np.ones(k), _macro_f1(y, np.argmax(P, axis=1), k)
    if k > 4:  # the grid grows as 36 ** (k - 1)
        return best_w
    for combo in itertools.product(_WEIGHT_GRID, repeat=k - 1):
        w = np.r_[1.0, combo]
        f = _macro_f1(y, np.argmax(P * w, axis=1), k)
        if f > best + 1e-12:
            best, best_w = f, w
    return best_w


def _calibrated_proba(cal: Any, X: pd.DataFrame) -> np.ndarray:
    """``cal.predict_proba(X)`` of a fitted ``CalibratedClassifierCV(ensemble=False)`` over a LightGBM
    classifier, with the booster's raw scores from :func:`buyerscore.models.trees.raw_score` (one
    compiled pass instead of scikit-learn's call per class); the calibration and normalisation steps
    are scikit-learn's (``_CalibratedClassifier.predict_proba``).  Any other set-up uses ``cal`` itself.
    """
    ccs = getattr(cal, "calibrated_classifiers_", None)
    if not ccs or len(ccs) != 1 or getattr(ccs[0], "method", None) not in ("sigmoid", "isotonic"):
        return np.asarray(cal.predict_proba(X))
    cc = ccs[0]
    classes = np.asarray(cc.classes)
    est_classes = np.asarray(getattr(cc.estimator, "classes_", []))
    if len(classes) < 3 or not np.array_equal(classes, est_classes) or trees.flat_trees(cc.estimator) is None:
        return np.asarray(cal.predict_proba(X))
    if not len(X):
        return np.zeros((0, len(classes)))
    proba = _calibrate_raw(cc, np.asarray(trees.raw_score(cc.estimator, X)).reshape(len(X), -1))
    return np.asarray(cal.predict_proba(X)) if proba is None else proba


def _calibrate_raw(cc: Any, raw: np.ndarray) -> np.ndarray | None:
    """Raw multiclass scores through the calibration maps of ``cc`` (one fitted
    ``_CalibratedClassifier``) and scikit-learn's normalisation; None when the shapes do not match."""
    if raw.ndim != 2 or raw.shape[1] != len(cc.calibrators) or len(cc.calibrators) < 3:
        return None
    proba = np.zeros(raw.shape)
    for j, calibrator in enumerate(cc.calibrators):
        proba[:, j] = calibrator.predict(raw[:, j])
    den = proba.sum(axis=1)[:, np.newaxis]
    proba = np.divide(proba, den, out=np.full_like(proba, 1 / raw.shape[1]), where=den != 0)
    proba[(1.0 < proba) & (proba <= 1.0 + 1e-5)] = 1.0
    return proba
