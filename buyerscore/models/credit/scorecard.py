"""Monotone WOE-logistic scorecard with points scaling, grades and reason codes."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from buyerscore._validation import check_param, is_int
from buyerscore.models.base import CreditModelBase, check_fitted
from buyerscore.models.credit.binning import FeatureBinning, fit_feature, fit_process

logger = logging.getLogger(__name__)

BASE_ROW = "(base points)"
#: ``coding="monotone"``: the design (distinct bin combinations x bin columns) is a dense float64
#: array up to this many cells (~160 MB), sparse beyond.
_DENSE_DESIGN_CELLS = 20_000_000


class CreditScorecard(CreditModelBase):
    """Credit scorecard: optimal monotone binning, WOE, IV + correlation selection, logistic regression, points.

    Parameters
    ----------
    base_score, base_odds, pdo : float
        Points scale: ``base_score`` points at ``base_odds`` good:bad odds, ``pdo`` points to
        double the odds (default 600 at 50:1, PDO 20).
    grade_bands : list of 4 floats, optional
        Score cut points A/B, B/C, C/D, D/E (decreasing). Default: the scores of PD 2 %, 5 %,
        10 % and 20 %.
    min_iv : float
        Features whose binned information value is below this are dropped.
    max_corr : float
        Of two features whose WOE columns correlate more than this (absolute Pearson), the
        one with the lower IV is dropped.
    max_features : int, optional
        Keep at most this many features (by IV) before the regression.
    special_codes : mapping, optional
        ``{column: codes}``: values that get their own bin(s) (e.g. 96/98 past-due codes).
        Codes may be a list (one bin per code) or a mapping ``{label: [codes]}``.
    monotonic_trend : str
        optbinning's ``monotonic_trend`` for numerical features ("auto_asc_desc" = monotone,
        direction chosen by the data; "auto" also allows peaks and valleys).
    max_n_prebins, min_prebin_size : int, float or "auto"
        optbinning's pre-binning resolution; "auto" = pre-bins of at least 500 rows, between
        2 % and 5 % of the rows.  The solver's model grows with the square of the pre-bins:
        10 (optbinning: 20) gave the same 5-fold AUC as 30 on Give Me Some Credit, Taiwan and
        German credit (within 0.0004) at half the fit time (``benchmarks/credit.py``).
    fast_binning : bool
        Pre-aggregate each feature to weighted counts before optbinning's solver (exactly the
        same solver; much faster on large data). ``False`` runs ``BinningProcess`` on raw rows.
    max_hist_bins : int
        Fine cells of the pre-aggregation.
    C : float
        Inverse L2 regularisation of the logistic regression.
    coding : {"woe", "dummy", "monotone"}
        How bins enter the regression.  "woe": one coefficient per feature times the bin's
        WOE (the classic scorecard: points follow the bins' WOE, so monotone bins give
        monotone points).  "dummy": one coefficient per bin (L2-regularised indicators): each
        bin's points are its effect given the other features, which need not follow its own
        WOE order.  "monotone": one coefficient per bin like "dummy", constrained so that every
        step between neighbouring ordinary bins keeps the sign of the WOE step (monotone bins
        give monotone points, peak/valley bins the same peak or valley; special, missing and
        categorical bins are free).  Selection is done with the WOE model in every coding.
        Bins never seen in training are neutral (the feature's average), except that with
        "monotone" an unseen ordinary bin keeps its place on the monotone path.
    drop_negative_coef : bool
        Drop, one at a time, features whose coefficient comes out negative (a WOE whose
        direction flips inside the model makes points non-monotone in risk).
    sensitive_features : "auto" or list of str
        Protected columns; "auto" = those of every known dataset.
    include_sensitive : bool
        Opt in to using sensitive columns as inputs (default: left out).

    Attributes
    ----------
    bins_ : dict of FeatureBinning
        Bins of every input feature.
    iv_ : dict
        Information value of every input feature.
    features_ : list of str
        Features in the model, in order.
    coef_ : ndarray
        Logistic regression on the (risk-oriented) WOE columns (with ``coding="dummy"``,
        the WOE model used for selection).
    intercept_ : float
        Intercept of the scoring model: log-odds of default = ``intercept_`` + the row's
        ``bin_logit_`` values.
    bin_logit_ : dict of ndarray
        Contribution of each bin of each model feature to the log-odds of default.
    points_ : dict of ndarray
        Points of each bin of each model feature.
    base_points_ : float
        Points every applicant starts with.
    selection_ : DataFrame
        IV, correlation and sign decision per feature.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = pd.DataFrame({"util": rng.random(2000), "late": rng.integers(0, 4, 2000)})
    >>> y = (rng.random(2000) < 0.05 + 0.2 * X["util"] + 0.05 * X["late"]).astype(int)
    >>> sc = CreditScorecard().fit(X, y)
    >>> bool(np.isclose(sc.score(X.iloc[:1])[0], sc.base_points_ + sc.points_of(X.iloc[:1]).iloc[0].sum()))
    True
    """

    def __init__(self, *, base_score: float = 600.0, base_odds: float = 50.0, pdo: float = 20.0,
                 grade_bands: Sequence[float] | None = None, min_iv: float = 0.02, max_corr: float = 0.9,
                 max_features: int | None = None, special_codes: Mapping[str, Any] | None = None,
                 monotonic_trend: str = "auto_asc_desc", max_n_prebins: int = 10,
                 min_prebin_size: float | str = "auto",
                 fast_binning: bool = True, max_hist_bins: int = 1024, C: float = 1.0, coding: str = "woe",
                 drop_negative_coef: bool = True, sensitive_features: Sequence[str] | str = "auto",
                 include_sensitive: bool = False) -> None:
        self.base_score = base_score
        self.base_odds = base_odds
        self.pdo = pdo
        self.grade_bands = grade_bands
        self.min_iv = min_iv
        self.max_corr = max_corr
        self.max_features = max_features
        self.special_codes = special_codes
        self.monotonic_trend = monotonic_trend
        self.max_n_prebins = max_n_prebins
        self.min_prebin_size = min_prebin_size
        self.fast_binning = fast_binning
        self.max_hist_bins = max_hist_bins
        self.C = C
        self.coding = coding
        self.drop_negative_coef = drop_negative_coef
        self.sensitive_features = sensitive_features
        self.include_sensitive = include_sensitive

    def _check_params(self) -> None:
        self._check_common_params()
        n = "CreditScorecard"
        check_param(n, "min_iv", self.min_iv, lambda v: 0 <= float(v) < 10, "a float in [0, 10)")
        check_param(n, "max_corr", self.max_corr, lambda v: 0 < float(v) <= 1, "a float in (0, 1]")
        check_param(n, "max_features", self.max_features,
                    lambda v: v is None or (is_int(v) and v >= 1), "None or an int >= 1")
        check_param(n, "special_codes", self.special_codes, lambda v: v is None or isinstance(v, Mapping),
                    "None or a mapping {column: codes}")
        check_param(n, "monotonic_trend", self.monotonic_trend,
                    lambda v: v in ("auto", "auto_heuristic", "auto_asc_desc", "ascending", "descending",
                                    "convex", "concave", "peak", "valley", "peak_heuristic", "valley_heuristic", None),
                    "one of optbinning's monotonic_trend values (e.g. 'auto_asc_desc')")
        check_param(n, "max_n_prebins", self.max_n_prebins, lambda v: is_int(v) and v >= 2, "an int >= 2")
        check_param(n, "min_prebin_size", self.min_prebin_size, lambda v: v == "auto" or 0 < float(v) <= 0.5,
                    "'auto' or a float in (0, 0.5]")
        check_param(n, "max_hist_bins", self.max_hist_bins, lambda v: is_int(v) and v >= 16, "an int >= 16")
        check_param(n, "C", self.C, lambda v: float(v) > 0, "a float > 0")
        check_param(n, "coding", self.coding, lambda v: v in ("woe", "dummy", "monotone"),
                    "'woe', 'dummy' or 'monotone'")
        check_param(n, "fast_binning", self.fast_binning, lambda v: isinstance(v, bool), "a bool")

    # ------------------------------------------------------------------ fit
    def fit(self, X: pd.DataFrame, y: Any) -> CreditScorecard:
        """Bin, select, regress and scale.

        Parameters
        ----------
        X : DataFrame
            Predictors (numeric and string/categorical columns; NaN = missing).
        y : array-like
            1 = bad, 0 = good.
        """
        t0 = time.perf_counter()
        self._check_params()
        Xs, yv = self._fit_inputs(X, y)
        codes = dict(self.special_codes or {})
        unknown = [c for c in codes if c not in X.columns]
        if unknown:
            logger.info("special_codes given for absent column(s) %s; ignored", unknown)
        # "auto": pre-bins of >= 500 rows, between 2 % and 5 % of the data
        self.min_prebin_size_ = (float(np.clip(500 / len(yv), 0.02, 0.05)) if self.min_prebin_size == "auto"
                                 else float(self.min_prebin_size))
        solver = {"monotonic_trend": self.monotonic_trend, "max_n_prebins": int(self.max_n_prebins),
                  "min_prebin_size": self.min_prebin_size_}
        cat = [c for c, d in self.feature_dtypes_.items() if d == "categorical"]
        idx: dict[str, np.ndarray] = {}  # bin index of every training row, per feature
        if self.fast_binning:
            self.bins_: dict[str, FeatureBinning] = {}
            for c in Xs.columns:
                dtype: Literal["numerical", "categorical"] = (
                    "numerical" if self.feature_dtypes_[c] == "numerical" else "categorical")
                vals = Xs[c].to_numpy(dtype=float, na_value=np.nan) if dtype == "numerical" else Xs[c].to_numpy()
                self.bins_[c], idx[c] = fit_feature(c, vals, yv, dtype=dtype, special_codes=codes.get(c),
                                                    fast=True, max_hist_bins=int(self.max_hist_bins), return_index=True,
                                                    **solver)
        else:
            self.bins_ = fit_process(Xs, yv, categorical=cat, special_codes=codes, **solver)
            idx = {c: b.bin_index(Xs[c].to_numpy()) for c, b in self.bins_.items()}
        self.binning_time_ = time.perf_counter() - t0
        self.iv_ = {c: b.iv for c, b in self.bins_.items()}

        rows: dict[str, dict[str, Any]] = {c: {"feature": c, "iv": self.iv_[c], "trend": self.bins_[c].trend,
                                              "selected": False, "reason": ""} for c in self.bins_}
        order = sorted(self.bins_, key=lambda c: -self.iv_[c])
        cand = []
        for c in order:
            fb = self.bins_[c]
            if (fb.event + fb.nonevent)[:fb.missing_index].sum() == 0:  # like a constant column, but worth naming
                rows[c]["reason"] = "no value: every row is missing"
            elif self.iv_[c] < self.min_iv:
                rows[c]["reason"] = f"IV {self.iv_[c]:.4f} < min_iv {self.min_iv}"
            elif np.ptp(self.bins_[c].woe[idx[c]]) == 0:
                rows[c]["reason"] = "one bin only"
            else:
                cand.append(c)
        # WOE columns have no missing values: numpy's correlation, not pandas' pairwise-NaN one
        if cand:
            W = np.empty((len(yv), len(cand)), dtype=np.float32, order="F")
            for j, c in enumerate(cand):
                W[:, j] = self.bins_[c].woe[idx[c]]
            corr = pd.DataFrame(np.abs(np.corrcoef(W, rowvar=False)).reshape(len(cand), len(cand)),
                                index=cand, columns=cand)
            del W
        else:
            corr = pd.DataFrame()
        sel: list[str] = []
        for c in cand:
            hit = [s for s in sel if corr.loc[c, s] > self.max_corr]
            if hit:
                rows[c]["reason"] = f"|corr| {corr.loc[c, hit[0]]:.2f} with {hit[0]} > max_corr {self.max_corr}"
            elif self.max_features is not None and len(sel) >= self.max_features:
                rows[c]["reason"] = f"beyond max_features={self.max_features}"
            else:
                sel.append(c)
        if not sel:
            raise ValueError(f"CreditScorecard: no feature passed selection (IVs: "
                             f"{ {c: round(v, 4) for c, v in self.iv_.items()} }); lower min_iv.")
        # the WOE design has few distinct rows (one per combination of bins): fit the regression
        # on distinct rows weighted by their good / bad counts -- the same likelihood, far fewer rows
        radix = np.array([self.bins_[c].n_bins for c in sel], dtype=np.int64)
        if np.sum(np.log2(radix)) < 62:  # one int64 key per bin combination: a 1-D sort
            mult = np.r_[1, np.cumprod(radix[:-1])]
            key = np.zeros(len(yv), dtype=np.int64)
            for c, mu in zip(sel, mult, strict=True):
                key += idx[c] * mu
            _, first, inv = np.unique(key, return_index=True, return_inverse=True)
            uniq = np.column_stack([idx[c][first] for c in sel])
        else:
            uniq, inv = np.unique(np.column_stack([idx[c] for c in sel]), axis=0, return_inverse=True)
        inv = inv.ravel()
        sel_all = list(sel)  # the columns of uniq (sel shrinks below)
        n_bad = np.bincount(inv, weights=yv, minlength=len(uniq))
        n_all = np.bincount(inv, minlength=len(uniq)).astype(float)
        Wu = np.column_stack([self.bins_[c].woe[uniq[:, j]] for j, c in enumerate(sel)])
        Wu2 = np.concatenate([Wu, Wu])
        yu = np.r_[np.zeros(len(uniq)), np.ones(len(uniq))].astype(np.int64)
        wu = np.r_[n_all - n_bad, n_bad]
        keep = wu > 0
        Wu2, yu, wu = Wu2[keep], yu[keep], wu[keep]
        lr = LogisticRegression(C=float(self.C), solver="newton-cholesky", max_iter=100, warm_start=True)
        while True:
            lr.fit(Wu2, yu, sample_weight=wu)
            coef = lr.coef_[0]
            if not self.drop_negative_coef or (coef > 0).all() or len(sel) == 1:
                break
            k = int(np.argmin(coef))
            worst = sel[k]
            rows[worst]["reason"] = f"negative coefficient {coef.min():.3f} in the regression"
            sel.remove(worst)
            Wu2 = np.delete(Wu2, k, axis=1)
            lr.coef_ = np.delete(lr.coef_, k, axis=1)  # warm start from the previous solution
        for c in sel:
            rows[c]["selected"] = True
            rows[c]["reason"] = "selected"
        self.selection_ = pd.DataFrame(list(rows.values())).sort_values("iv", ascending=False, ignore_index=True)
        self.features_ = list(sel)
        self.coef_ = coef.copy()
        self.intercept_ = float(lr.intercept_[0])
        self.bin_logit_ = {c: b * self.bins_[c].woe for c, b in zip(sel, coef, strict=True)}
        if self.coding in ("dummy", "monotone"):
            keep_cols = [j for j, c in enumerate(sel_all) if c in sel]
            fit_bins = self._fit_dummy if self.coding == "dummy" else self._fit_monotone
            fit_bins(uniq[:, keep_cols], n_all, n_bad)
        self._finish_fit()
        self.points_ = {c: 0.0 - self.factor_ * self.bin_logit_[c] for c in sel}  # 0.0 - : no "-0" points
        self.base_points_ = float(self.offset_ - self.factor_ * self.intercept_)
        # best points of each feature among the bins seen in training
        self.max_points_ = {c: float(np.max(p[(self.bins_[c].event + self.bins_[c].nonevent) > 0]))
                            for c, p in self.points_.items()}
        self.fit_time_ = time.perf_counter() - t0
        logger.info("CreditScorecard: %d of %d features selected in %.2fs", len(sel), len(self.bins_), self.fit_time_)
        return self

    def __setstate__(self, state: dict[str, Any]) -> None:
        # scorecards saved before ``bin_logit_`` existed were all WOE-coded: derive it from coef_ and the WOE
        if "features_" in state and "bin_logit_" not in state:
            state["bin_logit_"] = {c: b * state["bins_"][c].woe for c, b in zip(state["features_"], state["coef_"],
                                                                               strict=True)}
        super().__setstate__(state)

    def _fit_dummy(self, uniq: np.ndarray, n_all: np.ndarray, n_bad: np.ndarray) -> None:
        """One coefficient per bin (``coding="dummy"``): L2 logistic regression on bin indicators.

        Fitted on the distinct bin combinations weighted by their good / bad counts (the same
        likelihood as the rows).  Each feature's contributions are centred on its training
        average, so a bin never seen in training is neutral.
        """
        import scipy.sparse as sp

        nu = len(uniq)
        offsets = np.cumsum([0] + [self.bins_[c].n_bins for c in self.features_])
        cols = (uniq + offsets[:-1]).ravel()
        rows = np.repeat(np.arange(nu), len(self.features_))
        D = sp.csr_matrix((np.ones(len(cols)), (rows, cols)), shape=(nu, int(offsets[-1])))
        D2 = sp.vstack([D, D]).tocsr()
        yy = np.r_[np.zeros(nu), np.ones(nu)].astype(np.int64)
        ww = np.r_[n_all - n_bad, n_bad]
        keep = ww > 0
        lr = LogisticRegression(C=float(self.C), solver="newton-cholesky", max_iter=200)
        lr.fit(D2[keep], yy[keep], sample_weight=ww[keep])
        beta = lr.coef_[0]
        self._set_bin_logit([beta[offsets[j]:offsets[j + 1]].copy() for j in range(len(self.features_))],
                            float(lr.intercept_[0]))

    def _fit_monotone(self, uniq: np.ndarray, n_all: np.ndarray, n_bad: np.ndarray) -> None:
        """One coefficient per bin whose steps keep the signs of the WOE steps (``coding="monotone"``).

        The ordinary bins of a numerical feature enter as cumulative indicators
        (``bin >= k`` for k = 1 .. R-1), so the coefficient of column k is the step from
        bin k-1 to bin k; it is bounded to the sign of the WOE step there (a WOE step of
        exactly 0 follows the feature's trend when it is monotone and is free otherwise).
        Special and missing bins (and categorical features) are
        free indicators.  L2-penalised (``1 / C``) weighted logistic likelihood on the distinct
        bin combinations, solved by projected Newton steps (bounded least squares per step).
        """
        import scipy.sparse as sp
        from scipy.optimize import lsq_linear

        nu = len(uniq)
        blocks, bounds, layout = [], [], []
        for j, c in enumerate(self.features_):
            fb = self.bins_[c]
            idx = uniq[:, j][:, None]
            n_reg = fb.n_regular if fb.dtype == "numerical" else 0
            ks = np.arange(1, fb.n_bins)
            # a cumulative column per ordinary step, an indicator per special / missing bin or category
            blocks.append(np.where(ks < n_reg, (idx >= ks) & (idx < n_reg), idx == ks))
            steps = np.where(ks < n_reg, fb.woe[ks] - fb.woe[ks - 1], 0.0)
            # a flat WOE step of a monotone feature follows the feature's trend; free bins: no bound
            flat = {"ascending": 1.0, "descending": -1.0}.get(fb.trend, 0.0)
            steps = np.where((ks < n_reg) & (steps == 0), flat, steps)
            bounds += [(0.0, None) if st > 0 else (None, 0.0) if st < 0 else (None, None) for st in steps]
            layout.append((n_reg, fb.n_bins))
        col = len(bounds)
        w_bad, w_good = n_bad, n_all - n_bad
        total = float(n_all.sum())
        lam = 1.0 / float(self.C)
        lo = np.array([-np.inf] + [b[0] if b[0] is not None else -np.inf for b in bounds])
        hi = np.array([np.inf] + [b[1] if b[1] is not None else np.inf for b in bounds])
        pen = np.r_[0.0, np.full(col, lam)]
        # the intercept is column 0; dense BLAS when the design fits in ~160 MB, sparse otherwise
        ones = np.ones((nu, 1), dtype=bool)
        if nu * (col + 1) <= _DENSE_DESIGN_CELLS:
            A: Any = np.hstack([ones, *blocks]).astype(float)
        else:
            A = sp.hstack([sp.csr_matrix(b) for b in (ones, *blocks)], format="csr", dtype=float)
        del blocks

        def objective(theta: np.ndarray) -> float:
            z = A @ theta
            return float(w_bad @ np.logaddexp(0.0, -z) + w_good @ np.logaddexp(0.0, z) + 0.5 * pen @ theta**2)

        # start from the WOE model's solution, which meets the bounds (its coefficients are positive)
        start = [self.intercept_ + sum(float(self.bin_logit_[c][0]) for c in self.features_)]
        for c, (n_reg, n_bins) in zip(self.features_, layout, strict=True):
            wl = self.bin_logit_[c]
            start += [wl[k] - wl[k - 1] if k < n_reg else wl[k] - wl[0] for k in range(1, n_bins)]
        theta = np.clip(np.asarray(start, dtype=float), lo, hi)
        # projected Newton: each step solves the bounded quadratic model exactly (a small dense
        # bounded least-squares problem, one column per bin), then backtracks on the likelihood
        f = objective(theta)
        for _ in range(100):  # Newton steps: ~5-20 on the credit sets
            z = A @ theta
            p = 0.5 * (1.0 + np.tanh(0.5 * z))  # a sigmoid without overflow
            g = A.T @ (w_good * p - w_bad * (1.0 - p)) + pen * theta
            wh = n_all * p * (1.0 - p)
            H = A.T @ (A * wh[:, None]) if isinstance(A, np.ndarray) else (A.T @ sp.diags(wh) @ A).toarray()
            H += np.diag(pen + 1e-9 * total)
            L = np.linalg.cholesky(H)
            step = lsq_linear(L.T, -np.linalg.solve(L, g), bounds=(lo - theta, hi - theta), method="bvls").x
            t = 1.0
            while t > 1e-6:
                cand = np.clip(theta + t * step, lo, hi)
                fc = objective(cand)
                if fc <= f:
                    break
                t *= 0.5
            if t <= 1e-6 or f - fc <= 1e-10 * max(abs(f), 1.0):
                theta, f = (cand, fc) if fc <= f else (theta, f)
                break
            theta, f = cand, fc
        else:
            logger.warning("CreditScorecard(coding='monotone'): 100 Newton steps without convergence "
                           "(last change %.3g); the fit is the last iterate", f - fc)
        beta = theta[1:]
        parts, at = [], 0
        for n_reg, n_bins in layout:
            b = beta[at:at + n_bins - 1]
            at += n_bins - 1
            contrib = np.zeros(n_bins)
            contrib[1:n_reg] = np.cumsum(b[:max(n_reg - 1, 0)])  # ordinary bins: bin 0 + the steps up to them
            contrib[max(n_reg, 1):] = b[max(n_reg - 1, 0):]
            parts.append(contrib)
        self._set_bin_logit(parts, float(theta[0]), keep_ordinary=True)

    def _set_bin_logit(self, contribs: list[np.ndarray], intercept: float, *, keep_ordinary: bool = False) -> None:
        """Store per-bin log-odds, each feature centred on its training average.

        Bins never seen in training are neutral (0), except, with ``keep_ordinary``, the
        ordinary bins of a numerical feature, which keep their place on the monotone path.
        """
        for c, contrib in zip(self.features_, contribs, strict=True):
            fb = self.bins_[c]
            seen = (fb.event + fb.nonevent) > 0
            mean = float(np.average(contrib[seen], weights=(fb.event + fb.nonevent)[seen]))
            contrib -= mean
            neutral = ~seen
            if keep_ordinary and fb.dtype == "numerical":
                neutral[:fb.n_regular] = False
            contrib[neutral] = 0.0
            intercept += mean
            self.bin_logit_[c] = contrib
        self.intercept_ = intercept

    # ------------------------------------------------------------------ scoring
    def points_of(self, X: Any) -> pd.DataFrame:
        """Points of every model feature per row (score = ``base_points_`` + row sum)."""
        Xc = self._check_X(X)
        return pd.DataFrame({c: self.points_[c][self.bins_[c].bin_index(Xc[c].to_numpy())] for c in self.features_},
                            index=Xc.index)

    def _logit(self, X: pd.DataFrame) -> np.ndarray:
        lg = np.full(len(X), self.intercept_)
        for c in self.features_:
            lg += self.bin_logit_[c][self.bins_[c].bin_index(X[c].to_numpy())]
        return lg

    def contributions(self, X: Any) -> pd.DataFrame:
        """Points lost per feature against its best bin (> 0 = adverse); they sum to max score - score."""
        Xc = self._check_X(X)
        pts = pd.DataFrame({c: self.points_[c][self.bins_[c].bin_index(Xc[c].to_numpy())] for c in self.features_},
                           index=Xc.index)
        return pd.DataFrame({c: self.max_points_[c] - pts[c] for c in self.features_}, index=Xc.index)

    @property
    def max_score_(self) -> float:
        """Highest score reachable (every feature in its best bin seen in training)."""
        check_fitted(self)
        return self.base_points_ + sum(self.max_points_.values())

    def score_record(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """PD, points and grade of one record (a dict) without pandas; the fast path for serving.

        Examples
        --------
        >>> rng = np.random.default_rng(0)
        >>> X = pd.DataFrame({"util": rng.random(2000), "late": rng.integers(0, 4, 2000)})
        >>> y = (rng.random(2000) < 0.05 + 0.2 * X["util"] + 0.05 * X["late"]).astype(int)
        >>> sc = CreditScorecard().fit(X, y)
        >>> r = sc.score_record({"util": 0.5, "late": 1})
        >>> bool(abs(r["score"] - sc.score(pd.DataFrame([{"util": 0.5, "late": 1}]))[0]) < 1e-9)
        True
        """
        vals = self._record_values(record)
        lg = self.intercept_
        for c, v in zip(self.features_, vals, strict=True):
            lg += self.bin_logit_[c][self.bins_[c].bin_index_one(v)]
        return self._record_result(float(lg))

    # ------------------------------------------------------------------ export
    def scorecard_table(self) -> pd.DataFrame:
        """The scorecard: one row per (feature, bin) with counts, WOE, IV, coefficient and points."""
        check_fitted(self)
        parts = [pd.DataFrame([{"feature": BASE_ROW, "bin": -1, "label": "", "count": np.nan, "bads": np.nan,
                                "bad_rate": np.nan, "woe": np.nan, "iv": np.nan, "coefficient": self.intercept_,
                                "logit": self.intercept_, "points": self.base_points_}])]
        for c, b in zip(self.features_, self.coef_, strict=True):
            t = self.bins_[c].table()
            t["coefficient"] = b if self.coding == "woe" else self.bin_logit_[c]
            t["logit"] = self.bin_logit_[c]
            t["points"] = self.points_[c]
            parts.append(t)
        return pd.concat(parts, ignore_index=True)

    def export_table(self, path: str | Path, fmt: str | None = None) -> Path:
        """Write :meth:`scorecard_table` as CSV, Markdown or JSON (by ``fmt`` or the file suffix)."""
        p = Path(path)
        kind = (fmt or p.suffix.lstrip(".")).lower()
        t = self.scorecard_table()
        if kind == "csv":
            t.to_csv(p, index=False)
        elif kind in ("md", "markdown"):
            p.write_text(table_markdown(t), encoding="utf-8")
        elif kind == "json":
            meta = {"base_score": self.base_score, "base_odds": self.base_odds, "pdo": self.pdo,
                    "offset": self.offset_, "factor": self.factor_, "grade_bands": self.grade_bands_}
            rows = json.loads(t.to_json(orient="records"))
            p.write_text(json.dumps({"scaling": meta, "bins": rows}, indent=1), encoding="utf-8")
        else:
            raise ValueError(f"export format must be 'csv', 'md' or 'json'; got {kind!r} (from {p.name}).")
        return p


def table_markdown(t: pd.DataFrame, floatfmt: str = ".4g") -> str:
    """A GitHub Markdown table of a frame (no tabulate dependency)."""
    def cell(v: Any) -> str:
        if isinstance(v, float):
            if np.isnan(v):
                return ""
            if v.is_integer() and abs(v) < 1e15:  # counts: 95799, not 9.58e+04
                return str(int(v))
            return format(v, floatfmt)
        return str(v).replace("|", "\\|").replace("\n", " ")

    head = "| " + " | ".join(map(str, t.columns)) + " |"
    sep = "|" + "|".join("---" for _ in t.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in t.itertuples(index=False)]
    return "\n".join([head, sep, *body]) + "\n"
