"""Metrics for binary risk models: discrimination, calibration, lift and stability.

Conventions: ``y_true`` is 1 for the bad (adverse) outcome, ``y_score`` is a probability of
the bad outcome (or any score that increases with risk, for the rank metrics).  Every
function takes array-likes and returns plain Python floats or a pandas frame.

Examples
--------
>>> y = [0, 0, 1, 1]
>>> p = [0.1, 0.4, 0.35, 0.8]
>>> auc(y, p), ks(y, p), gini(y, p)
(0.75, 0.5, 0.5)
>>> round(brier(y, p), 4)
0.1581
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

__all__ = [
    "auc",
    "brier",
    "expected_calibration_error",
    "gini",
    "ks",
    "lift_table",
    "log_loss",
    "misclassification_cost",
    "psi",
    "summary",
]

_EPS = 1e-15


def _check_binary(y_true: ArrayLike, y_score: ArrayLike, *, need_both: bool = True) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true, dtype=float).ravel()
    p = np.asarray(y_score, dtype=float).ravel()
    if y.shape != p.shape:
        raise ValueError(f"y_true and y_score must have the same length; got {y.shape[0]} and {p.shape[0]}.")
    if y.size == 0:
        raise ValueError("y_true is empty; metrics need at least one labelled row.")
    bad = ~np.isin(y, (0.0, 1.0))
    if bad.any():
        vals = np.unique(y[bad])[:3].tolist()
        raise ValueError(f"y_true must hold only 0 (good) and 1 (bad); found {int(bad.sum())} other value(s), e.g. {vals}.")
    if np.isnan(p).any():
        raise ValueError(f"y_score has {int(np.isnan(p).sum())} NaN value(s) (first at position "
                         f"{int(np.flatnonzero(np.isnan(p))[0])}); score every row before computing metrics.")
    if need_both and (y.min() == y.max()):
        raise ValueError(f"y_true holds only class {int(y[0])}; rank metrics need both goods and bads.")
    return y, p


def auc(y_true: ArrayLike, y_score: ArrayLike) -> float:
    """Area under the ROC curve (ties count one half).

    Examples
    --------
    >>> auc([0, 1, 0, 1], [0.2, 0.9, 0.5, 0.5])
    0.875
    """
    y, p = _check_binary(y_true, y_score)
    # Mann-Whitney U with average ranks: exact handling of ties, O(n log n)
    ranks = pd.Series(p).rank(method="average").to_numpy()
    n1 = y.sum()
    n0 = y.size - n1
    return float((ranks[y == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def ks(y_true: ArrayLike, y_score: ArrayLike) -> float:
    """Kolmogorov-Smirnov statistic: max distance between the score CDFs of bads and goods.

    Examples
    --------
    >>> ks([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4])
    1.0
    """
    y, p = _check_binary(y_true, y_score)
    order = np.argsort(p, kind="mergesort")
    ps, ys = p[order], y[order]
    # evaluate the CDFs only at the end of each run of tied scores
    last = np.r_[ps[1:] != ps[:-1], True]
    cum_bad = np.cumsum(ys)[last] / ys.sum()
    cum_good = np.cumsum(1 - ys)[last] / (1 - ys).sum()
    return float(np.max(np.abs(cum_bad - cum_good)))


def gini(y_true: ArrayLike, y_score: ArrayLike) -> float:
    """Gini coefficient (accuracy ratio) ``2 * AUC - 1``."""
    return 2.0 * auc(y_true, y_score) - 1.0


def brier(y_true: ArrayLike, y_prob: ArrayLike) -> float:
    """Brier score: mean squared error of the probability of the bad outcome (lower is better)."""
    y, p = _check_binary(y_true, y_prob, need_both=False)
    _check_prob(p)
    return float(np.mean((p - y) ** 2))


def log_loss(y_true: ArrayLike, y_prob: ArrayLike) -> float:
    """Mean negative log-likelihood (natural log), probabilities clipped to ``[1e-15, 1 - 1e-15]``.

    Examples
    --------
    >>> round(log_loss([1, 0], [0.5, 0.5]), 6)
    0.693147
    """
    y, p = _check_binary(y_true, y_prob, need_both=False)
    _check_prob(p)
    p = np.clip(p, _EPS, 1 - _EPS)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


def _check_prob(p: np.ndarray) -> None:
    if p.size and (p.min() < 0 or p.max() > 1):
        raise ValueError(f"probabilities must lie in [0, 1]; got values in [{p.min():.4g}, {p.max():.4g}]. "
                         "Pass predict_proba(X)[:, 1], not points or log-odds.")


def expected_calibration_error(y_true: ArrayLike, y_prob: ArrayLike, *, n_bins: int = 10,
                               strategy: Literal["uniform", "quantile"] = "uniform") -> float:
    """Expected calibration error: bin-size-weighted mean of ``|mean(p) - mean(y)|`` over bins.

    Parameters
    ----------
    n_bins : int
        Number of probability bins.
    strategy : {"uniform", "quantile"}
        Equal-width bins on [0, 1] or equal-count bins on the predictions.

    Examples
    --------
    >>> expected_calibration_error([0, 1, 0, 1], [0.0, 1.0, 0.5, 0.5], n_bins=2)
    0.0
    >>> expected_calibration_error([0, 0], [0.2, 0.2])
    0.2
    """
    y, p = _check_binary(y_true, y_prob, need_both=False)
    _check_prob(p)
    if not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise ValueError(f"n_bins must be an int >= 1. Got {n_bins!r} instead.")
    if strategy == "uniform":
        edges = np.linspace(0.0, 1.0, n_bins + 1)
    elif strategy == "quantile":
        edges = np.unique(np.quantile(p, np.linspace(0, 1, n_bins + 1)))
    else:
        raise ValueError(f"strategy must be 'uniform' or 'quantile'. Got {strategy!r} instead.")
    idx = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, len(edges) - 2)
    cnt = np.bincount(idx, minlength=len(edges) - 1)
    sp = np.bincount(idx, weights=p, minlength=len(edges) - 1)
    sy = np.bincount(idx, weights=y, minlength=len(edges) - 1)
    m = cnt > 0
    return float(np.sum(np.abs(sp[m] - sy[m])) / y.size)


def lift_table(y_true: ArrayLike, y_score: ArrayLike, *, n_bins: int = 10) -> pd.DataFrame:
    """Decile lift / gain table, riskiest group first.

    Rows are ``n_bins`` groups of (as near as ties allow) equal size ordered by descending
    ``y_score``.  Columns: ``bin`` (1 = riskiest), ``n``, ``bads``, ``bad_rate``,
    ``min_score``, ``max_score``, ``cum_n``, ``cum_bads``, ``gain`` (share of all bads
    captured so far), ``lift`` (bad rate / overall bad rate) and ``cum_lift``.

    Examples
    --------
    >>> t = lift_table([1, 1, 0, 0, 0, 0, 0, 0, 0, 0], [.9, .8, .7, .6, .5, .4, .3, .2, .1, 0], n_bins=5)
    >>> t[["bin", "bads", "gain", "lift"]].iloc[0].tolist()
    [1.0, 2.0, 1.0, 5.0]
    """
    y, p = _check_binary(y_true, y_score, need_both=False)
    if not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise ValueError(f"n_bins must be an int >= 1. Got {n_bins!r} instead.")
    order = np.argsort(-p, kind="mergesort")
    ps, ys = p[order], y[order]
    # equal-size groups by rank; tied scores go to the group of their first occurrence
    grp = np.minimum((np.arange(y.size) * n_bins) // y.size, n_bins - 1)
    first = pd.Series(grp).groupby(ps).transform("min").to_numpy()
    df = pd.DataFrame({"g": first, "y": ys, "p": ps})
    t = df.groupby("g").agg(n=("y", "size"), bads=("y", "sum"), min_score=("p", "min"), max_score=("p", "max"))
    t = t.reset_index(drop=True)
    t.insert(0, "bin", np.arange(1, len(t) + 1, dtype=float))
    overall = y.mean() if y.size else np.nan
    t["bad_rate"] = t["bads"] / t["n"]
    t["cum_n"] = t["n"].cumsum()
    t["cum_bads"] = t["bads"].cumsum()
    t["gain"] = t["cum_bads"] / max(y.sum(), _EPS)
    t["lift"] = t["bad_rate"] / overall if overall > 0 else np.nan
    t["cum_lift"] = (t["cum_bads"] / t["cum_n"]) / overall if overall > 0 else np.nan
    t["bads"] = t["bads"].astype(float)
    t["cum_bads"] = t["cum_bads"].astype(float)
    return t[["bin", "n", "bads", "bad_rate", "min_score", "max_score", "cum_n", "cum_bads", "gain", "lift",
              "cum_lift"]]


def psi(expected: ArrayLike, actual: ArrayLike, bins: int | ArrayLike = 10, *, eps: float = 1e-4) -> float:
    """Population stability index between a reference (``expected``) and a new (``actual``) sample.

    ``PSI = sum((a_i - e_i) * ln(a_i / e_i))`` over bins, with shares floored at ``eps``.
    An int ``bins`` makes quantile bins of ``expected`` (duplicates merged); an array gives
    the inner cut points.  Missing values form their own bin.  Rule of thumb: < 0.1 stable,
    0.1-0.25 moderate shift, > 0.25 major shift.

    Examples
    --------
    >>> psi([1, 2, 3, 4], [1, 2, 3, 4], bins=2)
    0.0
    >>> round(psi([0, 0, 1, 1], [0, 1, 1, 1], bins=[0.5]), 4)
    0.2747
    """
    e = np.asarray(expected, dtype=float).ravel()
    a = np.asarray(actual, dtype=float).ravel()
    if e.size == 0 or a.size == 0:
        raise ValueError(f"psi needs non-empty samples; got {e.size} expected and {a.size} actual values.")
    if np.isscalar(bins) or np.ndim(bins) == 0:
        nb = int(bins)  # type: ignore[arg-type]
        if nb < 1:
            raise ValueError(f"bins must be an int >= 1 or a sequence of cut points. Got {bins!r} instead.")
        fin = e[~np.isnan(e)]
        cuts = np.unique(np.quantile(fin, np.linspace(0, 1, nb + 1))[1:-1]) if fin.size else np.array([])
    else:
        cuts = np.sort(np.asarray(bins, dtype=float))

    def shares(x: np.ndarray) -> np.ndarray:
        idx = np.where(np.isnan(x), len(cuts) + 1, np.searchsorted(cuts, x, side="right"))
        return np.bincount(idx, minlength=len(cuts) + 2) / x.size

    se, sa = shares(e), shares(a)
    keep = (se > 0) | (sa > 0)
    se, sa = np.maximum(se[keep], eps), np.maximum(sa[keep], eps)
    return float(np.sum((sa - se) * np.log(sa / se)))


def misclassification_cost(y_true: ArrayLike, y_pred: ArrayLike, *, fn_cost: float = 5.0,
                           fp_cost: float = 1.0) -> float:
    """Average cost per applicant of hard decisions (``y_pred`` 1 = reject as bad).

    The StatLog German credit convention is the default: accepting a bad applicant (false
    negative) costs 5, rejecting a good one (false positive) costs 1.  With calibrated
    probabilities the cost-minimising rule is ``p > fp_cost / (fp_cost + fn_cost)`` (1/6).

    Examples
    --------
    >>> misclassification_cost([1, 0, 0, 1], [0, 1, 0, 1])
    1.5
    """
    y, d = _check_binary(y_true, y_pred, need_both=False)
    if not np.isin(d, (0.0, 1.0)).all():
        raise ValueError("y_pred must hold hard 0/1 decisions; threshold probabilities first "
                         "(for StatLog costs: p > 1/6).")
    fn = np.sum((y == 1) & (d == 0))
    fp = np.sum((y == 0) & (d == 1))
    return float((fn_cost * fn + fp_cost * fp) / y.size)


def summary(y_true: ArrayLike, y_prob: ArrayLike) -> dict[str, Any]:
    """All scalar metrics of a probability of default in one dict (AUC, KS, Gini, Brier, log loss, ECE)."""
    return {
        "auc": auc(y_true, y_prob),
        "ks": ks(y_true, y_prob),
        "gini": gini(y_true, y_prob),
        "brier": brier(y_true, y_prob),
        "log_loss": log_loss(y_true, y_prob),
        "ece": expected_calibration_error(y_true, y_prob),
        "n": int(np.asarray(y_true).size),
        "bad_rate": float(np.mean(np.asarray(y_true, dtype=float))),
    }
