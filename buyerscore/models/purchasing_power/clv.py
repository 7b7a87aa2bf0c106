"""``ProbabilisticCLV``: BG/NBD purchase counts (Fader, Hardie & Lee 2005) times Gamma-Gamma spend per
order (Fader & Hardie 2013), fit by maximum likelihood.

Both likelihoods are fit with L-BFGS-B on log-parameters with analytic gradients.  Times (and
amounts) are rescaled internally so that the optimiser sees numbers near 1, the fit starts from
moment-based values plus a few fixed restarts, and the best converged optimum is kept.  If no
start converges, the best point found is kept, ``converged_`` is False and a warning is logged —
the fit never raises on a hard data set (lifetimes' most reported failure).

The inputs are the usual RFM summary in one time unit (days, weeks ...):

* ``frequency`` – number of *repeat* purchase periods (purchase days minus one),
* ``recency`` – age of the customer at the last purchase (time from first to last purchase),
* ``T`` – age of the customer at the cut-off (time from first purchase to the cut-off),
* ``monetary_value`` – mean value of the repeat purchases (needed for the Gamma-Gamma part only).

:func:`buyerscore.models.purchasing_power.inputs.rfm_summary` builds it from the event store as of a
cut-off.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import betaln, digamma, gammaln, hyp2f1
from sklearn.base import BaseEstimator, RegressorMixin

from buyerscore._validation import check_param
from buyerscore.exceptions import ModelInputError
from buyerscore.models.purchasing_power._base import ensure_fitted

logger = logging.getLogger(__name__)

__all__ = ["ProbabilisticCLV", "bgnbd_loglik", "gamma_gamma_loglik", "rfm_problems"]

_BOUND = 12.0  # log-parameters stay in [-12, 12]
_SUBSAMPLE = 50_000  # restarts run on this many rows first when there are more


# ------------------------------------------------------------------------------------------------
# BG/NBD
# ------------------------------------------------------------------------------------------------
def _bgnbd_terms(params: np.ndarray, x: np.ndarray, tx: np.ndarray, T: np.ndarray,
                 grad: bool) -> tuple[np.ndarray, np.ndarray | None]:
    r, alpha, a, b = params
    has = x > 0
    a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    a2 = betaln(a, b + x) - betaln(a, b)  # = lgamma(a+b)+lgamma(b+x)-lgamma(b)-lgamma(a+b+x)
    a3 = -(r + x) * np.log(alpha + T)
    xm1 = np.where(has, b + x - 1, 1.0)
    a4 = np.where(has, np.log(a) - np.log(xm1) - (r + x) * np.log(alpha + tx), -np.inf)
    m = np.maximum(a3, a4)
    lse = m + np.log(np.exp(a3 - m) + np.exp(a4 - m))
    ll = a1 + a2 + lse
    if not grad:
        return ll, None
    w = np.exp(a4 - lse)  # weight of the "dropped out after last purchase" term (0 when x == 0)
    d_r = digamma(r + x) - digamma(r) + np.log(alpha) - (1 - w) * np.log(alpha + T) - w * np.log(alpha + tx)
    d_alpha = r / alpha - (1 - w) * (r + x) / (alpha + T) - w * (r + x) / (alpha + tx)
    dab = digamma(a + b) - digamma(a + b + x)
    d_a = dab + w / a
    d_b = dab + digamma(b + x) - digamma(b) - w / xm1
    g = np.stack([d_r * r, d_alpha * alpha, d_a * a, d_b * b])  # chain rule to log-parameters
    return ll, g


def bgnbd_loglik(params: dict[str, float] | tuple[float, float, float, float], frequency: Any, recency: Any,
                 T: Any) -> np.ndarray:
    """Per-customer BG/NBD log-likelihood at ``params`` = (r, alpha, a, b).

    Examples
    --------
    >>> # x = 0: r * (log(alpha) - log(alpha + T))
    >>> float(bgnbd_loglik((0.243, 4.414, 0.793, 2.426), [0], [0.0], [38.86])[0])  # doctest: +ELLIPSIS
    -0.55...
    """
    p = np.array([params[k] for k in ("r", "alpha", "a", "b")] if isinstance(params, dict) else params, float)
    x, tx, TT = (np.asarray(v, dtype=float) for v in (frequency, recency, T))
    return _bgnbd_terms(p, x, tx, TT, grad=False)[0]


# ------------------------------------------------------------------------------------------------
# Gamma-Gamma
# ------------------------------------------------------------------------------------------------
def _gg_terms(params: np.ndarray, x: np.ndarray, m: np.ndarray,
              grad: bool) -> tuple[np.ndarray, np.ndarray | None]:
    p, q, v = params
    px = p * x
    s = x * m + v
    ll = (gammaln(px + q) - gammaln(px) - gammaln(q) + q * np.log(v) + (px - 1) * np.log(m)
          + px * np.log(x) - (px + q) * np.log(s))
    if not grad:
        return ll, None
    d_p = x * (digamma(px + q) - digamma(px) + np.log(m) + np.log(x) - np.log(s))
    d_q = digamma(px + q) - digamma(q) + np.log(v) - np.log(s)
    d_v = q / v - (px + q) / s
    return ll, np.stack([d_p * p, d_q * q, d_v * v])


def gamma_gamma_loglik(params: dict[str, float] | tuple[float, float, float], frequency: Any,
                       monetary_value: Any) -> np.ndarray:
    """Per-customer Gamma-Gamma log-likelihood at ``params`` = (p, q, v) (customers with frequency > 0)."""
    p = np.array([params[k] for k in ("p", "q", "v")] if isinstance(params, dict) else params, float)
    return _gg_terms(p, np.asarray(frequency, float), np.asarray(monetary_value, float), grad=False)[0]


def rfm_problems(frequency: Any, recency: Any, T: Any) -> np.ndarray:
    """Rows whose RFM summary the models cannot use: a missing or infinite value, ``frequency < 0``,
    ``recency`` outside ``[0, T]``, or ``recency == 0`` with repeat purchases (True = unusable).

    Examples
    --------
    >>> rfm_problems([0, 2, np.nan, 1], [0.0, 10.0, 5.0, 30.0], [20.0, 20.0, 20.0, 20.0]).tolist()
    [False, False, True, True]
    """
    x, tx, TT = (np.asarray(v, dtype=float) for v in (frequency, recency, T))
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(x) | ~np.isfinite(tx) | ~np.isfinite(TT) | (x < 0) | (tx < 0) | (tx > TT + 1e-9)
        bad |= (x > 0) & (tx <= 0)
    return np.asarray(bad, dtype=bool)


# ------------------------------------------------------------------------------------------------
# the optimiser
# ------------------------------------------------------------------------------------------------
def _fit_mle(terms: Any, data: tuple[np.ndarray, ...], weights: np.ndarray, starts: list[np.ndarray],
             penalizer: float, max_iter: int, tol: float) -> tuple[np.ndarray, float, bool, int]:
    """Minimise the weighted negative mean log-likelihood from each start; return the best optimum."""
    wsum = weights.sum()

    def f(theta: np.ndarray) -> tuple[float, np.ndarray]:
        ll, g = terms(np.exp(theta), *data, grad=True)
        val = -(weights @ ll) / wsum + penalizer * float(np.exp(theta) @ np.exp(theta))
        grd = -(g @ weights) / wsum + penalizer * 2 * np.exp(2 * theta)
        if not np.isfinite(val) or not np.all(np.isfinite(grd)):
            return 1e10, np.zeros_like(theta)
        return float(val), grd

    n = len(weights)
    if n > _SUBSAMPLE and len(starts) > 1:
        # large data: find the basin with every start on a subsample, then polish the best on all rows
        idx = np.random.default_rng(0).choice(n, _SUBSAMPLE, replace=False)
        sub = _fit_mle(terms, tuple(d[idx] for d in data), weights[idx], starts, penalizer, max_iter, tol)
        res = _fit_mle(terms, data, weights, [sub[0]], penalizer, max_iter, tol)
        if res[2]:
            return res[0], res[1], res[2], sub[3]
        starts = [sub[0], *starts]  # the polish failed: fall back to every start on all rows

    best: tuple[np.ndarray, float, bool, int] | None = None
    bounds = [(-_BOUND, _BOUND)] * len(starts[0])
    for i, s in enumerate(starts):
        try:
            res = minimize(f, np.clip(s, -_BOUND + 1, _BOUND - 1), jac=True, method="L-BFGS-B", bounds=bounds,
                           options={"maxiter": max_iter, "ftol": tol, "gtol": 1e-7})
        except (FloatingPointError, ValueError) as exc:  # pragma: no cover - defensive
            logger.debug("start %d failed: %s", i, exc)
            continue
        ok = bool(res.success) and np.isfinite(res.fun) and res.fun < 1e9
        if not ok:
            # polish with a derivative-free method from the point reached
            res2 = minimize(lambda t: f(t)[0], res.x, method="Nelder-Mead",
                            options={"maxiter": 4000, "xatol": 1e-8, "fatol": 1e-12})
            if res2.fun <= res.fun:
                res = res2
                ok = bool(res2.success) and res2.fun < 1e9
        cand = (np.asarray(res.x), float(res.fun), ok, i)
        if best is None or (cand[2], -cand[1]) > (best[2], -best[1]):
            best = cand
    assert best is not None
    return best


class ProbabilisticCLV(RegressorMixin, BaseEstimator):
    """BG/NBD × Gamma-Gamma expected spend, the transparent CLV baseline.

    Parameters
    ----------
    horizon : float
        Length of the forecast window, in the time unit of ``recency``/``T`` (e.g. days).
        ``predict`` returns the expected spend over that window.
    penalizer : float
        L2 penalty on the parameters (0 = plain maximum likelihood, as in the published fits).
    n_restarts : int
        Extra fixed starting points tried besides the moment-based one.
    fit_monetary : bool
        Fit the Gamma-Gamma spend model (needs ``monetary_value``); otherwise ``predict`` returns
        expected purchase counts.
    max_iter : int
        Iterations per start.
    tol : float
        Relative tolerance of the objective.
    min_monetary : float
        ``monetary_value`` is clipped below at this value for customers with repeat purchases
        (the Gamma-Gamma likelihood needs positive amounts).

    Attributes
    ----------
    params_ : dict
        ``r, alpha, a, b`` of BG/NBD (``alpha`` in the input time unit).
    gg_params_ : dict or None
        ``p, q, v`` of Gamma-Gamma (``v`` in the input money unit).
    converged_ : bool
        Whether the chosen optimum of every part converged.
    loglik_ : float
        Total BG/NBD log-likelihood at ``params_``.

    Examples
    --------
    >>> X = pd.DataFrame({"frequency": [0, 2, 5, 1], "recency": [0.0, 20.0, 30.0, 5.0],
    ...                   "T": [40.0, 35.0, 38.0, 30.0], "monetary_value": [0.0, 20.0, 35.0, 15.0]})
    >>> m = ProbabilisticCLV(horizon=30).fit(X)
    >>> bool((m.predict(X) >= 0).all())
    True
    """

    def __init__(self, *, horizon: float = 30.0, penalizer: float = 0.0, n_restarts: int = 4,
                 fit_monetary: bool = True, max_iter: int = 500, tol: float = 1e-12,
                 min_monetary: float = 0.01) -> None:
        self.horizon = horizon
        self.penalizer = penalizer
        self.n_restarts = n_restarts
        self.fit_monetary = fit_monetary
        self.max_iter = max_iter
        self.tol = tol
        self.min_monetary = min_monetary

    # -- input ---------------------------------------------------------------------------------
    def _rfm(self, X: Any, need_m: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
        if not isinstance(X, pd.DataFrame):
            arr = np.asarray(X, dtype=float)
            cols = ["frequency", "recency", "T", "monetary_value"][: arr.shape[1]]
            X = pd.DataFrame(arr, columns=cols)
        need = ["frequency", "recency", "T"] + (["monetary_value"] if need_m else [])
        missing = [c for c in need if c not in X.columns]
        if missing:
            raise ModelInputError(f"ProbabilisticCLV needs column(s) {missing}; got {list(X.columns)[:10]}. "
                                  "Build them with buyerscore.models.purchasing_power.rfm_summary(con, as_of=...).")
        x = X["frequency"].to_numpy(dtype=float)
        tx = X["recency"].to_numpy(dtype=float)
        T = X["T"].to_numpy(dtype=float)
        bad = rfm_problems(x, tx, T)
        if bad.any():
            idx = np.flatnonzero(bad)[:3]
            raise ModelInputError(
                f"{int(bad.sum())} row(s) have an impossible RFM summary (need frequency >= 0, 0 <= recency <= T, "
                f"recency > 0 when frequency > 0), e.g. rows {idx.tolist()}: "
                f"{[(float(x[i]), float(tx[i]), float(T[i])) for i in idx]}. Rebuild the summary with rfm_summary().")
        m = X["monetary_value"].to_numpy(dtype=float) if "monetary_value" in X.columns else None
        return x, tx, T, m

    # -- fitting -------------------------------------------------------------------------------
    def fit(self, X: pd.DataFrame, y: Any = None, sample_weight: Any = None) -> ProbabilisticCLV:
        """Fit BG/NBD (and Gamma-Gamma) on an RFM summary; ``y`` is ignored."""
        check_param(self, "horizon", self.horizon, lambda v: float(v) > 0, "a float > 0")
        check_param(self, "penalizer", self.penalizer, lambda v: float(v) >= 0, "a float >= 0")
        check_param(self, "n_restarts", self.n_restarts, lambda v: int(v) == v and v >= 0, "an int >= 0")
        check_param(self, "max_iter", self.max_iter, lambda v: int(v) == v and v > 0, "an int > 0")
        x, tx, T, m = self._rfm(X, need_m=self.fit_monetary)
        if len(x) < 2:
            raise ModelInputError(f"ProbabilisticCLV needs at least 2 customers; got {len(x)}.")
        if not np.any(T > 0):
            # T = 0 for everyone: the likelihood is flat (nothing was observed), so any start "converges"
            raise ModelInputError(
                f"All {len(x)} customers have T = 0 (their first purchase is at the cut-off): no time after a first "
                "purchase is observed, so purchase rates and drop-out cannot be estimated. Move the cut-off later, "
                "or check that recency and T are in the time unit of the horizon (rfm_summary gives days).")
        if not np.any(x > 0):
            logger.warning("BG/NBD: none of the %d customers has a repeat purchase (frequency is 0 for all): the "
                           "drop-out parameters a and b are not identified (left near their start) and every "
                           "forecast is close to 0. Fit on a longer history for a usable model.", len(x))
        w = np.ones(len(x)) if sample_weight is None else np.asarray(sample_weight, dtype=float)

        # compress identical rows (common with daily or weekly data): same likelihood, far fewer terms
        key = pd.DataFrame({"x": x, "tx": tx, "T": T, "w": w})
        g = key.groupby(["x", "tx", "T"], sort=False, as_index=False)["w"].sum()
        xu, txu, Tu, wu = (g[c].to_numpy(dtype=float) for c in ("x", "tx", "T", "w"))
        scale = float(np.mean(Tu)) or 1.0
        txs, Ts = txu / scale, Tu / scale
        rate = float(np.average(xu / np.maximum(Ts, 1e-9), weights=wu)) or 1.0
        starts = [np.log([1.0, 1.0 / rate, 1.0, 2.0])]
        fixed = [(0.25, 0.25, 0.8, 2.5), (0.5, 1.0, 0.5, 5.0), (2.0, 4.0, 2.0, 1.0), (0.1, 0.1, 1.5, 10.0),
                 (1.0, 10.0, 0.3, 0.7), (5.0, 5.0, 5.0, 5.0)]
        starts += [np.log(np.array(s) * np.array([1, 1.0 / rate, 1, 1])) for s in fixed[: int(self.n_restarts)]]
        theta, fun, ok, i = _fit_mle(_bgnbd_terms, (xu, txs, Ts), wu, starts, float(self.penalizer),
                                     int(self.max_iter), float(self.tol))
        r, alpha_s, a, b = np.exp(theta)
        self.params_ = {"r": float(r), "alpha": float(alpha_s * scale), "a": float(a), "b": float(b)}
        self.loglik_ = float(np.sum(w * bgnbd_loglik(self.params_, x, tx, T)))
        self.converged_ = ok
        self.n_starts_ = len(starts)
        self.time_scale_ = scale
        if not ok:
            logger.warning("BG/NBD: no start converged; keeping the best point (mean loglik %.6g).", -fun)
        logger.info("BG/NBD fit from start %d: %s", i, self.params_)

        self.gg_params_: dict[str, float] | None = None
        if self.fit_monetary:
            assert m is not None
            rep = (x > 0) & np.isfinite(m)
            if rep.sum() < 2:
                raise ModelInputError(
                    f"The Gamma-Gamma part needs at least 2 customers with repeat purchases; got {int(rep.sum())}. "
                    "Use fit_monetary=False or more history.")
            xr, mr, wr = x[rep], np.maximum(m[rep], self.min_monetary), w[rep]
            mscale = float(np.average(mr, weights=wr))
            ms = mr / mscale
            mean, var = float(np.average(ms, weights=wr)), float(np.average((ms - np.average(ms, weights=wr)) ** 2,
                                                                            weights=wr))
            p0 = max(mean**2 / max(var, 1e-6), 0.5)
            gstarts = [np.log([p0, 3.0, max(2.0 * mean / p0, 1e-3)])]
            gfixed = [(6.0, 4.0, 15.0 / mscale * 1.0), (1.0, 1.0, 1.0), (2.0, 10.0, 10.0), (10.0, 2.0, 0.2)]
            gstarts += [np.log(np.maximum(s, 1e-3)) for s in gfixed[: int(self.n_restarts)]]
            gtheta, _gfun, gok, _ = _fit_mle(_gg_terms, (xr, ms), wr, gstarts, float(self.penalizer),
                                            int(self.max_iter), float(self.tol))
            p, q, v = np.exp(gtheta)
            self.gg_params_ = {"p": float(p), "q": float(q), "v": float(v * mscale)}
            self.gg_loglik_ = float(np.sum(wr * gamma_gamma_loglik(self.gg_params_, xr, mr)))
            self.converged_ = self.converged_ and gok
            if not gok:
                logger.warning("Gamma-Gamma: no start converged; keeping the best point.")
            if q <= 1:
                logger.warning("Gamma-Gamma q=%.3g <= 1: the population mean spend is infinite; predictions use "
                               "the customer's own mean.", q)
        self.n_features_in_ = X.shape[1] if hasattr(X, "shape") else 4
        return self

    # -- predictions ---------------------------------------------------------------------------
    def expected_purchases(self, X: pd.DataFrame, t: float | None = None) -> np.ndarray:
        """Expected number of purchases in the next ``t`` time units (default ``horizon``)."""
        ensure_fitted(self, "params_")
        x, tx, T, _ = self._rfm(X, need_m=False)
        t = float(self.horizon if t is None else t)
        r, alpha, a, b = (self.params_[k] for k in ("r", "alpha", "a", "b"))
        z = t / (alpha + T + t)
        hyp = hyp2f1(r + x, b + x, a + b + x - 1, z)
        first = (a + b + x - 1) / (a - 1) if abs(a - 1) > 1e-9 else np.full_like(x, np.nan)
        num = first * (1 - ((alpha + T) / (alpha + T + t)) ** (r + x) * hyp)
        den = 1 + (x > 0) * (a / np.maximum(b + x - 1, 1e-12)) * ((alpha + T) / (alpha + tx)) ** (r + x)
        out = num / den
        bad = ~np.isfinite(out) | (out < 0)
        if bad.any():  # hyp2f1 can overflow far from the data; fall back to P(alive) * individual rate
            lam = (r + x) / (alpha + T)
            out = np.where(bad, self.p_alive(X) * lam * t, out)
        return np.clip(out, 0, None)

    def p_alive(self, X: pd.DataFrame) -> np.ndarray:
        """Probability that each customer is still active at the cut-off."""
        ensure_fitted(self, "params_")
        x, tx, T, _ = self._rfm(X, need_m=False)
        r, alpha, a, b = (self.params_[k] for k in ("r", "alpha", "a", "b"))
        log_ratio = (r + x) * (np.log(alpha + T) - np.log(alpha + tx))
        odds = np.where(x > 0, np.exp(np.clip(np.log(a) - np.log(np.maximum(b + x - 1, 1e-12)) + log_ratio,
                                              -700, 700)), 0.0)
        return 1.0 / (1.0 + odds)

    def expected_average_value(self, X: pd.DataFrame) -> np.ndarray:
        """Gamma-Gamma conditional mean value per purchase (population mean for customers without repeats)."""
        ensure_fitted(self, "params_")
        if self.gg_params_ is None:
            raise ModelInputError("This ProbabilisticCLV was fit with fit_monetary=False; it has no spend model.")
        x, _, _, m = self._rfm(X, need_m=True)
        assert m is not None
        p, q, v = (self.gg_params_[k] for k in ("p", "q", "v"))
        m = np.where(x > 0, np.maximum(np.nan_to_num(m, nan=0.0), self.min_monetary), 0.0)
        if q <= 1:
            return np.where(x > 0, m, float(np.average(m[x > 0])) if (x > 0).any() else 0.0)
        pop = p * v / (q - 1)
        wgt = (q - 1) / (p * x + q - 1)
        return wgt * pop + (1 - wgt) * m

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Expected spend over ``horizon`` (expected purchases if ``fit_monetary=False``)."""
        n = self.expected_purchases(X)
        if not self.fit_monetary:
            return n
        return n * self.expected_average_value(X)

    def log_likelihood(self, X: pd.DataFrame) -> np.ndarray:
        """Per-customer BG/NBD log-likelihood at the fitted parameters."""
        ensure_fitted(self, "params_")
        x, tx, T, _ = self._rfm(X, need_m=False)
        return bgnbd_loglik(self.params_, x, tx, T)


def simulate_bgnbd(n: int, *, r: float = 0.25, alpha: float = 4.0, a: float = 0.8, b: float = 2.5,
                   T: float | np.ndarray = 39.0, p: float = 6.0, q: float = 4.0, v: float = 15.0,
                   random_state: int | None = 0) -> pd.DataFrame:
    """Draw ``n`` customers from the BG/NBD × Gamma-Gamma generative model (for tests and benchmarks).

    Returns an RFM summary (``frequency, recency, T, monetary_value``) observed over ``(0, T]``.

    Examples
    --------
    >>> simulate_bgnbd(3, random_state=1).columns.tolist()
    ['frequency', 'recency', 'T', 'monetary_value']
    """
    rng = np.random.default_rng(random_state)
    TT = np.broadcast_to(np.asarray(T, dtype=float), (n,)).copy()
    lam = rng.gamma(r, 1.0 / alpha, n)
    pdrop = rng.beta(a, b, n)
    x = np.zeros(n)
    tx = np.zeros(n)
    t = np.zeros(n)
    alive = np.ones(n, bool)
    while alive.any():  # vectorised over customers: next purchase, then maybe drop out
        idx = np.flatnonzero(alive)
        t_next = t[idx] + rng.exponential(1.0 / np.maximum(lam[idx], 1e-12))
        inside = t_next <= TT[idx]
        done = idx[~inside]
        alive[done] = False
        go = idx[inside]
        t[go] = t_next[inside]
        x[go] += 1
        tx[go] = t[go]
        drop = rng.random(go.size) < pdrop[go]
        alive[go[drop]] = False
    nu = rng.gamma(q, 1.0 / v, n)
    # mean of x gamma(p, nu) draws = gamma(p * x, x * nu)
    mval = np.where(x > 0, rng.gamma(np.maximum(p * x, 1e-9), 1.0 / np.maximum(x * nu, 1e-12)), 0.0)
    return pd.DataFrame({"frequency": x, "recency": tx, "T": TT, "monetary_value": mval})
