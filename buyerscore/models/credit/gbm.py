"""LightGBM probability of default with monotone constraints, early stopping and calibration."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold, StratifiedShuffleSplit

from buyerscore._validation import check_param, is_int
from buyerscore.models import trees
from buyerscore.models.base import CreditModelBase, log_odds
from buyerscore.models.credit.binning import FeatureBinning, fit_feature

logger = logging.getLogger(__name__)


class _Calibrator:
    """Monotone map from raw LightGBM margin to probability: Platt (sigmoid) or isotonic.

    Isotonic: the pool-adjacent-violators blocks' bad rates, shrunk toward the overall rate so that
    every PD lies strictly inside (0, 1) (:func:`_shrunk_blocks`), interpolated between the blocks'
    mean margins.
    """

    def __init__(self, method: str, a: float = 1.0, b: float = 0.0, xs: np.ndarray | None = None,
                 ys: np.ndarray | None = None) -> None:
        self.method, self.a, self.b = method, a, b
        self.xs = xs if xs is not None else np.array([])
        self.ys = ys if ys is not None else np.array([])

    @classmethod
    def fit(cls, method: str, m: np.ndarray, y: np.ndarray) -> _Calibrator:
        if method == "none":
            return cls("none")
        if method == "sigmoid":
            from sklearn.linear_model import LogisticRegression

            lr = LogisticRegression(C=1e6, max_iter=1000).fit(m.reshape(-1, 1), y)
            return cls("sigmoid", float(lr.coef_[0, 0]), float(lr.intercept_[0]))
        from sklearn.isotonic import IsotonicRegression

        iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(m, y)
        # interpolate between block centres (mean margin of each constant block): strictly
        # increasing between blocks, so ranking (AUC) is kept instead of flattened into steps
        pred = iso.predict(m)
        order = np.argsort(m, kind="mergesort")
        ms, ps, ys_ = m[order], pred[order], np.asarray(y, dtype=float)[order]
        brk = np.r_[True, np.diff(ps) != 0]
        grp = np.cumsum(brk) - 1
        xs, ys = _shrunk_blocks(np.bincount(grp), np.bincount(grp, weights=ms), np.bincount(grp, weights=ys_))
        return cls("isotonic", xs=xs, ys=ys)

    def __call__(self, m: np.ndarray) -> np.ndarray:
        if self.method == "none":
            return 1.0 / (1.0 + np.exp(-m))
        if self.method == "sigmoid":
            return 1.0 / (1.0 + np.exp(-(self.a * m + self.b)))
        if len(self.xs) == 1:
            return np.full(np.shape(m), self.ys[0])
        return np.interp(m, self.xs, self.ys)

    def one(self, m: float) -> float:
        if self.method == "none":
            return 1.0 / (1.0 + math.exp(-m))
        if self.method == "sigmoid":
            return 1.0 / (1.0 + math.exp(-(self.a * m + self.b)))
        return float(np.interp(m, self.xs, self.ys))


ISOTONIC_PRIOR = 1.0
"""Pseudo-rows at the overall bad rate added to every isotonic block (see :func:`_shrunk_blocks`)."""


def _shrunk_blocks(n: np.ndarray, sum_m: np.ndarray, sum_y: np.ndarray,
                   prior: float = ISOTONIC_PRIOR) -> tuple[np.ndarray, np.ndarray]:
    """Knots ``(xs, ys)`` of the isotonic map from its blocks (rows ``n``, summed margins and bads, in
    increasing order): each block's bad rate shrunk toward the overall rate ``p0`` by ``prior``
    pseudo-rows, ``(bads + prior * p0) / (rows + prior)``, so no PD is exactly 0 or 1 (a block with no
    bad in 20 held-out rows does not prove a PD of 0); neighbours whose order the shrinkage reversed
    (a small block moves further) are pooled, as the pool-adjacent-violators step does, so the knots
    stay strictly increasing and scores keep their ranking.  ``xs`` are the blocks' mean margins.

    Examples
    --------
    >>> xs, ys = _shrunk_blocks(np.array([4, 4]), np.array([-4.0, 4.0]), np.array([0.0, 4.0]))
    >>> xs.tolist(), ys.tolist()
    ([-1.0, 1.0], [0.1, 0.9])
    """
    total = float(n.sum())
    p0 = float(np.clip(sum_y.sum() / total, 0.5 / (total + 1.0), 1.0 - 0.5 / (total + 1.0)))
    st_n: list[float] = []  # pooled blocks: rows, summed margins, summed bads, pseudo-rows
    st_m: list[float] = []
    st_y: list[float] = []
    st_a: list[float] = []

    def rate(i: int) -> float:
        return (st_y[i] + st_a[i] * p0) / (st_n[i] + st_a[i])

    for k in range(len(n)):
        st_n.append(float(n[k]))
        st_m.append(float(sum_m[k]))
        st_y.append(float(sum_y[k]))
        st_a.append(prior)
        while len(st_n) > 1 and rate(-1) <= rate(-2):
            for st in (st_n, st_m, st_y, st_a):
                last = st.pop()
                st[-1] += last
    xs = np.asarray(st_m) / np.asarray(st_n)
    ys = np.array([rate(i) for i in range(len(st_n))])
    return xs, ys


def _brier(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.mean((p - y) ** 2))


def choose_calibration(method: str, m: np.ndarray, y: np.ndarray, random_state: int) -> tuple[str, dict[str, float]]:
    """``method``, or for "auto" the map (sigmoid / isotonic) with the lower Brier score on held-out
    margins ``m`` (2-fold cross-fitted), with the Brier scores of both."""
    if method != "auto":
        return str(method), {}
    rng = np.random.default_rng(random_state)
    half = rng.random(len(y)) < 0.5
    if half.all() or not half.any():  # too few rows to compare: Platt, the safer map
        return "sigmoid", {}
    scores = {}
    for name in ("sigmoid", "isotonic"):
        p = np.empty(len(y))
        for a in (half, ~half):
            b = ~a
            if y[a].min() == y[a].max():
                p[b] = y[a].mean()
            else:
                p[b] = _Calibrator.fit(name, m[a], y[a])(m[b])
        scores[name] = _brier(y, p)
    return min(scores, key=scores.__getitem__), scores


class CreditGBM(CreditModelBase):
    """Gradient-boosted PD model (LightGBM) with monotone constraints and calibrated probabilities.

    Parameters
    ----------
    base_score, base_odds, pdo, grade_bands
        Points scale and grades, as in :class:`CreditScorecard`.
    monotone : "auto", mapping or None
        "auto": +1 / -1 where the feature's optimal binning (optbinning, trends allowed to peak)
        comes out monotone increasing / decreasing in risk, else unconstrained; a mapping
        ``{feature: -1 | 0 | 1}`` overrides features (others use "auto"); None = no constraints.
        +1 means a higher value never lowers the PD.
    n_estimators, learning_rate, num_leaves, min_child_samples, subsample, colsample_bytree, reg_lambda
        LightGBM parameters (``n_estimators`` is the cap; early stopping picks the number;
        ``min_child_samples="auto"`` = 1 % of the rows, between 20 and 100).
    early_stopping_rounds : int
        Rounds without improvement of the validation log loss before stopping.
    validation_fraction : float
        Held-out share for early stopping and calibration when ``n_folds == 1``.
    n_folds : int
        > 1: fit ``n_folds`` models, each early-stopped on its own held-out fold, average their
        margins, and calibrate on the out-of-fold margins (uses all rows for both).
    calibration : {"auto", "isotonic", "sigmoid", "none"}
        Map from margin to probability; "auto" picks the lower Brier on the held-out rows
        (2-fold cross-fitted).
    class_weight : None or "balanced"
        "balanced" up-weights bads while boosting; calibration on unweighted held-out rows
        then restores true probabilities.
    lgbm_params : mapping, optional
        Extra LightGBM parameters.
    sensitive_features, include_sensitive
        As in :class:`CreditScorecard`.
    random_state : int
    n_jobs : int
        LightGBM threads.

    Attributes
    ----------
    oof_proba_ : ndarray
        Calibrated PD of each training row from the booster that did not see it (its early-stopping
        fold); NaN for rows no booster held out (all but ``validation_fraction`` when ``n_folds == 1``).
        The honest reference for a training-vs-new score comparison (PSI).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = pd.DataFrame({"util": rng.random(5000), "late": rng.integers(0, 4, 5000)})
    >>> y = (rng.random(5000) < 0.05 + 0.3 * X["util"] + 0.05 * X["late"]).astype(int)
    >>> m = CreditGBM(n_estimators=200).fit(X, y)
    >>> m.monotone_constraints_
    {'util': 1, 'late': 1}
    """

    def __init__(self, *, base_score: float = 600.0, base_odds: float = 50.0, pdo: float = 20.0,
                 grade_bands: Sequence[float] | None = None, monotone: Mapping[str, int] | str | None = "auto",
                 n_estimators: int = 3000, learning_rate: float = 0.02, num_leaves: int = 15,
                 min_child_samples: int | str = "auto", subsample: float = 0.8, colsample_bytree: float = 0.7,
                 reg_lambda: float = 1.0, early_stopping_rounds: int = 150, validation_fraction: float = 0.2,
                 n_folds: int = 1, calibration: Literal["auto", "isotonic", "sigmoid", "none"] = "auto",
                 class_weight: str | None = None, lgbm_params: Mapping[str, Any] | None = None,
                 sensitive_features: Sequence[str] | str = "auto", include_sensitive: bool = False,
                 random_state: int = 0, n_jobs: int = 1) -> None:
        self.base_score = base_score
        self.base_odds = base_odds
        self.pdo = pdo
        self.grade_bands = grade_bands
        self.monotone = monotone
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.reg_lambda = reg_lambda
        self.early_stopping_rounds = early_stopping_rounds
        self.validation_fraction = validation_fraction
        self.n_folds = n_folds
        self.calibration = calibration
        self.class_weight = class_weight
        self.lgbm_params = lgbm_params
        self.sensitive_features = sensitive_features
        self.include_sensitive = include_sensitive
        self.random_state = random_state
        self.n_jobs = n_jobs

    def _check_params(self) -> None:
        self._check_common_params()
        n = "CreditGBM"
        check_param(n, "monotone", self.monotone,
                    lambda v: v is None or v == "auto" or (isinstance(v, Mapping) and all(
                        s in (-1, 0, 1) for s in v.values())), "'auto', None or a mapping {feature: -1, 0 or 1}")
        check_param(n, "n_estimators", self.n_estimators, lambda v: is_int(v) and v >= 1, "an int >= 1")
        check_param(n, "learning_rate", self.learning_rate, lambda v: 0 < float(v) <= 1, "a float in (0, 1]")
        check_param(n, "num_leaves", self.num_leaves, lambda v: is_int(v) and v >= 2, "an int >= 2")
        check_param(n, "min_child_samples", self.min_child_samples,
                    lambda v: v == "auto" or (is_int(v) and v >= 1), "'auto' or an int >= 1")
        check_param(n, "subsample", self.subsample, lambda v: 0 < float(v) <= 1, "a float in (0, 1]")
        check_param(n, "colsample_bytree", self.colsample_bytree, lambda v: 0 < float(v) <= 1, "a float in (0, 1]")
        check_param(n, "reg_lambda", self.reg_lambda, lambda v: float(v) >= 0, "a float >= 0")
        check_param(n, "early_stopping_rounds", self.early_stopping_rounds, lambda v: is_int(v) and v >= 1,
                    "an int >= 1")
        check_param(n, "validation_fraction", self.validation_fraction, lambda v: 0.05 <= float(v) <= 0.5,
                    "a float in [0.05, 0.5]")
        check_param(n, "n_folds", self.n_folds, lambda v: is_int(v) and 1 <= v <= 20, "an int in [1, 20]")
        check_param(n, "calibration", self.calibration, lambda v: v in ("auto", "isotonic", "sigmoid", "none"),
                    "one of 'auto', 'isotonic', 'sigmoid', 'none'")
        check_param(n, "class_weight", self.class_weight, lambda v: v in (None, "balanced"), "None or 'balanced'")

    # ------------------------------------------------------------------ fit
    def fit(self, X: pd.DataFrame, y: Any) -> CreditGBM:
        """Encode, constrain, boost with early stopping, calibrate."""
        import lightgbm as lgb

        t0 = time.perf_counter()
        self._check_params()
        Xs, yv = self._fit_inputs(X, y)
        self.features_ = list(Xs.columns)
        # categoricals -> risk-oriented WOE of their optimal bins (monotone +1 by construction)
        self.cat_bins_: dict[str, FeatureBinning] = {}
        for c, d in self.feature_dtypes_.items():
            if d == "categorical":
                self.cat_bins_[c] = fit_feature(c, Xs[c].to_numpy(), yv, dtype="categorical")
        M = self._matrix(Xs)
        # "auto": 1 % of the rows, between 20 and 100 (100 on large tables, 20 on German credit)
        self.min_child_samples_ = (int(np.clip(len(yv) // 100, 20, 100)) if self.min_child_samples == "auto"
                                   else int(self.min_child_samples))
        self.monotone_constraints_ = self._constraints(Xs, yv)
        params = {
            "objective": "binary", "learning_rate": float(self.learning_rate), "num_leaves": int(self.num_leaves),
            "min_child_samples": self.min_child_samples_, "bagging_fraction": float(self.subsample), "bagging_freq": 1,
            "feature_fraction": float(self.colsample_bytree), "lambda_l2": float(self.reg_lambda),
            "monotone_constraints": [self.monotone_constraints_[c] for c in self.features_],
            "monotone_constraints_method": "advanced", "seed": self.random_state, "num_threads": self.n_jobs,
            "verbosity": -1, "metric": "binary_logloss", **dict(self.lgbm_params or {}),
        }
        if self.class_weight == "balanced":
            params["scale_pos_weight"] = float((yv == 0).sum() / max((yv == 1).sum(), 1))
        if int(self.n_folds) == 1:
            splits = list(StratifiedShuffleSplit(1, test_size=self.validation_fraction,
                                                 random_state=self.random_state).split(M, yv))
        else:
            splits = list(StratifiedKFold(int(self.n_folds), shuffle=True, random_state=self.random_state).split(M, yv))
        self.boosters_ = []
        held_m, held_y = [], []
        self.best_iterations_ = []
        for k, (tr, va) in enumerate(splits):
            p = dict(params, seed=self.random_state + k)
            dtr = lgb.Dataset(M[tr], yv[tr], free_raw_data=True)
            dva = lgb.Dataset(M[va], yv[va], reference=dtr)
            bst = lgb.train(p, dtr, num_boost_round=int(self.n_estimators), valid_sets=[dva],
                            callbacks=[lgb.early_stopping(int(self.early_stopping_rounds), verbose=False)])
            self.best_iterations_.append(int(bst.best_iteration or int(self.n_estimators)))
            bst.free_dataset()
            self.boosters_.append(bst)
            held_m.append(bst.predict(M[va], raw_score=True, num_iteration=self.best_iterations_[-1]))
            held_y.append(yv[va])
        m_va, y_va = np.concatenate(held_m), np.concatenate(held_y)
        if y_va.min() == y_va.max():  # a few bads in a tiny table: nothing to calibrate against
            logger.warning("CreditGBM: the %d held-out row(s) are all %s, so the PDs are LightGBM's own, "
                           "uncalibrated probabilities%s. Fit on more rows of both classes, or raise "
                           "validation_fraction / n_folds.", len(y_va), "bads" if y_va[0] == 1 else "goods",
                           " (distorted by class_weight='balanced')" if self.class_weight == "balanced" else "")
            self.calibration_, self.calibration_scores_ = "none", dict[str, float]()
        else:
            self.calibration_, self.calibration_scores_ = choose_calibration(self.calibration, m_va, y_va,
                                                                             self.random_state)
        self.calibrator_ = _Calibrator.fit(self.calibration_, m_va, y_va)
        oof = np.full(len(yv), np.nan)
        oof[np.concatenate([va for _, va in splits])] = self.calibrator_(m_va)
        self.oof_proba_ = oof
        self._finish_fit()
        self.fit_time_ = time.perf_counter() - t0
        logger.info("CreditGBM: %d model(s), best iterations %s, calibration %s, %.1fs", len(self.boosters_),
                    self.best_iterations_, self.calibration_, self.fit_time_)
        return self

    def _constraints(self, Xs: pd.DataFrame, y: np.ndarray) -> dict[str, int]:
        user = dict(self.monotone) if isinstance(self.monotone, Mapping) else {}
        unknown = [c for c in user if c not in Xs.columns]
        if unknown:
            raise ValueError(f"CreditGBM: monotone constraints given for unknown column(s) {unknown}; "
                             f"columns are {list(Xs.columns)}.")
        out = {}
        self.trends_ = {}
        for c in self.features_:
            if c in user:
                out[c] = int(user[c])
            elif self.monotone is None:
                out[c] = 0
            elif c in self.cat_bins_:
                out[c] = 1
            else:
                b = fit_feature(c, Xs[c].to_numpy(dtype=float, na_value=np.nan), y, monotonic_trend="auto")
                self.trends_[c] = b.trend
                out[c] = {"ascending": 1, "descending": -1}.get(b.trend, 0)
        return out

    # ------------------------------------------------------------------ scoring
    def _matrix(self, Xs: pd.DataFrame) -> np.ndarray:
        cols = []
        for c in self.features_:
            if c in self.cat_bins_:
                cols.append(self.cat_bins_[c].transform_woe(Xs[c].to_numpy()))
            else:
                cols.append(Xs[c].to_numpy(dtype=float, na_value=np.nan))
        return np.column_stack(cols).astype(np.float64)

    def _margin(self, M: np.ndarray) -> np.ndarray:
        ms = [trees.raw_score(b, M, num_iteration=it) for b, it in zip(self.boosters_, self.best_iterations_,
                                                                        strict=True)]
        return np.mean(ms, axis=0)

    def _logit(self, X: pd.DataFrame) -> np.ndarray:
        return log_odds(self.calibrator_(self._margin(self._matrix(X))))

    def contributions(self, X: Any) -> pd.DataFrame:
        """SHAP values (TreeSHAP via LightGBM ``pred_contrib``) in log-odds of the raw model; > 0 = adverse."""
        Xc = self._check_X(X)
        M = self._matrix(Xc)
        cs = [b.predict(M, pred_contrib=True, num_iteration=it) for b, it in zip(self.boosters_,
                                                                                self.best_iterations_, strict=True)]
        c = np.mean(cs, axis=0)[:, :-1]
        return pd.DataFrame(c, columns=self.features_, index=Xc.index)

    def score_record(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """PD, points and grade of one record (a dict), with no pandas on the path."""
        vals = self._record_values(record)
        row = np.empty((1, len(self.features_)))
        for j, (c, v) in enumerate(zip(self.features_, vals, strict=True)):
            if c in self.cat_bins_:
                fb = self.cat_bins_[c]
                row[0, j] = fb.woe[fb.bin_index_one(v)]
            else:
                row[0, j] = np.nan if v is None else float(v)
        m = 0.0
        for b, it in zip(self.boosters_, self.best_iterations_, strict=True):
            m += float(trees.raw_score(b, row, num_iteration=it)[0])
        p = min(max(self.calibrator_.one(m / len(self.boosters_)), 1e-9), 1 - 1e-9)
        return self._record_result(math.log(p / (1 - p)))
