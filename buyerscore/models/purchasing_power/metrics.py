"""Metrics for future-spend forecasts: ranking (normalised Gini, Spearman, top-decile capture),
error (MAE, RMSLE), decile calibration and tier macro-F1.

The normalised Gini and top-decile capture follow the protocol of the purchasing-power benchmark
(``benchmarks/power.py``): customers are ordered by the prediction, highest first, ties kept in input
order (a stable sort), and the Gini of that ordering is divided by the Gini of the perfect ordering.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from sklearn.metrics import f1_score

__all__ = [
    "decile_calibration",
    "decile_calibration_error",
    "mae",
    "normalized_gini",
    "rmsle",
    "spearman",
    "spend_report",
    "tier_macro_f1",
    "top_decile_capture",
]


def _arrays(y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(y_true, dtype=float).ravel()
    p = np.asarray(y_pred, dtype=float).ravel()
    if a.shape != p.shape:
        raise ValueError(f"y_true and y_pred must have the same length; got {a.size} and {p.size}.")
    if a.size == 0:
        raise ValueError("y_true is empty; metrics need at least one customer.")
    if np.isnan(p).any():
        raise ValueError(f"y_pred has {int(np.isnan(p).sum())} NaN value(s); fill or drop them before scoring.")
    return a, p


def _gini(a: np.ndarray, p: np.ndarray) -> float:
    order = np.argsort(-p, kind="stable")
    s = a[order]
    n = s.size
    total = s.sum()
    if total == 0:
        return float("nan")
    cum = np.cumsum(s) / total
    return float(cum.sum() / n - (n + 1) / (2 * n))


def normalized_gini(y_true: Any, y_pred: Any) -> float:
    """Gini of the ordering by ``y_pred`` divided by the Gini of the perfect ordering.

    1 is a perfect ranking, 0 a random one; NaN when ``y_true`` sums to zero.

    Examples
    --------
    >>> normalized_gini([0, 0, 5, 10], [0.1, 0.2, 0.3, 0.9])
    1.0
    >>> round(normalized_gini([0, 0, 5, 10], [0.9, 0.3, 0.2, 0.1]), 4)
    -1.0
    """
    a, p = _arrays(y_true, y_pred)
    return _gini(a, p) / _gini(a, a)


def top_decile_capture(y_true: Any, y_pred: Any, *, share: float = 0.1) -> float:
    """Share of the total of ``y_true`` held by the ``share`` (10 %) of rows with the highest prediction.

    Examples
    --------
    >>> top_decile_capture([0] * 9 + [10], list(range(10)))
    1.0
    """
    a, p = _arrays(y_true, y_pred)
    k = max(1, int(len(a) * share))
    total = a.sum()
    if total == 0:
        return float("nan")
    return float(a[np.argsort(-p, kind="stable")[:k]].sum() / total)


def spearman(y_true: Any, y_pred: Any) -> float:
    """Spearman rank correlation (NaN when either side is constant)."""
    a, p = _arrays(y_true, y_pred)
    if np.all(p == p[0]) or np.all(a == a[0]):
        return float("nan")
    return float(spearmanr(a, p)[0])


def mae(y_true: Any, y_pred: Any) -> float:
    """Mean absolute error."""
    a, p = _arrays(y_true, y_pred)
    return float(np.mean(np.abs(a - p)))


def rmsle(y_true: Any, y_pred: Any) -> float:
    """Root mean squared error of ``log1p`` values; negative values are clipped at 0 first."""
    a, p = _arrays(y_true, y_pred)
    return float(np.sqrt(np.mean((np.log1p(np.clip(a, 0, None)) - np.log1p(np.clip(p, 0, None))) ** 2)))


def decile_calibration(y_true: Any, y_pred: Any, *, n_bins: int = 10) -> pd.DataFrame:
    """Mean prediction and mean actual per decile of the prediction (decile 1 = highest predictions).

    Returns
    -------
    DataFrame
        Columns ``decile``, ``n``, ``mean_pred``, ``mean_actual``, ``ratio`` (actual / predicted).
    """
    a, p = _arrays(y_true, y_pred)
    order = np.argsort(-p, kind="stable")
    bins = np.empty(a.size, dtype=int)
    bins[order] = np.arange(a.size) * n_bins // a.size + 1
    df = pd.DataFrame({"decile": bins, "pred": p, "actual": a})
    g = df.groupby("decile").agg(n=("pred", "size"), mean_pred=("pred", "mean"), mean_actual=("actual", "mean"))
    g["ratio"] = g["mean_actual"] / g["mean_pred"].where(g["mean_pred"] != 0)
    return g.reset_index()


def decile_calibration_error(y_true: Any, y_pred: Any, *, n_bins: int = 10) -> float:
    """Size-weighted mean absolute gap between mean prediction and mean actual per decile, divided
    by the overall mean actual (0 = perfectly calibrated per decile; lower is better).

    Examples
    --------
    >>> decile_calibration_error([1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0], n_bins=2)
    0.0
    """
    a, _ = _arrays(y_true, y_pred)
    t = decile_calibration(y_true, y_pred, n_bins=n_bins)
    denom = float(np.mean(a))
    if denom == 0:
        return float("nan")
    return float((t["n"] * (t["mean_pred"] - t["mean_actual"]).abs()).sum() / t["n"].sum() / denom)


def tier_macro_f1(y_true_tier: Any, y_pred_tier: Any) -> float:
    """Macro-averaged F1 of tier labels (e.g. ``high``/``mid``/``low``)."""
    return float(f1_score(np.asarray(y_true_tier).astype(str), np.asarray(y_pred_tier).astype(str),
                          average="macro", zero_division=0))


def quantile_tiers(values: Any, *, quantiles: tuple[float, float] = (0.5, 0.9),
                   reference: Any = None) -> np.ndarray:
    """Label values ``low``/``mid``/``high`` with cut points at the ``quantiles`` of ``reference``
    (default: of ``values`` themselves).  Ties at a cut point go to the lower tier."""
    v = np.asarray(values, dtype=float)
    ref = v if reference is None else np.asarray(reference, dtype=float)
    lo, hi = np.quantile(ref, quantiles)
    return np.where(v > hi, "high", np.where(v > lo, "mid", "low"))


def spend_report(y_true: Any, y_pred: Any, *, tier_quantiles: tuple[float, float] = (0.5, 0.9),
                 y_pred_tier: Any = None) -> dict[str, float]:
    """All spend metrics at once, as a JSON-ready dict.

    Tiers for the macro-F1 are the quantiles ``tier_quantiles`` of the actual spend (true tiers) and of
    the prediction (predicted tiers), unless ``y_pred_tier`` gives the predicted tiers.
    """
    a, p = _arrays(y_true, y_pred)
    true_t = quantile_tiers(a, quantiles=tier_quantiles)
    pred_t = quantile_tiers(p, quantiles=tier_quantiles) if y_pred_tier is None else np.asarray(y_pred_tier)
    out = {
        "ngini": normalized_gini(a, p),
        "spearman": spearman(a, p),
        "top_decile": top_decile_capture(a, p),
        "mae": mae(a, p),
        "rmsle": rmsle(a, p),
        "decile_cal_error": decile_calibration_error(a, p),
        "tier_macro_f1": tier_macro_f1(true_t, pred_t),
    }
    return {k: (round(v, 4) if not math.isnan(v) else float("nan")) for k, v in out.items()}
