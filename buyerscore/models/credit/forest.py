"""Random-forest probability of default, calibrated on its out-of-bag predictions."""

from __future__ import annotations

import logging
import math
import time
import weakref
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd

from buyerscore._validation import check_param, is_int
from buyerscore.models.base import CreditModelBase, log_odds
from buyerscore.models.credit.binning import _F32_MAX
from buyerscore.models.credit.gbm import _Calibrator, choose_calibration

logger = logging.getLogger(__name__)

_EPS = 1e-4  # raw forest probabilities are clipped to [eps, 1 - eps] before the calibrator's log-odds


def _vote_odds(p: Any) -> np.ndarray:
    """Log-odds of raw forest votes, the calibrator's input."""
    return log_odds(p, _EPS)


_FLAT_ROWS = 32  # frames up to this many rows are scored by _FlatForest
#: fitted scikit-learn forest -> its _FlatForest, built on first use and dropped with the forest
_FLAT_CACHE: weakref.WeakKeyDictionary[Any, _FlatForest] = weakref.WeakKeyDictionary()


def _as_float32(values: Any) -> np.ndarray:
    """Numeric values as the forest's float32, +-inf and finite values beyond float32's range capped to
    +-3.4e38: every split threshold lies strictly between two float32 training values, so a capped
    value takes the same branch as the value itself (beyond every threshold), and scikit-learn's
    ``predict_proba`` (which rejects infinity) and the few-row walk give the same PD."""
    return np.clip(np.asarray(values, dtype=np.float64), -_F32_MAX, _F32_MAX).astype(np.float32)


class _FlatForest:
    """A fitted scikit-learn forest as one set of node arrays, to score a single row quickly.

    Every tree is walked at once, one level per numpy step: same comparisons as scikit-learn
    (float32 inputs against float64 thresholds, missing values to ``missing_go_to_left``), same
    mean of the trees' class-1 fractions, so the result equals ``predict_proba`` up to the
    order of the float64 sum (tested to 1e-12).
    """

    def __init__(self, forest: Any) -> None:
        trees = [e.tree_ for e in forest.estimators_]
        sizes = np.array([t.node_count for t in trees])
        base = np.r_[0, np.cumsum(sizes)[:-1]]
        self.roots = base.astype(np.int64)
        left, right = [], []
        for t, b in zip(trees, base, strict=True):
            leaf = t.children_left < 0
            left.append(np.where(leaf, np.arange(t.node_count) + b, t.children_left + b))
            right.append(np.where(leaf, np.arange(t.node_count) + b, t.children_right + b))
        self.left = np.concatenate(left).astype(np.int64)
        self.right = np.concatenate(right).astype(np.int64)
        self.feature = np.concatenate([np.maximum(t.feature, 0) for t in trees]).astype(np.int64)
        self.threshold = np.concatenate([t.threshold for t in trees])
        self.nan_left = np.concatenate([t.missing_go_to_left for t in trees]).astype(bool)
        self.is_leaf = np.concatenate([t.children_left < 0 for t in trees])
        val = np.concatenate([t.value[:, 0, :] for t in trees])
        self.p1 = val[:, 1] / val.sum(axis=1)  # class-1 fraction (already fractions in scikit-learn >= 1.4)
        self.depth = max(t.max_depth for t in trees)

    def predict_one(self, row: np.ndarray) -> float:
        x = np.asarray(row, dtype=np.float32).astype(np.float64)
        node = self.roots.copy()
        for _ in range(self.depth):
            v = x[self.feature[node]]
            go_left = np.where(np.isnan(v), self.nan_left[node], v <= self.threshold[node])
            node = np.where(go_left, self.left[node], self.right[node])
        return float(self.p1[node].mean())


class CreditForest(CreditModelBase):
    """Random forest PD model (scikit-learn), one-hot categoricals, calibrated on out-of-bag rows.

    A forest of fully grown trees ranks differently from a boosted model; on small application
    tables (German credit) the two together rank better than either (see :class:`CreditEnsemble`).
    Numeric columns go in as they are (as float32: values beyond +-3.4e38, and +-inf when scoring,
    are capped there), missing values included (scikit-learn's trees route them); each categorical column becomes one indicator per category seen in training plus one for
    missing; a category not seen in training sets none of them.  The forest's out-of-bag
    probabilities are mapped to calibrated PDs (Platt or isotonic, chosen as in
    :class:`CreditGBM`), so no rows are spent on a separate calibration fold.

    Parameters
    ----------
    base_score, base_odds, pdo, grade_bands
        Points scale and grades, as in :class:`CreditScorecard`.
    n_estimators, max_features, min_samples_leaf, class_weight
        scikit-learn ``RandomForestClassifier`` parameters.  ``class_weight="balanced_subsample"``
        (default) re-weights each bootstrap sample; calibration restores true probabilities.
    calibration : {"auto", "isotonic", "sigmoid", "none"}
        Map from the forest's out-of-bag probability (as log-odds) to the PD.
    explainer : {"tree_shap", "saabas"}
        Reason codes from exact TreeSHAP (default; ~55 ms per row for 500 fully grown trees) or
        from Saabas path attributions (SHAP's ``approximate=True``: ~0.15 ms per row, additive as
        well, but not Shapley values; on German credit the top feature agrees for 78 % of rows).
    sensitive_features, include_sensitive
        As in :class:`CreditScorecard`.
    random_state : int
    n_jobs : int
        Threads for fitting and batch scoring.

    Attributes
    ----------
    oof_proba_ : ndarray
        Calibrated out-of-bag PD of each training row (NaN for a row in every bootstrap sample).
        A fully grown forest fits its training rows almost perfectly, so compare new scores with
        these, not with in-sample scores of the training rows (PSI).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = pd.DataFrame({"util": rng.random(2000), "late": rng.integers(0, 4, 2000)})
    >>> y = (rng.random(2000) < 0.05 + 0.3 * X["util"] + 0.05 * X["late"]).astype(int)
    >>> m = CreditForest(n_estimators=50, min_samples_leaf=5).fit(X, y)
    >>> m.predict_proba(X.head(2)).shape
    (2, 2)
    """

    def __init__(self, *, base_score: float = 600.0, base_odds: float = 50.0, pdo: float = 20.0,
                 grade_bands: Sequence[float] | None = None, n_estimators: int = 500,
                 max_features: str | float = "sqrt", min_samples_leaf: int = 1,
                 class_weight: str | None = "balanced_subsample",
                 calibration: Literal["auto", "isotonic", "sigmoid", "none"] = "auto",
                 explainer: Literal["tree_shap", "saabas"] = "tree_shap",
                 sensitive_features: Sequence[str] | str = "auto", include_sensitive: bool = False,
                 random_state: int = 0, n_jobs: int = 1) -> None:
        self.base_score = base_score
        self.base_odds = base_odds
        self.pdo = pdo
        self.grade_bands = grade_bands
        self.n_estimators = n_estimators
        self.max_features = max_features
        self.min_samples_leaf = min_samples_leaf
        self.class_weight = class_weight
        self.calibration = calibration
        self.explainer = explainer
        self.sensitive_features = sensitive_features
        self.include_sensitive = include_sensitive
        self.random_state = random_state
        self.n_jobs = n_jobs

    def _check_params(self) -> None:
        self._check_common_params()
        n = "CreditForest"
        check_param(n, "n_estimators", self.n_estimators, lambda v: is_int(v) and v >= 10, "an int >= 10")
        check_param(n, "max_features", self.max_features,
                    lambda v: v in ("sqrt", "log2") or bool(isinstance(v, (float, np.floating)) and 0 < v <= 1)
                    or (is_int(v) and v >= 1), "'sqrt', 'log2', a float in (0, 1] or an int >= 1")
        check_param(n, "min_samples_leaf", self.min_samples_leaf, lambda v: is_int(v) and v >= 1,
                    "an int >= 1")
        check_param(n, "class_weight", self.class_weight, lambda v: v in (None, "balanced", "balanced_subsample"),
                    "None, 'balanced' or 'balanced_subsample'")
        check_param(n, "calibration", self.calibration, lambda v: v in ("auto", "isotonic", "sigmoid", "none"),
                    "one of 'auto', 'isotonic', 'sigmoid', 'none'")
        check_param(n, "explainer", self.explainer, lambda v: v in ("tree_shap", "saabas"), "'tree_shap' or 'saabas'")
        check_param(n, "n_jobs", self.n_jobs, lambda v: is_int(v) and (v >= 1 or v == -1), "an int >= 1 or -1")

    # ------------------------------------------------------------------ fit
    def fit(self, X: pd.DataFrame, y: Any) -> CreditForest:
        """One-hot encode, grow the forest, calibrate its out-of-bag probabilities."""
        from sklearn.ensemble import RandomForestClassifier

        t0 = time.perf_counter()
        self._check_params()
        Xs, yv = self._fit_inputs(X, y)
        self.features_ = list(Xs.columns)
        self.categories_: dict[str, list[str]] = {}
        for c, d in self.feature_dtypes_.items():
            if d == "categorical":
                vals = Xs[c].dropna().astype(str).unique().tolist()
                self.categories_[c] = sorted(vals)
        self._layout()
        M = self._matrix(Xs)
        self.forest_ = RandomForestClassifier(
            n_estimators=int(self.n_estimators),
            max_features=int(self.max_features) if is_int(self.max_features) else self.max_features,
            min_samples_leaf=int(self.min_samples_leaf), class_weight=self.class_weight, oob_score=True,
            random_state=self.random_state, n_jobs=int(self.n_jobs),
        ).fit(M, yv)
        oob = self.forest_.oob_decision_function_[:, 1]
        seen = np.isfinite(oob)  # a row in every bootstrap sample has no out-of-bag vote
        m, yo = _vote_odds(oob[seen]), yv[seen]
        self.calibration_, self.calibration_scores_ = choose_calibration(self.calibration, m, yo, self.random_state)
        self.calibrator_ = _Calibrator.fit(self.calibration_, m, yo)
        self.oof_proba_ = np.full(len(yv), np.nan)
        self.oof_proba_[seen] = self.calibrator_(m)
        self._finish_fit()
        self.fit_time_ = time.perf_counter() - t0
        logger.info("CreditForest: %d trees on %d columns, calibration %s, %.1fs", self.n_estimators,
                    len(self.columns_), self.calibration_, self.fit_time_)
        return self

    def _layout(self) -> None:
        """Matrix columns: numeric features as they are, categoricals as indicators (+ missing)."""
        self.columns_: list[str] = []
        self.column_feature_: list[str] = []
        for c in self.features_:
            if c in self.categories_:
                for v in [*self.categories_[c], None]:
                    self.columns_.append(f"{c}={v}" if v is not None else f"{c}=<missing>")
                    self.column_feature_.append(c)
            else:
                self.columns_.append(c)
                self.column_feature_.append(c)

    # ------------------------------------------------------------------ scoring
    def _matrix(self, Xs: pd.DataFrame) -> np.ndarray:
        cols = []
        for c in self.features_:
            if c in self.categories_:
                s = Xs[c]
                miss = s.isna().to_numpy()
                txt = s.astype(object).where(~miss, None).astype(str).to_numpy()
                cols += [((txt == v) & ~miss).astype(np.float64) for v in self.categories_[c]]
                cols.append(miss.astype(np.float64))
            else:
                cols.append(Xs[c].to_numpy(dtype=float, na_value=np.nan))
        return _as_float32(np.column_stack(cols))

    def _raw_proba(self, M: np.ndarray) -> np.ndarray:
        if len(M) <= _FLAT_ROWS:  # a few rows: walk all trees at once instead of 500 predict calls
            flat = self._flat_trees()
            return np.array([flat.predict_one(row) for row in M])
        return self.forest_.predict_proba(M)[:, 1]

    def _flat_trees(self) -> _FlatForest:
        # cached beside the model, not in it: predict leaves the estimator's __dict__ unchanged
        flat = _FLAT_CACHE.get(self.forest_)
        if flat is None:
            flat = _FLAT_CACHE[self.forest_] = _FlatForest(self.forest_)
        return flat

    def _logit(self, X: pd.DataFrame) -> np.ndarray:
        return log_odds(self.calibrator_(_vote_odds(self._raw_proba(self._matrix(X)))))

    def contributions(self, X: Any) -> pd.DataFrame:
        """TreeSHAP (or Saabas, see ``explainer``) values per feature, rescaled to log-odds.

        The values of a categorical's indicators are summed.
        SHAP explains the forest's probability; each row's values are multiplied by one positive
        factor so that they sum to the calibrated log-odds minus the log-odds of the forest's
        average prediction (> 0 = adverse).  Needs ``shap`` (``pip install 'buyerscore[explain]'``).
        """
        try:
            import shap
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError("CreditForest reason codes need shap: pip install 'buyerscore[explain]'.") from exc
        Xc = self._check_X(X)
        M = self._matrix(Xc)
        ex = shap.TreeExplainer(self.forest_)
        sv = np.asarray(ex.shap_values(M, approximate=self.explainer == "saabas", check_additivity=False))
        if sv.ndim == 3:  # (rows, columns, classes)
            sv = sv[:, :, 1]
        base = float(np.atleast_1d(ex.expected_value)[-1])
        p = self._raw_proba(M)
        cal = self.calibrator_

        def lg(q: np.ndarray) -> np.ndarray:  # calibrated log-odds of raw forest probabilities
            return log_odds(cal(_vote_odds(q)), _EPS)

        num = lg(p) - lg(np.array([base]))[0]
        den = p - base
        h = 1e-4
        slope = (lg(np.array([base + h])) - lg(np.array([base - h])))[0] / (2 * h)
        close = np.abs(den) < 1e-6
        factor = np.where(close, slope, num / np.where(close, 1.0, den))
        per_col = sv * factor[:, None]
        out = pd.DataFrame(0.0, index=Xc.index, columns=self.features_)
        for j, c in enumerate(self.column_feature_):
            out[c] += per_col[:, j]
        return out

    def score_record(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """PD, points and grade of one record (a dict)."""
        vals = self._record_values(record)
        row: list[float] = []
        for c, v in zip(self.features_, vals, strict=True):
            if c in self.categories_:
                miss = v is None or (isinstance(v, float) and math.isnan(v))
                row += [float(not miss and str(v) == k) for k in self.categories_[c]]
                row.append(float(miss))
            else:
                row.append(np.nan if v is None else float(v))
        p = self._raw_proba(_as_float32([row]))
        return self._record_result(float(log_odds(self.calibrator_(_vote_odds(p)))[0]))
