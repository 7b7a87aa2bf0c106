"""ProbabilisticCLV: published CDNOW fits, hand-computed likelihood, gradients, robustness."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import check_grad

from buyerscore.datasets import load_dataset
from buyerscore.exceptions import ModelInputError, NotFittedError
from buyerscore.models.purchasing_power import ProbabilisticCLV, rfm_summary
from buyerscore.models.purchasing_power.clv import (
    _bgnbd_terms,
    _gg_terms,
    bgnbd_loglik,
    gamma_gamma_loglik,
    simulate_bgnbd,
)

PUBLISHED_BG = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
PUBLISHED_GG = {"p": 6.25, "q": 3.74, "v": 15.44}


def _close(got: dict[str, float], want: dict[str, float], rel: float = 0.01) -> None:
    for k, v in want.items():
        assert got[k] == pytest.approx(v, rel=rel), (k, got[k], v)


@pytest.fixture(scope="module")
def cdnow_summary(data_dir):
    return pd.read_csv(data_dir / "cdnow" / "cdnow_customers_summary.csv.gz")


@pytest.fixture(scope="module")
def cdnow_tx(data_dir):
    d = pd.read_csv(data_dir / "cdnow" / "cdnow_customers_summary_with_transactions.csv.gz")
    return pd.DataFrame({"frequency": d["x"], "recency": d["t_x"], "T": d["T"], "monetary_value": d["zbar"]})


def test_reproduces_published_bgnbd_fit(cdnow_summary):
    m = ProbabilisticCLV(horizon=39, fit_monetary=False).fit(cdnow_summary)
    assert m.converged_
    _close(m.params_, PUBLISHED_BG)
    # Fader, Hardie & Lee (2005) report LL = -9582.4 at the optimum
    assert m.loglik_ == pytest.approx(-9582.4, abs=0.1)


def test_reproduces_published_gamma_gamma_fit(cdnow_tx):
    m = ProbabilisticCLV(horizon=39).fit(cdnow_tx)
    assert m.converged_
    _close(m.params_, PUBLISHED_BG)
    _close(m.gg_params_, PUBLISHED_GG)


def test_fit_from_event_store_matches_published_summary_and_fit(data_dir, store):
    """Events -> rfm_summary(as_of=end of week 39) -> the published summary and fit (in weeks)."""
    load_dataset("cdnow_sample", store, data_dir)
    s = rfm_summary(store.con, as_of="1997-09-30 23:59:59")
    raw = pd.read_csv(data_dir / "cdnow" / "cdnow_sample.csv.gz", dtype=str)
    master = raw.drop_duplicates("customer_id").set_index("customer_id")["customer_id_master"].astype(int)
    s["ID"] = s["user_id"].map(master).rank(method="first").astype(int)  # published IDs follow the master order
    pub = pd.read_csv(data_dir / "cdnow" / "cdnow_customers_summary.csv.gz")
    m = s.merge(pub, on="ID", suffixes=("", "_pub"))
    assert len(m) == 2357
    assert (m["frequency"] == m["frequency_pub"]).all()
    np.testing.assert_allclose(m["recency"] / 7, m["recency_pub"], atol=0.006)
    np.testing.assert_allclose(m["T"] / 7, m["T_pub"], atol=0.006)
    weeks = s.assign(recency=s["recency"] / 7, T=s["T"] / 7)
    fit = ProbabilisticCLV(horizon=39, fit_monetary=False).fit(weeks)
    _close(fit.params_, PUBLISHED_BG)


def _hand_bgnbd(r, alpha, a, b, x, tx, T):
    """Equation (6) of Fader, Hardie & Lee (2005), written with math only."""
    beta = lambda u, v: math.gamma(u) * math.gamma(v) / math.gamma(u + v)
    lik = (beta(a, b + x) / beta(a, b)) * (math.gamma(r + x) * alpha**r / math.gamma(r)) / (alpha + T) ** (r + x)
    if x > 0:
        lik += (beta(a + 1, b + x - 1) / beta(a, b)) * (math.gamma(r + x) * alpha**r / math.gamma(r)) \
            / (alpha + tx) ** (r + x)
    return math.log(lik)


@pytest.mark.parametrize("x,tx,T", [(0, 0.0, 38.86), (2, 30.43, 38.86), (1, 1.71, 38.86), (7, 29.43, 38.86)])
def test_bgnbd_loglik_matches_hand_computation(x, tx, T):
    p = (0.243, 4.414, 0.793, 2.426)
    assert bgnbd_loglik(p, [x], [tx], [T])[0] == pytest.approx(_hand_bgnbd(*p, x, tx, T), rel=1e-10)


def test_gamma_gamma_loglik_matches_hand_computation():
    p, q, v, x, m = 6.25, 3.74, 15.44, 3.0, 22.35
    hand = (math.lgamma(p * x + q) - math.lgamma(p * x) - math.lgamma(q) + q * math.log(v)
            + (p * x - 1) * math.log(m) + p * x * math.log(x) - (p * x + q) * math.log(x * m + v))
    assert gamma_gamma_loglik((p, q, v), [x], [m])[0] == pytest.approx(hand, rel=1e-12)


def test_analytic_gradients_match_finite_differences():
    d = simulate_bgnbd(300, random_state=3)
    x, tx, T, m = (d[c].to_numpy() for c in ("frequency", "recency", "T", "monetary_value"))
    theta = np.log([0.4, 3.0, 0.9, 2.0])
    err = check_grad(lambda t: _bgnbd_terms(np.exp(t), x, tx, T, False)[0].sum(),
                     lambda t: _bgnbd_terms(np.exp(t), x, tx, T, True)[1].sum(axis=1), theta)
    assert err < 1e-4 * abs(_bgnbd_terms(np.exp(theta), x, tx, T, False)[0].sum())
    rep = x > 0
    gtheta = np.log([5.0, 3.0, 12.0])
    err = check_grad(lambda t: _gg_terms(np.exp(t), x[rep], m[rep], False)[0].sum(),
                     lambda t: _gg_terms(np.exp(t), x[rep], m[rep], True)[1].sum(axis=1), gtheta)
    assert err < 1e-4 * abs(_gg_terms(np.exp(gtheta), x[rep], m[rep], False)[0].sum())


def test_recovers_simulated_parameters_in_days():
    truth = {"r": 0.5, "alpha": 60.0, "a": 0.7, "b": 3.0}
    d = simulate_bgnbd(20_000, T=np.random.default_rng(1).uniform(100, 365, 20_000), random_state=2,
                       **truth, p=5.0, q=4.0, v=20.0)
    m = ProbabilisticCLV(horizon=90).fit(d)
    assert m.converged_
    _close(m.params_, truth, rel=0.15)
    _close(m.gg_params_, {"p": 5.0, "q": 4.0, "v": 20.0}, rel=0.2)


def test_predictions_agree_with_lifetimes_formula(cdnow_tx):
    """Conditional expectation against the published numbers of lifetimes' CDNOW quickstart."""
    m = ProbabilisticCLV(horizon=39).fit(cdnow_tx)
    one = pd.DataFrame({"frequency": [2], "recency": [30.43], "T": [38.86], "monetary_value": [22.35]})
    # lifetimes 0.11.3 on the same fit: 1.2259 expected purchases in 39 weeks, P(alive) = 0.7266 (both computed with lifetimes 0.11.3)
    assert m.expected_purchases(one)[0] == pytest.approx(1.2259, rel=1e-3)
    assert m.p_alive(one)[0] == pytest.approx(0.7266, rel=1e-3)
    spend = m.predict(cdnow_tx)
    assert np.isfinite(spend).all() and (spend >= 0).all()


@pytest.mark.parametrize("frame", [
    pd.DataFrame({"frequency": [0, 0, 0], "recency": [0.0, 0, 0], "T": [10.0, 20, 30], "monetary_value": 0.0}),
    pd.DataFrame({"frequency": [50, 60, 0, 1], "recency": [30.0, 30, 0, 29], "T": [30.0, 30, 30, 30],
                  "monetary_value": [1e6, 2.0, 0, 5]}),
])
def test_degenerate_data_never_raises(frame):
    m = ProbabilisticCLV(horizon=10, fit_monetary=False).fit(frame)
    assert all(np.isfinite(v) for v in m.params_.values())
    assert np.isfinite(m.predict(frame)).all()


@pytest.mark.parametrize("params,match", [
    ({"horizon": 0}, "'horizon' parameter of ProbabilisticCLV must be a float > 0"),
    ({"penalizer": -1}, "'penalizer' parameter"),
    ({"n_restarts": -1}, "'n_restarts' parameter"),
])
def test_invalid_parameters(params, match):
    X = simulate_bgnbd(50, random_state=0)
    with pytest.raises(ValueError, match=match):
        ProbabilisticCLV(**params).fit(X)


def test_bad_input_and_not_fitted():
    X = pd.DataFrame({"frequency": [1, 0], "recency": [5.0, 0], "T": [3.0, 4.0], "monetary_value": [1.0, 0]})
    with pytest.raises(ModelInputError, match="impossible RFM summary"):
        ProbabilisticCLV().fit(X)
    with pytest.raises(ModelInputError, match="needs column"):
        ProbabilisticCLV().fit(pd.DataFrame({"frequency": [1, 2]}))
    with pytest.raises(NotFittedError):
        ProbabilisticCLV().predict(simulate_bgnbd(5))
