"""ECOD and COPOD row scores in one compiled pass (numba), without per-cell temporaries.

Same arithmetic as :meth:`buyerscore.models.anomaly.detector._Marginals.outlyingness` summed over the
features in their order: for each cell the left/right empirical tail probabilities from the feature's
quantile sketch (exponential tails outside it, floored at 1e-300), ``u = -log(p)``, the skew-chosen tail
``u_skew``, then ECOD ``max(u_l, u_r, u_skew)`` and COPOD ``max(u_skew, (u_l + u_r) / 2)``.  On the
sketch ``u`` is read from a table of ``-log`` values that numpy computed, so those cells give the numpy
path's numbers exactly; beyond the sketch's range the tail is computed with libm's ``exp``/``log``
(which may differ from numpy's in the last bit).  The detector uses this path for fitting as for
scoring, so its calibration and threshold see the same numbers.
"""

# ruff: noqa: FURB136, PLR1730  (explicit comparisons in the kernel: numba compiles them to plain selects)
from __future__ import annotations

import math

import numpy as np

from buyerscore.models import trees


def available() -> bool:
    """The compiled path is on (numba present, ``BUYERSCORE_COMPILED_TREES`` not 0)."""
    return trees.enabled()


def row_scores(XT: np.ndarray, grid: np.ndarray, nl_le: np.ndarray, nl_ge: np.ndarray, offsets: np.ndarray,
               scales: np.ndarray, skew_sign: np.ndarray, n_train: int) -> tuple[np.ndarray, np.ndarray]:
    """ECOD and COPOD scores of each column of ``XT`` (features x rows).  The sketches of all features
    are concatenated in ``grid`` (feature ``j`` at ``offsets[j]:offsets[j + 1]``) with ``-log`` of
    their tail probabilities (``nl_le = -log P(X <= grid value)``, ``nl_ge = -log P(X >= grid value)``,
    taken by numpy, so cells on the sketch get the numpy path's numbers exactly)."""
    m = XT.shape[1]
    ecod = np.zeros(m)
    copod = np.zeros(m)
    a = -np.sign(skew_sign - 1.0)
    b = np.sign(skew_sign + 1.0)
    trees.jit(_tails_kernel)(np.ascontiguousarray(XT, dtype=np.float64), grid, nl_le, nl_ge, offsets, scales, a, b,
                             1.0 / (n_train + 1), ecod, copod)
    return ecod, copod


def _tails_kernel(XT, grid, nl_le, nl_ge, offsets, scales, a, b, floor, ecod, copod):  # type: ignore[no-untyped-def]  # pragma: no cover - compiled
    d, m = XT.shape
    for j in range(d):
        lo = offsets[j]
        hi = offsets[j + 1]
        size = hi - lo
        u_first = grid[lo]
        u_last = grid[hi - 1]
        sc = scales[j]
        aj = a[j]
        bj = b[j]
        for r in range(m):
            x = XT[j, r]
            if x != x:  # noqa: PLR0124 - NaN sorts last in numpy's searchsorted
                i = size - 1
            else:  # i = searchsorted(u, x, "right") - 1: the last grid value <= x
                left_i = lo
                right_i = hi
                while left_i < right_i:
                    mid = (left_i + right_i) >> 1
                    if grid[mid] <= x:
                        left_i = mid + 1
                    else:
                        right_i = mid
                i = left_i - 1 - lo
            # on the sketch: -log of the tail read from the table; beyond it: the exponential tail
            if i < 0:
                p_left = floor * math.exp(-(u_first - x) / sc)
                if p_left < 1e-300:
                    p_left = 1e-300
                ul = -math.log(p_left)
                k = 0
            else:
                ul = nl_le[lo + i]
                k = i + (1 if grid[lo + i] != x else 0)
            if k >= size:
                p_right = floor * math.exp(-(x - u_last) / sc)
                if p_right < 1e-300:
                    p_right = 1e-300
                ur = -math.log(p_right)
            else:
                ur = nl_ge[lo + k]
            us = ul * aj + ur * bj
            e = ul if ul >= ur else ur
            ecod[r] += e if e >= us else us
            half = (ul + ur) / 2
            copod[r] += us if us >= half else half
