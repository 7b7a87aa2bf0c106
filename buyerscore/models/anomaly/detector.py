"""``AnomalyDetector``: an ensemble of unsupervised outlier detectors over behaviour features.

Three detectors look at different kinds of "unusual":

* ``"iforest"``: scikit-learn's :class:`~sklearn.ensemble.IsolationForest` (unusual *combinations*);
* ``"ecod"``: ECOD (Li et al., 2022, as in PyOD): the sum over features of the negative log of the
  empirical tail probability, on the tail the feature's skewness points to (unusual *values*);
* ``"copod"``: COPOD (Li et al., 2020, as in PyOD): empirical-copula tail probabilities, both tails.

ECOD and COPOD are computed from a per-feature quantile sketch of the training data (at most
``max_grid`` points per feature; exact below that), so the saved model holds no training rows
(STYLE rule 9) and new users are scored against the training population only.  On the training
set the result equals PyOD's ``ECOD`` / ``COPOD`` when every feature has at most ``max_grid``
distinct values (tested).

Each detector's raw score is mapped to ``[0, 1]`` by its empirical CDF on the training set, the
detectors are combined (mean or max) and the result is calibrated once more on the training set,
so ``anomaly_score`` is (about) the share of training users less unusual than the user; the flag
is ``anomaly_score >= threshold_`` where ``threshold_`` flags a ``contamination`` share of the
training users.  Reason codes: per feature, ``-ln(2 * p_tail)`` (0 at the median; 2.3 means ten
times rarer than the median side; clipped at 0) through :func:`buyerscore.explain.top_reasons`.

Input values: a missing value (NaN, None) is imputed with the training median (it is "typical");
``+inf`` / ``-inf`` and values beyond float32's range are clipped to ``+-3.4e38`` (the largest value
the isolation forest can read), i.e. scored as more extreme than any finite training value, in fitting
as in scoring; a text value in a feature column is a :class:`~buyerscore.exceptions.ModelInputError`
naming the column, rows and values.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy.stats import skew
from sklearn.base import BaseEstimator
from sklearn.ensemble import IsolationForest
from sklearn.utils.validation import check_is_fitted

from buyerscore._validation import as_frame, check_param, examples
from buyerscore.exceptions import ModelInputError
from buyerscore.explain.reason_codes import ReasonCode, top_reasons
from buyerscore.models import trees

logger = logging.getLogger(__name__)

DETECTORS = ("iforest", "ecod", "copod")
ID_COLUMNS = ("platform", "user_id")
_BIG = float(np.finfo(np.float32).max)
"""Infinite and larger inputs are clipped to +-_BIG: beyond every finite training value, and readable as float32."""


class _ECDF:
    """Empirical CDF of a 1-d sample on a quantile grid, strictly inside (0, 1), with exponential tails."""

    def __init__(self, x: np.ndarray, max_grid: int = 2048) -> None:
        x = np.sort(np.asarray(x, dtype=float))
        n = x.size
        self.n = n
        if n <= max_grid:
            grid, probs = x, (np.arange(1, n + 1)) / (n + 1)
        else:
            probs = np.linspace(1, n, max_grid) / (n + 1)
            grid = np.quantile(x, np.clip((probs * (n + 1) - 1) / (n - 1), 0.0, 1.0))
        # ties: np.interp needs increasing xp; keep the last (largest) probability of a tied value
        keep = np.r_[grid[1:] != grid[:-1], True]
        self.grid, self.probs = grid[keep], probs[keep]
        q75, q25 = np.quantile(x, [0.75, 0.25])
        scale = q75 - q25
        if not scale > 0:
            scale = float(np.std(x)) or 1.0
        self.scale = float(scale)

    def __call__(self, s: np.ndarray) -> np.ndarray:
        s = np.asarray(s, dtype=float)
        lo, hi = self.grid[0], self.grid[-1]
        p = np.interp(s, self.grid, self.probs)
        edge = 1.0 / (self.n + 1)
        above = s > hi
        below = s < lo
        p[above] = 1.0 - edge * np.exp(-(s[above] - hi) / self.scale)
        p[below] = edge * np.exp(-(lo - s[below]) / self.scale)
        return np.clip(p, 0.0, 1.0)


class _Marginals:
    """Per-feature left/right empirical tail probabilities from a quantile sketch (for ECOD / COPOD / reasons)."""

    def __init__(self, X: np.ndarray, max_grid: int = 2048) -> None:
        n, d = X.shape
        self.n = n
        self.grids: list[np.ndarray] = []
        self.le: list[np.ndarray] = []   # P(X <= grid value)
        self.ge: list[np.ndarray] = []   # P(X >= grid value)
        self.scales = np.ones(d)
        for j in range(d):
            col = np.sort(X[:, j])
            u = np.unique(col)
            if u.size > max_grid:  # sketch: quantiles, with ECDF values of the sample at them
                u = np.unique(np.quantile(col, np.linspace(0, 1, max_grid)))
            le = np.searchsorted(col, u, side="right") / n
            ge = 1.0 - np.searchsorted(col, u, side="left") / n
            self.grids.append(u)
            self.le.append(le)
            self.ge.append(ge)
            q75, q25 = np.quantile(col, [0.75, 0.25])
            sc = q75 - q25
            self.scales[j] = sc if sc > 0 else (np.std(col) or 1.0)
        self.skew_sign = np.sign(np.nan_to_num(skew(X, axis=0))) if n > 2 else np.zeros(d)

    def tails(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(P(X_j <= x), P(X_j >= x))`` per cell; beyond the sample range an exponential tail below 1/n."""
        m, d = X.shape
        # filled feature by feature in (d, m) layout (contiguous rows), returned as (m, d) views
        left = np.empty((d, m))
        right = np.empty((d, m))
        floor = 1.0 / (self.n + 1)
        for j in range(d):
            u, le, ge, x = self.grids[j], self.le[j], self.ge[j], X[:, j]
            i = np.searchsorted(u, x, side="right") - 1          # last grid value <= x
            lj = le.take(np.maximum(i, 0))
            out = i < 0
            if out.any():
                lj[out] = floor * np.exp(-(u[0] - x[out]) / self.scales[j])
            left[j] = lj
            # first grid value >= x: the same index when x is on the grid, else the next one (one search)
            k = i + (u.take(np.maximum(i, 0)) != x)
            k[i < 0] = 0
            rj = ge.take(np.minimum(k, u.size - 1))
            out = k >= u.size
            if out.any():
                rj[out] = floor * np.exp(-(x[out] - u[-1]) / self.scales[j])
            right[j] = rj
        np.maximum(left, 1e-300, out=left)
        np.maximum(right, 1e-300, out=right)
        return left.T, right.T

    def neg_log_tails(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(-ln P(X_j <= x), -ln P(X_j >= x))`` per cell (the inputs of ECOD and COPOD)."""
        left, right = self.tails(X)
        np.log(left, out=left)
        np.negative(left, out=left)
        np.log(right, out=right)
        np.negative(right, out=right)
        return left, right

    def row_scores(self, X: np.ndarray) -> dict[str, np.ndarray] | None:
        """ECOD and COPOD scores per row (the row sums of :meth:`outlyingness`) in one compiled pass,
        or None without numba (see :mod:`buyerscore.models.anomaly._tails`)."""
        from buyerscore.models.anomaly import _tails

        if not _tails.available():
            return None
        flat = self.__dict__.get("_flat")
        if flat is None:
            sizes = [g.size for g in self.grids]
            flat = self.__dict__["_flat"] = (
                np.concatenate(self.grids).astype(np.float64),
                -np.log(np.maximum(np.concatenate(self.le).astype(np.float64), 1e-300)),  # as neg_log_tails
                -np.log(np.maximum(np.concatenate(self.ge).astype(np.float64), 1e-300)),
                np.r_[0, np.cumsum(sizes)].astype(np.int64),
                np.asarray(self.scales, dtype=np.float64), np.asarray(self.skew_sign, dtype=np.float64))
        grid, nl_le, nl_ge, off, scales, sign = flat
        ecod, copod = _tails.row_scores(np.asarray(X).T, grid, nl_le, nl_ge, off, scales, sign, self.n)
        return {"ecod": ecod, "copod": copod}

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_flat", None)  # a cache, rebuilt on first use
        return state

    def outlyingness(self, X: np.ndarray, method: Literal["ecod", "copod"],
                     neg_log_tails: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
        """Per-cell ECOD / COPOD outlyingness (their row sums are the detector scores).

        ``neg_log_tails`` (from :meth:`neg_log_tails` on the same ``X``) lets ECOD and COPOD share one pass.
        """
        u_l, u_r = neg_log_tails if neg_log_tails is not None else self.neg_log_tails(X)
        s = self.skew_sign
        u_skew = u_l * -np.sign(s - 1) + u_r * np.sign(s + 1)  # skew < 0: left tail; > 0: right; 0: their sum
        if method == "ecod":
            return np.maximum(np.maximum(u_l, u_r), u_skew)
        return np.maximum(u_skew, (u_l + u_r) / 2)


class _FlatForest:
    """A fitted :class:`~sklearn.ensemble.IsolationForest` as flat node arrays, scored for all trees at once.

    Gives exactly ``-IsolationForest.score_samples`` (same float32 inputs, same per-tree path lengths,
    summed over the trees in the same order) without scikit-learn's per-tree dispatch, which costs
    about 0.1 ms per tree and call: this is what makes one-user scoring fast.  For large inputs
    scikit-learn's compiled traversal is faster and is used instead (see ``AnomalyDetector._iforest_raw``).
    """

    def __init__(self, forest: IsolationForest) -> None:
        from sklearn.ensemble._iforest import _average_path_length  # same formula as score_samples

        parts, roots, off = [], [], 0
        for tree, dpl, apl in zip(forest.estimators_, forest._decision_path_lengths,
                                  forest._average_path_length_per_tree, strict=True):
            roots.append(off)
            parts.append(trees.isolation_tree_arrays(tree, dpl, apl, off))  # a leaf points to itself
            off += parts[-1]["n_nodes"]
        self.feature = np.concatenate([p["feature"] for p in parts]).astype(np.intp)
        self.threshold = np.concatenate([p["threshold"] for p in parts]).astype(np.float64)
        self.left = np.concatenate([p["left"] for p in parts]).astype(np.intp)
        self.right = np.concatenate([p["right"] for p in parts]).astype(np.intp)
        self.value = np.concatenate([p["value"] for p in parts]).astype(np.float64)
        self.roots = np.asarray(roots, dtype=np.intp)
        self.depth = max(p["depth"] for p in parts)
        self.denominator = len(forest.estimators_) * _average_path_length([forest._max_samples])

    def __call__(self, M: np.ndarray, block: int = 1024) -> np.ndarray:
        X = np.ascontiguousarray(M, dtype=np.float32)  # sklearn trees compare float32 inputs
        n, d = X.shape
        flat = X.ravel()
        out = np.empty(n)
        for s in range(0, n, block):
            b = min(block, n - s)
            idx = np.repeat(self.roots[:, None], b, axis=1)                 # (trees, rows)
            base = (np.arange(s, s + b) * d)[None, :]
            for _ in range(self.depth):
                go_left = flat[base + self.feature[idx]] <= self.threshold[idx]
                idx = np.where(go_left, self.left[idx], self.right[idx])
            depths = self.value[idx].sum(axis=0)  # tree by tree, in order (outer-axis reduction)
            out[s:s + b] = 2 ** (-np.divide(depths, self.denominator, out=np.ones_like(depths),
                                            where=self.denominator != 0))
        return out


def _denominator(forest: IsolationForest) -> float:
    """``n_trees * c(max_samples)``, the normaliser of ``IsolationForest.score_samples``."""
    from sklearn.ensemble._iforest import _average_path_length

    return float(len(forest.estimators_) * _average_path_length([forest._max_samples])[0])


_FLAT_FOREST_MAX_ROWS = 1024
"""Inputs up to this many rows are scored with :class:`_FlatForest`; larger ones with scikit-learn."""
_ROW_BLOCK = 32_768
"""Rows scored at a time (each detector's per-cell temporaries are rows x features floats)."""


def _numeric_columns(feats: pd.DataFrame, columns: Any, X: pd.DataFrame, owner: str) -> pd.DataFrame:
    """``feats`` with its non-numeric ``columns`` converted to numbers; a value that is not a number
    (e.g. ``'abc'``) raises a :class:`ModelInputError` naming the column, rows and values."""
    dtypes = feats.dtypes  # one look-up (not one Series per column): cheap for one-row frames
    todo = [c for c in columns if getattr(dtypes[c], "kind", "O") not in "fiub"
            and not (pd.api.types.is_numeric_dtype(dtypes[c]) or pd.api.types.is_bool_dtype(dtypes[c]))]
    if not todo:
        return feats
    conv: dict[Any, pd.Series] = {}
    broken: list[tuple[Any, np.ndarray]] = []
    for c in todo:
        col = feats[c].astype(object)
        num = pd.to_numeric(col, errors="coerce")
        bad = (num.isna() & col.notna()).to_numpy()
        if bad.any():
            broken.append((c, bad))
        conv[c] = num.astype(float)
    if broken:
        c, bad = broken[0]
        pos = np.flatnonzero(bad)
        rows = feats.index[pos[:3]].tolist()
        who = (f" (user_id {X['user_id'].iloc[pos[:3]].astype(str).tolist()})"
               if "user_id" in X.columns and len(X) == len(feats) else "")
        others = f"; column(s) {examples([b[0] for b in broken[1:]])} too" if len(broken) > 1 else ""
        raise ModelInputError(
            f"{owner}: column {c!r} has {pos.size} value(s) that are not numbers, e.g. rows {rows}{who}: "
            f"{examples(feats[c].iloc[pos[:3]].tolist())}{others}. Pass numbers (NaN for unknown), or drop or "
            "encode the column (id columns to keep: id_columns=...).")
    feats = feats.copy()
    for c, v in conv.items():
        feats[c] = v
    return feats


class AnomalyDetector(BaseEstimator):
    """Ensemble anomaly detector with scores in [0, 1], a contamination flag and reason codes.

    Parameters
    ----------
    detectors : sequence of {"iforest", "ecod", "copod"}, default all three
        Detectors of the ensemble.
    contamination : float, default 0.01
        Share of training users to flag; sets ``threshold_``.  In (0, 0.5).
    combine : {"mean", "max"}, default "max"
        How the detectors' calibrated scores are combined ("max" favours users that any single
        detector finds extreme).
    n_estimators : int, default 200
        Trees of the isolation forest.
    max_grid : int, default 2048
        Points of the per-feature quantile sketch and of the score calibration.
    random_state : int, default 0
        Seed of the isolation forest.
    id_columns : sequence of str, default ("platform", "user_id")
        Columns that identify a user and are not features (kept in :meth:`score_frame`).
    change_features : bool, default False
        Append :func:`~buyerscore.models.anomaly.features.behaviour_change_features` (recent behaviour
        relative to the user's own history) to the input before fitting and scoring.

    Attributes
    ----------
    features_ : list of str
        Feature columns used (numeric, non-constant in training).
    feature_names_in_ : ndarray of str
        Input feature columns seen in ``fit`` (id columns dropped, before the derived ``change_features``);
        the column order expected from a numpy array.
    n_features_in_ : int
        Their number.
    medians_ : Series
        Training median per feature (missing values are imputed with it; quoted as "typical").
        Infinite values are not missing: they are clipped to +-3.4e38 and scored as extreme.
    threshold_ : float
        ``anomaly_score`` at or above which a user is flagged.
    n_train_ : int
        Training rows.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = pd.DataFrame(rng.normal(size=(300, 3)), columns=["a", "b", "c"])
    >>> X.loc[0] = [8.0, -6.0, 0.0]
    >>> det = AnomalyDetector(contamination=0.01).fit(X)
    >>> int(det.anomaly_score(X).argmax()), det.reason_codes(X.iloc[[0]], k=1)[0][0].feature
    (0, 'a')
    """

    def __init__(self, *, detectors: Sequence[str] = DETECTORS, contamination: float = 0.01,
                 combine: Literal["mean", "max"] = "max", n_estimators: int = 200, max_grid: int = 2048,
                 random_state: int | None = 0, id_columns: Sequence[str] = ID_COLUMNS,
                 change_features: bool = False) -> None:
        self.detectors = detectors
        self.contamination = contamination
        self.combine = combine
        self.n_estimators = n_estimators
        self.max_grid = max_grid
        self.random_state = random_state
        self.id_columns = id_columns
        self.change_features = change_features

    # ------------------------------------------------------------------ checks
    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True  # missing values are set to the training medians
        return tags

    def _check_params(self) -> None:
        name = type(self).__name__
        check_param(name, "detectors", self.detectors,
                    lambda v: not isinstance(v, str) and len(v) > 0 and all(d in DETECTORS for d in v)
                    and len(set(v)) == len(v), f"a non-empty list of distinct names from {list(DETECTORS)}")
        check_param(name, "contamination", self.contamination, lambda v: 0 < float(v) < 0.5, "a float in (0, 0.5)")
        check_param(name, "combine", self.combine, lambda v: v in ("mean", "max"), "'mean' or 'max'")
        check_param(name, "n_estimators", self.n_estimators,
                    lambda v: isinstance(v, (int, np.integer)) and bool(v >= 1), "an int >= 1")
        check_param(name, "max_grid", self.max_grid,
                    lambda v: isinstance(v, (int, np.integer)) and bool(v >= 16), "an int >= 16")
        check_param(name, "id_columns", self.id_columns, lambda v: not isinstance(v, str), "a list of column names")
        check_param(name, "change_features", self.change_features, lambda v: isinstance(v, bool), "a bool")

    def _inputs(self, X: Any, *, fitting: bool) -> pd.DataFrame:
        """The input feature columns of ``X`` (id columns dropped), numeric; a numpy array is read in the
        order of ``feature_names_in_``."""
        name = type(self).__name__
        if not isinstance(X, pd.DataFrame):
            if fitting:
                X = as_frame(X, name)  # a 2-D array gets scikit-learn's names x0, x1, ...
            else:
                X = as_frame(X, name, columns=list(self.feature_names_in_))  # columns by position
        feats = X.drop(columns=[c for c in self.id_columns if c in X.columns])
        check = feats.columns if fitting else [c for c in self.feature_names_in_ if c in feats.columns]
        return _numeric_columns(feats, check, X, name)

    def _frame(self, X: Any, *, fitting: bool, inputs: pd.DataFrame | None = None) -> pd.DataFrame:
        """The detector's feature frame: the inputs (``inputs`` when already read) plus the change features."""
        feats = self._inputs(X, fitting=fitting) if inputs is None else inputs
        if self.change_features:
            from buyerscore.models.anomaly.features import with_change_features

            feats = with_change_features(feats)
        if fitting:
            if feats.shape[1] == 0:
                raise ModelInputError(f"{type(self).__name__}.fit got 0 feature(s) (shape={feats.shape}) while a "
                                      "minimum of 1 is required; pass at least one numeric feature column.")
            if feats.shape[0] < 10:
                raise ModelInputError(f"{type(self).__name__}.fit needs at least 10 rows (users) to learn what is "
                                      f"typical; got n_samples={feats.shape[0]}.")
        else:
            missing = [c for c in self.features_ if c not in feats.columns]
            if missing:
                raise ModelInputError(f"Input for {type(self).__name__} lacks column(s) {examples(missing)}; score "
                                      "with the feature columns the detector was fitted on (features_).")
        return feats

    def _matrix(self, feats: pd.DataFrame) -> np.ndarray:
        """The ``features_`` columns as a new column-major float64 matrix, missing cells set to the training
        medians and infinite ones clipped to +-3.4e38 (one copy: a single-block frame is read in place,
        columns picked by ``take``)."""
        if feats.columns.is_unique and all(getattr(dt, "kind", "O") in "fiub" for dt in feats.dtypes.to_numpy()):
            A = feats.to_numpy(dtype=np.float64, na_value=np.nan)
            M = np.take(A.T, feats.columns.get_indexer(self.features_), axis=0).T
        else:
            M = feats[self.features_].astype(float).to_numpy(copy=True)
        missing = np.isnan(M)
        if missing.any():
            np.copyto(M, self.medians_.to_numpy(dtype=np.float64)[np.newaxis, :], where=missing)
        np.clip(M, -_BIG, _BIG, out=M)  # +-inf: the most extreme values, not missing ones
        return M

    # ------------------------------------------------------------------ fit
    def fit(self, X: pd.DataFrame, y: Any = None) -> AnomalyDetector:
        """Fit the detectors and their calibration on ``X`` (``y`` is ignored: unsupervised)."""
        self._check_params()
        inputs = self._inputs(X, fitting=True)
        self.feature_names_in_ = np.asarray(inputs.columns, dtype=object)  # before the derived change features
        self.n_features_in_ = len(self.feature_names_in_)
        feats = self._frame(X, fitting=True, inputs=inputs)
        F = feats.astype(float)
        inf = np.isinf(F.to_numpy())
        if inf.any():
            cols = [str(c) for c in F.columns[inf.any(axis=0)]]
            rows = F.index[inf.any(axis=1)]
            logger.warning("AnomalyDetector.fit: %d infinite value(s) in column(s) %s, e.g. rows %s; they are scored "
                           "as the most extreme values (clipped to +-3.4e38), not as missing.", int(inf.sum()),
                           examples(cols), examples(rows.tolist()))
            F = F.replace([np.inf, -np.inf], np.nan)
        med = F.median()
        const = [c for c in F.columns if F[c].nunique(dropna=True) <= 1]
        if const:
            logger.info("AnomalyDetector: ignoring %d constant column(s) %s", len(const), const[:5])
        self.features_ = [c for c in F.columns if c not in const]
        if not self.features_:
            raise ModelInputError("AnomalyDetector.fit: every feature column is constant; nothing can be unusual.")
        self.medians_ = med[self.features_].fillna(0.0)
        M = self._matrix(feats)
        self.n_train_ = M.shape[0]
        self.marginals_ = _Marginals(M, self.max_grid)
        self.iforest_ = None
        if "iforest" in self.detectors:
            self.iforest_ = IsolationForest(n_estimators=self.n_estimators, random_state=self.random_state,
                                            n_jobs=1).fit(M)
        raw = self._raw(M)
        self.calibrators_ = {k: _ECDF(v, self.max_grid) for k, v in raw.items()}
        comb = self._combine({k: self.calibrators_[k](v) for k, v in raw.items()})
        self.final_calibrator_ = _ECDF(comb, self.max_grid)
        train_scores = self.final_calibrator_(comb)
        self.threshold_ = float(np.quantile(train_scores, 1.0 - float(self.contamination), method="higher"))
        return self

    def _raw(self, M: np.ndarray) -> dict[str, np.ndarray]:
        """Raw detector scores; rows are taken ``_ROW_BLOCK`` at a time so temporaries stay small."""
        if M.shape[0] > _ROW_BLOCK:
            parts = [self._raw_block(M[s:s + _ROW_BLOCK]) for s in range(0, M.shape[0], _ROW_BLOCK)]
            return {d: np.concatenate([p[d] for p in parts]) for d in parts[0]}
        return self._raw_block(M)

    def _raw_block(self, M: np.ndarray) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        nlt = None
        compiled = (self.marginals_.row_scores(M) if any(d in ("ecod", "copod") for d in self.detectors)
                    else None)
        for d in self.detectors:
            if d == "iforest":
                out[d] = self._iforest_raw(M)
            elif compiled is not None:
                out[d] = compiled[d]
            else:
                if nlt is None:  # ECOD and COPOD share the per-cell tail probabilities
                    nlt = self.marginals_.neg_log_tails(M)
                out[d] = self.marginals_.outlyingness(M, d, nlt).sum(axis=1)  # type: ignore[arg-type]
        return out

    def _iforest_raw(self, M: np.ndarray) -> np.ndarray:
        """``-iforest_.score_samples(M)`` (higher = easier to isolate).

        Computed by the compiled kernel of :mod:`buyerscore.models.trees` when numba is there (same
        float32 inputs, same per-leaf path lengths summed in the same order, so the same numbers);
        else small inputs take the numpy flat-array path and large ones scikit-learn.
        """
        assert self.iforest_ is not None
        if M.shape[1] == self.iforest_._max_features:
            compiled = trees.flat_trees(self.iforest_)
            if isinstance(compiled, trees.IsolationTrees):
                depths = compiled.predict(M)
                den = _denominator(self.iforest_)
                return np.asarray(2 ** (-np.divide(depths, den, out=np.ones_like(depths), where=den != 0)))
        if M.shape[0] <= _FLAT_FOREST_MAX_ROWS and M.shape[1] == self.iforest_._max_features:
            flat = self.__dict__.get("_flat_forest")
            if flat is None:
                try:
                    flat = _FlatForest(self.iforest_)
                except (ImportError, AttributeError):  # a scikit-learn without these internals: no fast path
                    flat = False
                self.__dict__["_flat_forest"] = flat
            if isinstance(flat, _FlatForest):
                return np.asarray(flat(M))
        return np.asarray(-self.iforest_.score_samples(M))

    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())
        state.pop("_flat_forest", None)  # a cache, rebuilt on first use: not saved with the model
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        if "feature_names_in_" in state and "n_features_in_" not in state:
            # saved before feature_names_in_ held the input columns only (it also held the derived change
            # features, so a numpy array could not be scored): drop those
            names = list(state["feature_names_in_"])
            if state.get("change_features"):
                from buyerscore.models.anomaly.features import CHANGE_FEATURES

                names = [c for c in names if c not in CHANGE_FEATURES]
            state["feature_names_in_"] = np.asarray(names, dtype=object)
            state["n_features_in_"] = len(names)
        super().__setstate__(state)

    def _combine(self, norm: dict[str, np.ndarray]) -> np.ndarray:
        S = np.column_stack([norm[d] for d in self.detectors])
        return S.max(axis=1) if self.combine == "max" else S.mean(axis=1)

    # ------------------------------------------------------------------ scoring
    def detector_scores(self, X: Any) -> pd.DataFrame:
        """Each detector's calibrated score in [0, 1] (columns = ``detectors``)."""
        check_is_fitted(self, "threshold_")
        M = self._matrix(self._frame(X, fitting=False))
        raw = self._raw(M)
        return pd.DataFrame({k: self.calibrators_[k](v) for k, v in raw.items()},
                            index=getattr(X, "index", None))

    def anomaly_score(self, X: Any) -> np.ndarray:
        """Anomaly score in [0, 1]; higher = more unusual (about the share of training users less unusual)."""
        check_is_fitted(self, "threshold_")
        ds = self.detector_scores(X)
        return self.final_calibrator_(self._combine({k: ds[k].to_numpy() for k in ds.columns}))

    def score(self, X: Any, y: Any = None) -> np.ndarray:
        """Alias of :meth:`anomaly_score` (the per-row score used by :class:`buyerscore.pipeline.ScoringPipeline`)."""
        return self.anomaly_score(X)

    def flag(self, X: Any) -> np.ndarray:
        """Boolean flag per row (``anomaly_score >= threshold_``)."""
        return self.predict(X).astype(bool)

    def predict(self, X: Any) -> np.ndarray:
        """1 = flagged as anomalous (``anomaly_score >= threshold_``), 0 = normal."""
        check_is_fitted(self, "threshold_")
        return (self.anomaly_score(X) >= self.threshold_).astype(np.int64)

    def fit_predict(self, X: pd.DataFrame, y: Any = None) -> np.ndarray:
        """Fit on ``X`` and flag its rows."""
        return self.fit(X).predict(X)

    def contributions(self, X: Any) -> pd.DataFrame:
        """Per-feature unusualness ``max(0, -ln(2 p_tail))`` (0 = on the typical side of the median)."""
        check_is_fitted(self, "threshold_")
        M = self._matrix(self._frame(X, fitting=False))
        left, right = self.marginals_.tails(M)
        c = np.maximum(0.0, -np.log(2.0 * np.minimum(np.minimum(left, right), 0.5)))
        return pd.DataFrame(c, columns=self.features_, index=getattr(X, "index", None))

    def reason_codes(self, X: Any, k: int = 3, lang: str = "en") -> list[list[ReasonCode]]:
        """The ``k`` features that make each row most unusual, with the typical (median) value quoted."""
        check_is_fitted(self, "threshold_")
        feats = self._frame(X, fitting=False)
        M = self._matrix(feats)
        left, right = self.marginals_.tails(M)
        c = np.maximum(0.0, -np.log(2.0 * np.minimum(np.minimum(left, right), 0.5)))
        contrib = pd.DataFrame(c, columns=self.features_, index=feats.index)
        return top_reasons(contrib, feats[self.features_], k=k, lang=lang, outcome="anomaly",
                           reference=self.medians_)

    def score_frame(self, X: pd.DataFrame, *, k: int = 3, lang: str = "en") -> pd.DataFrame:
        """Ids (if present), ``anomaly_score``, ``flagged`` and the top-``k`` reasons (feature names and text)."""
        check_is_fitted(self, "threshold_")
        ids = X[[c for c in self.id_columns if c in X.columns]].reset_index(drop=True)
        score = self.anomaly_score(X)
        reasons = self.reason_codes(X, k=k, lang=lang)
        out = ids.copy()
        out["anomaly_score"] = score
        out["flagged"] = (score >= self.threshold_).astype(np.int64)
        out["reason_features"] = [",".join(r.feature for r in rs) for rs in reasons]
        out["reasons"] = ["; ".join(r.text for r in rs) for rs in reasons]
        return out
