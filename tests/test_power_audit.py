"""Purchasing power as a user meets it: `buyerscore power train|score|features` on a real shop (the CDNOW
sample) and on hand-made inputs, and the estimators' answers to bad or degenerate data."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from buyerscore.artifacts import data_hash, load_metadata, save_model
from buyerscore.cli import app
from buyerscore.events.store import EventStore
from buyerscore.exceptions import ModelInputError
from buyerscore.models.purchasing_power import ProbabilisticCLV, SpendForecaster, SpendTier
from buyerscore.models.purchasing_power.inputs import model_features, spend_labels

runner = CliRunner()
CUTOFF, HORIZON, SCORE_AT = "1997-09-30", 90, "1998-06-30"
FAST = {"n_estimators": 20, "learning_rate": 0.1}


def _text(r) -> str:  # type: ignore[no-untyped-def]
    return " ".join(r.output.split())


@pytest.fixture(scope="module")
def cdnow(cdnow_sample_db: Path) -> Path:
    return cdnow_sample_db


@pytest.fixture(scope="module")
def trained(cdnow: Path) -> tuple[pd.DataFrame, np.ndarray, SpendForecaster, SpendTier]:
    with EventStore(cdnow, read_only=True) as s:
        X = model_features(s.con, as_of=CUTOFF)
        y = spend_labels(s.con, as_of=CUTOFF, horizon_days=HORIZON, users=X)["future_spend"].to_numpy()
    fc = SpendForecaster(horizon_days=HORIZON, method="tweedie", clv_features=False, **FAST).fit(X, y)
    tier = SpendTier(cv=2, **FAST).fit(X, y)
    return X, y, fc, tier


@pytest.fixture(scope="module")
def model_dir(trained, tmp_path_factory: pytest.TempPathFactory) -> Path:  # type: ignore[no-untyped-def]
    """A model directory as 'power train' writes it (small boosters, so that the test stays fast)."""
    X, _, fc, tier = trained
    d = tmp_path_factory.mktemp("power_audit_model") / "m"
    common = {"features": list(fc.feature_names_in_), "training_data_hash": data_hash(X), "as_of": CUTOFF,
              "extra": {"horizon_days": HORIZON, "behaviour_features": True, "platforms": []}}
    save_model(fc, d, kind="spend_forecaster", **common)
    save_model(tier, d / "tier", kind="spend_tier", **common)
    return d


@pytest.fixture(scope="module")
def features_file(cdnow: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("power_audit_feats") / "pf.parquet"
    r = runner.invoke(app, ["power", "features", "--db", str(cdnow), "--cutoff", SCORE_AT, "--out", str(out)])
    assert r.exit_code == 0, r.output
    return out


# -- power score ----------------------------------------------------------------------------------

def test_score_tier_column_is_spend_tier_predict(model_dir: Path, features_file: Path, tmp_path: Path) -> None:
    """The tier column follows SpendTier's decision rule (class_weights_), as SpendTier.predict does; it was
    the plain argmax of the probabilities, so the CLI and the Python API named different tiers."""
    from buyerscore.artifacts import load_model

    tier, meta = load_model(model_dir / "tier")
    tier.class_weights_ = np.array([4.0, 1.0, 1.0])  # classes_ = high, low, mid: name "high" more often
    d = tmp_path / "m"
    save_model(load_model(model_dir)[0], d, kind="spend_forecaster", features=meta.features,
               training_data_hash=meta.training_data_hash, as_of=meta.as_of, extra=meta.extra)
    save_model(tier, d / "tier", kind="spend_tier", features=meta.features,
               training_data_hash=meta.training_data_hash, as_of=meta.as_of, extra=meta.extra)
    r = runner.invoke(app, ["power", "score", "--model", str(d), "--features", str(features_file), "--reasons", "0",
                            "--out", str(tmp_path / "s.parquet")])
    assert r.exit_code == 0, r.output
    s = pd.read_parquet(tmp_path / "s.parquet")
    X = pd.read_parquet(features_file)
    want = tier.predict(X)
    argmax = np.asarray(tier.classes_)[tier.predict_proba(X).argmax(axis=1)]
    assert (want != argmax).sum() > 10  # the rule matters on these rows
    np.testing.assert_array_equal(s["tier"].to_numpy(), want)
    np.testing.assert_allclose(s[["p_high", "p_low", "p_mid"]].sum(axis=1), 1.0)


def test_tiers_from_proba_is_predict(trained) -> None:  # type: ignore[no-untyped-def]
    X, _, _, tier = trained
    np.testing.assert_array_equal(tier.tiers_from_proba(tier.predict_proba(X)), tier.predict(X))
    with pytest.raises(ModelInputError, match="one column per tier"):
        tier.tiers_from_proba(np.ones((3, 2)))


def test_features_table_carries_its_cut_off_into_the_scores(model_dir: Path, features_file: Path, cdnow: Path,
                                                            tmp_path: Path) -> None:
    """'power features' writes as_of; 'power score --features' copies it (the column was empty) and scores
    like --db does; extra text columns of the table are passed over (they were refused as features)."""
    X = pd.read_parquet(features_file)
    assert list(X.columns[:3]) == ["platform", "user_id", "as_of"] and set(X["as_of"]) == {"1998-06-30 00:00:00"}
    X.assign(segment="vip").to_parquet(tmp_path / "extra.parquet")
    r = runner.invoke(app, ["power", "score", "--model", str(model_dir), "--features", str(tmp_path / "extra.parquet"),
                            "--out", str(tmp_path / "a.parquet"), "--reasons", "1"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["power", "score", "--model", str(model_dir), "--db", str(cdnow), "--cutoff", SCORE_AT,
                            "--out", str(tmp_path / "b.parquet"), "--reasons", "1"])
    assert r.exit_code == 0, r.output
    a, b = pd.read_parquet(tmp_path / "a.parquet"), pd.read_parquet(tmp_path / "b.parquet")
    assert (a["as_of"] == b["as_of"]).all() and b["as_of"].iloc[0] == "1998-06-30 00:00:00"
    np.testing.assert_allclose(a["expected_spend"], b["expected_spend"], rtol=1e-9)
    assert (a["tier"] == b["tier"]).mean() > 0.99


def test_features_table_without_user_id_is_refused(model_dir: Path, features_file: Path, tmp_path: Path) -> None:
    """It wrote scores that no one could match to a user."""
    pd.read_parquet(features_file).drop(columns=["platform", "user_id"]).to_parquet(tmp_path / "f.parquet")
    r = runner.invoke(app, ["power", "score", "--model", str(model_dir), "--features", str(tmp_path / "f.parquet"),
                            "--out", str(tmp_path / "s.parquet")])
    assert r.exit_code == 2 and "no user_id column" in _text(r), r.output
    assert not (tmp_path / "s.parquet").exists()


def test_out_name_picks_the_format(model_dir: Path, features_file: Path, cdnow: Path, tmp_path: Path) -> None:
    """A .csv --out got Parquet bytes; now CSV (reason features as one text cell), and other names are refused."""
    r = runner.invoke(app, ["power", "score", "--model", str(model_dir), "--features", str(features_file),
                            "--out", str(tmp_path / "s.csv"), "--reasons", "2"])
    assert r.exit_code == 0, r.output
    s = pd.read_csv(tmp_path / "s.csv")
    assert len(s) == len(pd.read_parquet(features_file)) and s["reason_features"].str.count(",").eq(1).all()
    r = runner.invoke(app, ["power", "features", "--db", str(cdnow), "--cutoff", SCORE_AT, "--out",
                            str(tmp_path / "f.csv")])
    assert r.exit_code == 0 and pd.read_csv(tmp_path / "f.csv").shape[0] == len(s)
    r = runner.invoke(app, ["power", "score", "--model", str(model_dir), "--features", str(features_file),
                            "--out", str(tmp_path / "s.txt")])
    assert r.exit_code == 2 and ".parquet or .csv" in _text(r)


def test_stale_tier_folder_is_refused(model_dir: Path, trained, features_file: Path,  # type: ignore[no-untyped-def]
                                      tmp_path: Path) -> None:
    """A tier/ left from another training run was used silently (or failed on missing columns)."""
    X, _, fc, tier = trained
    d = tmp_path / "m"
    save_model(fc, d, kind="spend_forecaster", features=list(fc.feature_names_in_),
               training_data_hash=data_hash(X), as_of=CUTOFF)
    save_model(tier, d / "tier", kind="spend_tier", features=list(fc.feature_names_in_),
               training_data_hash="another run", as_of="1997-06-30")
    r = runner.invoke(app, ["power", "score", "--model", str(d), "--features", str(features_file),
                            "--out", str(tmp_path / "s.parquet")])
    assert r.exit_code == 2 and "not the tiers of the forecaster" in _text(r) and "1997-06-30" in _text(r)


def test_cut_off_outside_the_data(model_dir: Path, cdnow: Path, tmp_path: Path) -> None:
    """Before the first event: an error naming the data's span (it wrote 0 scores); long after the last: a
    warning (every user looks inactive)."""
    for cmd in (["power", "score", "--model", str(model_dir)], ["power", "features"]):
        r = runner.invoke(app, [*cmd, "--db", str(cdnow), "--cutoff", "1990-01-01", "--out", str(tmp_path / "x.parquet")])
        assert r.exit_code == 2 and "before the store's first event" in _text(r) and "1997-01-01" in _text(r), r.output
        assert not (tmp_path / "x.parquet").exists()
    r = runner.invoke(app, ["power", "features", "--db", str(cdnow), "--cutoff", "2001-01-01",
                            "--out", str(tmp_path / "late.parquet")])
    assert r.exit_code == 0 and "days after the store's last event" in _text(r)


def test_score_option_errors_come_first(model_dir: Path, features_file: Path, tmp_path: Path) -> None:
    r = runner.invoke(app, ["power", "score", "--model", str(model_dir), "--features", str(features_file),
                            "--out", str(tmp_path / "s.parquet"), "--lang", "fr"])
    assert r.exit_code == 2 and "--lang 'fr'" in _text(r)
    r = runner.invoke(app, ["power", "score", "--model", str(model_dir), "--features", str(features_file),
                            "--out", str(tmp_path / "s.parquet"), "--reasons", "-1"])
    assert r.exit_code == 2 and not (tmp_path / "s.parquet").exists()


# -- power train ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("args", "says"), [
    (["--horizon", "0"], "--horizon 0: the label window must be 1 to"),
    (["--horizon", "10000000"], "--horizon 10000000"),  # was "year 29376 is out of range"
    (["--horizon", "90", "--method", "gbm"], "--method 'gbm'"),
    (["--horizon", "90", "--tier-thresholds", "50,90"], "quantiles must lie in (0, 1)"),
    (["--horizon", "90", "--cutoff", "1990-01-01"], "before the store's first event"),
])
def test_train_option_errors(cdnow: Path, tmp_path: Path, args: list[str], says: str) -> None:
    base = ["power", "train", "--db", str(cdnow), "--out", str(tmp_path / "m")]
    if "--cutoff" not in args:
        base += ["--cutoff", CUTOFF]
    r = runner.invoke(app, [*base, *args])
    assert r.exit_code == 2 and says in _text(r), r.output
    assert not (tmp_path / "m").exists()


def test_train_writes_the_model_directory_whole(cdnow: Path, tmp_path: Path) -> None:
    """A tier fit that fails left the forecaster written without its tiers; a retrain with --no-tiers kept the
    earlier run's tier/, which 'power score' then used.  The cut points are now options."""
    out = tmp_path / "m"
    base = ["power", "train", "--db", str(cdnow), "--cutoff", "1998-03-31", "--horizon", "60", "--out", str(out),
            "--method", "rate", "--no-behaviour", "--json"]
    r = runner.invoke(app, [*base, "--tier-kind", "amount", "--tier-thresholds", "1e9,2e9"])
    assert r.exit_code == 2 and "--tier-thresholds" in _text(r) and "Nothing was written" in _text(r), r.output
    assert not out.exists()
    r = runner.invoke(app, [*base, "--tier-kind", "amount", "--tier-thresholds", "0,60"])
    assert r.exit_code == 0, r.output
    assert load_metadata(out / "tier").metrics["cut_points"] == [0.0, 60.0]
    r = runner.invoke(app, [*base, "--no-tiers"])
    assert r.exit_code == 0, r.output
    assert not (out / "tier").exists() and (out / "model.joblib").exists()
    assert not [p for p in tmp_path.iterdir() if p.name != "m"]  # no staging folders left behind
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    r = runner.invoke(app, ["power", "train", "--db", str(cdnow), "--cutoff", "1998-03-31", "--horizon", "60",
                            "--out", str(tmp_path / "other"), "--method", "rate", "--no-tiers"])
    assert r.exit_code == 2 and "holds other files" in _text(r) and (tmp_path / "other" / "notes.txt").exists()


# -- estimators -----------------------------------------------------------------------------------

def test_mistyped_feature_names_column_dtype_row_and_value(trained) -> None:  # type: ignore[no-untyped-def]
    X, y, fc, _ = trained
    bad = X.assign(net_spend=X["net_spend"].astype(object))
    bad.loc[bad.index[4], "net_spend"] = "12,5"
    with pytest.raises(ModelInputError, match=r"'net_spend' \(dtype object\), e\.g\. row 4 = '12,5'"):
        SpendForecaster(horizon_days=HORIZON, **FAST).fit(bad, y)
    with pytest.raises(ModelInputError, match="'net_spend'"):
        fc.predict(bad)
    # columns the model was not fitted on are not its input, whatever their kind
    np.testing.assert_array_equal(fc.predict(X.assign(note="x", when=pd.Timestamp("2024-01-01"))), fc.predict(X))


def test_clv_with_no_observed_time_says_why() -> None:
    """T = 0 for everyone made a flat likelihood: 'converged' with the start values and 30 purchases each."""
    z = pd.DataFrame({"frequency": [0.0] * 5, "recency": [0.0] * 5, "T": [0.0] * 5, "monetary_value": [0.0] * 5})
    with pytest.raises(ModelInputError, match="T = 0"):
        ProbabilisticCLV(horizon=30, fit_monetary=False).fit(z)


def test_clv_without_repeat_buyers_warns(caplog: pytest.LogCaptureFixture) -> None:
    X = pd.DataFrame({"frequency": [0.0] * 6, "recency": [0.0] * 6, "T": [10.0, 20, 30, 40, 50, 60]})
    with caplog.at_level(logging.WARNING, logger="buyerscore.models.purchasing_power.clv"):
        m = ProbabilisticCLV(horizon=30, fit_monetary=False).fit(X)
    assert "not identified" in caplog.text
    assert np.isfinite(m.predict(X)).all() and (m.predict(X) >= 0).all()
