"""Drift monitoring: PSI per column, statuses, performance decay, verdicts, CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from buyerscore.exceptions import ModelInputError
from buyerscore.explain.monitoring import RETRAIN, column_psi, drift_report
from buyerscore.models.metrics import psi


def _pop(n: int = 3000, shift: float = 0.0, noise: float = 1.0, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(shift, 1.0, n)
    risk = 1 / (1 + np.exp(-(x - shift)))
    y = (rng.uniform(size=n) < risk).astype(int)
    score = x - shift + rng.normal(0, noise, n)
    return pd.DataFrame({"user_id": [f"u{i}" for i in range(n)], "x": x, "z": rng.normal(size=n),
                         "segment": rng.choice(["a", "b"], n, p=[0.5, 0.5]), "score": score, "y": y})


def test_psi_matches_metrics_and_categorical_known_answer() -> None:
    ref, cur = _pop(), _pop(shift=0.5, seed=1)
    rep = drift_report(ref, cur)
    t = rep.table.set_index("column")
    assert t.loc["x", "psi"] == pytest.approx(psi(ref["x"], cur["x"], bins=10))
    assert "user_id" not in t.index  # ids are not features
    # categories: shares a/b 50/50 -> 25/75: PSI = (0.25-0.5) ln(0.5) + (0.75-0.5) ln(1.5)
    r = pd.Series(["a", "b"] * 50)
    c = pd.Series(["a"] * 25 + ["b"] * 75)
    assert column_psi(r, c) == pytest.approx(-0.25 * np.log(0.5) + 0.25 * np.log(1.5))


def test_statuses_and_verdicts() -> None:
    ref = _pop()
    assert drift_report(ref, _pop(seed=1), score_col="score", label_col="y").verdict == "stable"
    shifted = drift_report(ref, _pop(shift=1.0, seed=1))
    st = shifted.table.set_index("column")["status"]
    assert st["x"] == "alert" and st["z"] == "ok"
    assert shifted.verdict == RETRAIN and shifted.retrain  # 1 of 3 features at alert >= 20 %
    mild = drift_report(ref, _pop(shift=0.35, seed=1), features=["x", "z", "segment"], alert_share=0.5)
    assert mild.table.set_index("column").loc["x", "status"] == "warn"
    assert mild.verdict == "monitor"


def test_performance_decay_recommends_retraining() -> None:
    ref = _pop(noise=0.2)
    cur = _pop(noise=3.0, seed=1)  # same population, much noisier score: AUC falls
    rep = drift_report(ref, cur, score_col="score", label_col="y", features=["z"])
    assert rep.performance["cur_auc"] < rep.performance["ref_auc"] - 0.05
    assert rep.verdict == RETRAIN and any("AUC fell" in r for r in rep.reasons)
    # a score that decreases with risk (points) is flipped, so AUCs stay > 0.5
    pts = drift_report(ref.assign(score=-ref["score"]), cur.assign(score=-cur["score"]), score_col="score",
                       label_col="y", features=["z"])
    assert pts.performance["ref_auc"] > 0.5 and pts.performance["score_direction"] == "decreases with risk"


def test_errors() -> None:
    ref = _pop(50)
    with pytest.raises(ModelInputError, match="'score2' is missing from the reference and current"):
        drift_report(ref, ref, score_col="score2")
    with pytest.raises(ModelInputError, match="empty"):
        drift_report(ref, ref.iloc[:0])
    with pytest.raises(ValueError, match="0 < warn < alert"):
        drift_report(ref, ref, warn=0.3, alert=0.2)


def test_cli_monitor_json_and_exit_code(tmp_path) -> None:
    from buyerscore.cli import app

    ref, cur = tmp_path / "ref.parquet", tmp_path / "cur.csv"
    _pop().to_parquet(ref)
    _pop(shift=1.0, seed=1).to_csv(cur, index=False)
    runner = CliRunner()
    res = runner.invoke(app, ["monitor", "--reference", str(ref), "--current", str(cur), "--score-col", "score",
                              "--label-col", "y", "--json", "--out", str(tmp_path / "drift.json")])
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert d["verdict"] == RETRAIN and d["retrain_recommended"] is True
    assert {c["column"] for c in d["columns"]} >= {"x", "z", "segment", "score"}
    assert json.loads((tmp_path / "drift.json").read_text())["verdict"] == RETRAIN
    res = runner.invoke(app, ["monitor", "--reference", str(ref), "--current", str(cur), "--fail-on-retrain"])
    assert res.exit_code == 3 and "retrain recommended" in res.stdout
    res = runner.invoke(app, ["monitor", "--reference", str(ref), "--current", str(tmp_path / "nope.csv")])
    assert res.exit_code == 2


def test_a_stray_word_in_a_number_column_is_an_error_not_a_shift() -> None:
    ref, cur = _pop(), _pop(seed=1)
    cur = cur.astype({"score": object, "x": object})
    cur.loc[7, "score"] = "high"
    with pytest.raises(ModelInputError, match=r"'score' of the current frame.*'high' at row\(s\) \[7\]"):
        drift_report(ref, cur, score_col="score", label_col="y")
    # numbers written as text are read as numbers: same PSI as the numeric column
    cur.loc[7, "score"] = "0.5"
    num = cur.assign(score=cur["score"].astype(float), x=cur["x"].astype(float))
    a = drift_report(ref, cur, score_col="score").table.set_index("column")["psi"]
    b = drift_report(ref, num, score_col="score").table.set_index("column")["psi"]
    pd.testing.assert_series_equal(a, b)


def test_columns_in_one_frame_only_are_reported() -> None:
    ref, cur = _pop(), _pop(seed=1)
    rep = drift_report(ref, cur.drop(columns=["z"]).assign(new=1.0))
    assert rep.one_sided == {"reference_only": ["z"], "current_only": ["new"]}
    assert rep.verdict == "monitor" and any("'z'" in r and "missing" in r for r in rep.reasons)
    assert any("'new'" in r for r in rep.reasons)
    assert rep.to_dict()["one_sided_columns"]["reference_only"] == ["z"]
    assert drift_report(ref, cur).one_sided == {}


# ------------------------------------------------------------------------------------------- edge cases
def test_identical_frames_have_zero_psi_for_every_kind_of_column() -> None:
    ref = _pop(500).assign(const=5.0, count=np.arange(500) % 4, empty=np.nan, flag=np.arange(500) % 2 == 0)
    t = drift_report(ref, ref.copy()).table.set_index("column")
    assert (t["psi"] == 0.0).all() and (t["status"] == "ok").all(), t


def test_a_constant_or_small_count_that_moves_is_a_shift() -> None:
    ref = _pop(500).assign(const=5.0, count=np.arange(500) % 4)
    # quantile bins of a constant reference are one bin: 5 -> 7 used to read PSI 0 ("ok")
    t = drift_report(ref, ref.assign(const=7.0)).table.set_index("column")
    assert t.loc["const", "status"] == "alert"
    # a count of 0..3 whose 3s become 9s: a value the reference never had
    t = drift_report(ref, ref.assign(count=ref["count"].replace({3: 9}))).table.set_index("column")
    assert t.loc["count", "status"] == "alert"
    # known answer, one bin per value: shares 1/4 each -> 1/2, 1/2, 0 (floored at 1e-4), 0
    r = pd.Series([0, 1, 2, 3] * 25)
    c = pd.Series([0] * 50 + [1] * 50)
    e = 1e-4
    want = 2 * (0.5 - 0.25) * np.log(0.5 / 0.25) + 2 * (e - 0.25) * np.log(e / 0.25)
    assert column_psi(r, c) == pytest.approx(want)


def test_a_column_that_fills_or_empties_is_a_shift_not_an_error() -> None:
    ref, cur = _pop(500), _pop(500, seed=1)
    # all missing in the reference, filled now: was "n/a" with no reason
    t = drift_report(ref.assign(x=np.nan), cur).table.set_index("column")
    assert t.loc["x", "status"] == "alert"
    # an empty column in one CSV is read as float; the other file's text was an error ("must hold numbers")
    for a, b in ((ref.assign(segment=np.nan), cur), (ref, cur.assign(segment=np.nan))):
        t = drift_report(a, b).table.set_index("column")
        assert t.loc["segment", "status"] == "alert"


def test_identifier_like_columns_do_not_trigger_retraining() -> None:
    ref, cur = _pop(1000), _pop(1000, seed=1)
    # by name (CustomerID, numeric: new customers have higher ids) and by values (free text, one per row)
    ref = ref.assign(comment=[f"n{i}" for i in range(1000)], CustomerID=np.arange(1000))
    cur = cur.assign(comment=[f"n{i}" for i in range(1000, 2000)], CustomerID=np.arange(1000, 2000))
    rep = drift_report(ref, cur)
    t = rep.table.set_index("column")
    assert t.loc["comment", "status"] == "skipped" and "CustomerID" not in t.index
    assert rep.verdict == "stable", rep.reasons
    assert any("CustomerID" in r for r in rep.reasons) and any("comment" in r for r in rep.reasons)
    # asked for by name, an id column is compared
    assert "CustomerID" in drift_report(ref, cur, features=["CustomerID"]).table["column"].tolist()


def test_retrain_reason_lists_only_columns_at_alert() -> None:
    rep = drift_report(_pop(), _pop(shift=1.0, seed=1), features=["x", "z", "segment"])
    reason = next(r for r in rep.reasons if "at alert level" in r)
    assert "['x']" in reason and "'z'" not in reason


def test_cli_monitor_empty_file_names_the_file(tmp_path) -> None:
    from buyerscore.cli import app

    _pop(50).to_csv(tmp_path / "ref.csv", index=False)
    _pop(50).head(0).to_csv(tmp_path / "cur.csv", index=False)
    res = CliRunner().invoke(app, ["monitor", "--reference", str(tmp_path / "ref.csv"), "--current",
                                   str(tmp_path / "cur.csv")])
    msg = " ".join(res.output.split())
    assert res.exit_code == 2 and "--current" in msg and "cur.csv has no data rows" in msg


def test_monitor_reason_names_every_alert_column_first() -> None:
    """Below the retrain share, the 'monitor' reason lists the columns at alert before those at warn, largest
    PSI first, with their PSI and a count of the rest (it named the first 5 shifted columns in table order,
    leaving alert columns out)."""
    rng = np.random.default_rng(0)
    n = 4000
    ref = pd.DataFrame({f"w{i}": rng.normal(size=n) for i in range(8)} | {"a1": rng.normal(size=n),
                                                                         "a2": rng.normal(size=n)})
    cur = pd.DataFrame({f"w{i}": rng.normal(0.35, 1, size=n) for i in range(8)} | {"a1": rng.normal(1.5, 1, n),
                                                                                   "a2": rng.normal(1.0, 1, n)})
    rep = drift_report(ref, cur, alert_share=0.5)
    st = rep.table.set_index("column")["status"]
    assert st["a1"] == st["a2"] == "alert" and (st.filter(like="w") == "warn").all()
    assert rep.verdict == "monitor"
    reason = rep.reasons[-1]
    assert reason.startswith("10 column(s) shifted") and "2 at alert" in reason and reason.endswith("and 2 more.")
    assert reason.index("a1 (alert") < reason.index("a2 (alert") < reason.index("(warn")
