"""SequenceSpendModel: a tiny GRU learns a synthetic signal and beats a constant; pickles round-trip."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from buyerscore.models.purchasing_power.metrics import normalized_gini, rmsle
from buyerscore.models.purchasing_power.sequence import STEP_COLS, SequenceSpendModel

pytest.importorskip("torch")


def _synthetic(n: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """Users with 1..8 active days; future spend = buyers among the recently active, scaled by their day value."""
    rng = np.random.default_rng(seed)
    rows, y = [], np.zeros(n)
    for u in range(n):
        k = int(rng.integers(1, 9))
        value = rng.gamma(2.0, 30.0)
        ages = np.sort(rng.choice(np.arange(1, 200), k, replace=False))[::-1]
        for a in ages:
            rows.append({"platform": "s", "user_id": f"u{u}", "day": pd.Timestamp("2024-07-01") - pd.Timedelta(days=int(a)),
                         "age": float(a), "buy": value * rng.uniform(0.8, 1.2)})
        y[u] = value * k / 4 if ages[-1] < 60 else 0.0  # recent and frequent buyers spend, dormant ones do not
    seq = pd.DataFrame(rows).sort_values(["user_id", "day"])
    seq["gap"] = seq.groupby("user_id")["day"].diff().dt.days.fillna(0.0)
    for c in STEP_COLS:
        if c not in seq:
            seq[c] = 1.0 if c == "n_buy_lines" else 0.0
    X = pd.DataFrame({"platform": "s", "user_id": [f"u{u}" for u in range(n)]})
    return X, seq, y


def test_tiny_gru_beats_constant():
    X, seq, y = _synthetic(600, 0)
    Xt, seqt, yt = _synthetic(300, 1)
    m = SequenceSpendModel(hidden_size=8, embedding_dim=2, epochs=12, batch_size=64, learning_rate=1e-2,
                           max_len=8).fit(X, y, sequences=seq)
    p = m.predict(Xt, sequences=seqt)
    assert (p >= 0).all() and p.shape == (300,)
    assert normalized_gini(yt, p) > 0.6
    best_const = min(rmsle(yt, np.full_like(yt, c)) for c in (0.0, float(np.mean(y)), float(np.median(y))))
    assert rmsle(yt, p) < best_const
    m2 = pickle.loads(pickle.dumps(m))
    np.testing.assert_allclose(m2.predict(Xt, sequences=seqt), p, rtol=1e-6)


def test_sequence_input_errors():
    X, seq, y = _synthetic(20, 0)
    with pytest.raises(ValueError, match="sequences lack"):
        SequenceSpendModel(epochs=1).fit(X, y, sequences=seq.drop(columns=["gap"]))
    with pytest.raises(ValueError, match="'epochs' parameter"):
        SequenceSpendModel(epochs=0).fit(X, y, sequences=seq)


def test_missing_static_values_give_finite_predictions():
    X, seq, y = _synthetic(120, 2)
    X["days_since_last"] = np.where(np.arange(120) % 3 == 0, np.nan, 5.0)
    seq.loc[seq.index[::4], "max_line"] = np.nan
    m = SequenceSpendModel(hidden_size=4, epochs=2, max_len=8).fit(X, y, sequences=seq)
    p = m.predict(X, sequences=seq)
    assert np.isfinite(p).all() and p.std() > 0
