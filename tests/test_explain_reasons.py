"""Reason-code layer: known answers, outcomes and languages, global importance."""

from __future__ import annotations

import pandas as pd
import pytest

from buyerscore.explain.reason_codes import (
    OUTCOME_PHRASES,
    global_importance,
    reason_text,
    reasons_frame,
    top_reasons,
)
from buyerscore.features.registry import FeatureSpec, register

register(FeatureSpec("test_refunds_x", "Refunds per purchase (test)", "ratio", "退款率（测试）"))


def test_adverse_takes_largest_positive_and_skips_favourable() -> None:
    c = pd.DataFrame({"a": [3.0, -1.0, -2.0], "b": [1.0, 2.0, -1.0]})
    got = [[r.feature for r in row] for row in top_reasons(c, k=2)]
    assert got == [["a", "b"], ["b"], []]
    driving = [[r.feature for r in row] for row in top_reasons(c, k=1, direction="driving")]
    assert driving == [["a"], ["b"], ["a"]]


@pytest.mark.parametrize(("lang", "outcome", "expected"), [
    ("en", "score", "Refunds per purchase (test) (0.5) lowers the score"),
    ("zh", "score", "退款率（测试）（值 0.5）拉低了评分"),
    ("en", "risk", "Refunds per purchase (test) (0.5) raises the default risk"),
    ("zh", "spend", "退款率（测试）（值 0.5）降低了预期消费"),
    ("zh", "anomaly", "退款率（测试）（值 0.5）明显异常"),
])
def test_texts_in_both_languages(lang: str, outcome: str, expected: str) -> None:
    c = pd.DataFrame({"test_refunds_x": [2.0]})
    v = pd.DataFrame({"test_refunds_x": [0.5]})
    assert top_reasons(c, v, lang=lang, outcome=outcome)[0][0].text == expected


def test_every_outcome_has_both_languages() -> None:
    assert all(set(p) == {"en", "zh"} for p in OUTCOME_PHRASES.values())


def test_reference_value_quoted_and_favourable_phrase() -> None:
    assert reason_text("test_refunds_x", -1.0, 0.01, outcome="anomaly", reference=0.02) == \
        "Refunds per purchase (test) (0.01; typical 0.02) is typical"
    r = top_reasons(pd.DataFrame({"test_refunds_x": [1.0]}), pd.DataFrame({"test_refunds_x": [0.3]}),
                    reference=pd.Series({"test_refunds_x": 0.05}), lang="zh", outcome="anomaly")
    assert r[0][0].text == "退款率（测试）（值 0.3，典型值 0.05）明显异常"


def test_global_importance_known_answer_and_frame() -> None:
    c = pd.DataFrame({"a": [1.0, -1.0, 1.0, -1.0], "b": [4.0, 0.0, 4.0, 0.0]})
    gi = global_importance(c)
    assert gi["feature"].tolist() == ["b", "a"]
    assert gi["mean_abs_contribution"].tolist() == [2.0, 1.0]
    assert gi["mean_contribution"].tolist() == [2.0, 0.0]
    assert gi["share"].sum() == pytest.approx(1.0)
    rf = reasons_frame(top_reasons(c, k=2), index=["u1", "u2", "u3", "u4"])
    assert rf.loc[rf["row"] == "u1", "feature"].tolist() == ["b", "a"]
    assert rf.loc[rf["row"] == "u2"].empty and (rf["contribution"] > 0).all()  # nothing adverse for u2


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"k": 0}, "k must be a positive int"),
    ({"lang": "fr"}, "lang must be one of"),
    ({"direction": "up"}, "direction must be"),
    ({"outcome": "weather"}, "outcome must be one of"),
])
def test_invalid_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        top_reasons(pd.DataFrame({"a": [1.0]}), **kwargs)


def test_missing_values_are_said_in_the_reason_language() -> None:
    import json

    import numpy as np

    c = pd.DataFrame({"test_refunds_x": [1.0, 1.0, 1.0]})
    # a nullable column holds pd.NA (was quoted as "<NA>"); Chinese texts said "missing" in English
    v = pd.DataFrame({"test_refunds_x": pd.array([pd.NA, np.nan, None], dtype="Float64")})
    en = top_reasons(c, v)
    zh = top_reasons(c, v, lang="zh")
    assert {r[0].text for r in en} == {"Refunds per purchase (test) (missing) lowers the score"}
    assert {r[0].text for r in zh} == {"退款率（测试）（值 缺失）拉低了评分"}
    json.dumps(reasons_frame(en).to_dict(orient="records"))  # pd.NA is not JSON; it becomes null
    assert reasons_frame(en)["value"].isna().all()


def test_ties_keep_the_feature_order_and_scorecard_points_add_up() -> None:
    """Reason order is deterministic on ties, and a scorecard's reasons are its points lost: they add up to
    max score - score, also for rows with missing values and special codes."""
    import numpy as np

    from buyerscore.models.credit import CreditScorecard

    tie = pd.DataFrame({"b": [1.0], "a": [1.0], "c": [2.0]})
    assert [r.feature for r in top_reasons(tie, k=3)[0]] == ["c", "b", "a"]
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"util": rng.random(2000), "late": rng.integers(0, 4, 2000).astype(float)})
    y = (rng.random(2000) < 0.05 + 0.2 * X["util"] + 0.05 * X["late"]).astype(int)
    X.loc[:99, "util"] = np.nan
    X.loc[100:149, "late"] = -1.0
    sc = CreditScorecard(special_codes={"late": [-1.0]}).fit(X, y)
    rows = X.iloc[[0, 120, 500]]
    contrib = sc.contributions(rows)
    np.testing.assert_allclose(contrib.sum(axis=1), sc.max_score_ - sc.score(rows), atol=1e-9)
    reasons = sc.reason_codes(rows, k=2)
    for i, rs in enumerate(reasons):
        assert [r.contribution for r in rs] == sorted(contrib.iloc[i][contrib.iloc[i] > 0], reverse=True)[:2]
