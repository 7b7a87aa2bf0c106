"""Features on real data (CDNOW, checked against an independent pandas computation), the synthetic
generator, the ``features`` / ``demo`` commands and the benchmark's smoke mode."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from buyerscore.cli import app
from buyerscore.datasets import load_dataset, read_dataset
from buyerscore.events.store import EventStore
from buyerscore.events.validate import validate_events
from buyerscore.features import FEATURE_NAMES, build_features, build_labels
from buyerscore.features.demo import run_demo
from buyerscore.testing.synthetic import generate_events

ROOT = Path(__file__).resolve().parents[1]


# --- real data -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cdnow_store(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> EventStore:
    store = EventStore(tmp_path_factory.mktemp("cdnow") / "cdnow.duckdb")
    load_dataset("cdnow", store, data_dir)
    yield store
    store.close()


def test_cdnow_features_match_independent_pandas(cdnow_store: EventStore, data_dir: Path) -> None:
    raw = pd.read_csv(data_dir / "cdnow" / "cdnow_master.csv.gz", dtype={"customer_id": str, "date": str})
    raw["ts"] = pd.to_datetime(raw["date"], format="%Y%m%d")
    cut = pd.Timestamp("1997-09-30")
    past = raw[raw["ts"] <= cut]
    f = build_features(cdnow_store.con, as_of="1997-09-30").set_index("user_id")
    assert len(f) == past["customer_id"].nunique() == 23_570  # every CDNOW customer's first purchase is in Q1 1997
    assert f["monetary_sum"].sum() == pytest.approx(past["dollar_value"].sum(), rel=1e-9)
    assert f["n_purchases"].sum() == len(past)
    per_user = past.groupby("customer_id").agg(spend=("dollar_value", "sum"), last=("ts", "max"),
                                               days=("ts", "nunique"))
    per_user = per_user.loc[f.index]
    np.testing.assert_allclose(f["monetary_sum"], per_user["spend"], rtol=1e-9)
    np.testing.assert_allclose(f["recency_days"], (cut - per_user["last"]).dt.days)
    np.testing.assert_array_equal(f["n_purchase_days"], per_user["days"])
    # labels: the next quarter, strictly after the cut-off
    lab = build_labels(cdnow_store.con, as_of="1997-09-30", horizon_days=91)
    fut = raw[(raw["ts"] > cut) & (raw["ts"] <= cut + pd.Timedelta(days=91))]
    assert len(lab) == 23_570
    assert lab["future_spend"].sum() == pytest.approx(fut["dollar_value"].sum(), rel=1e-9)
    assert lab["future_purchase"].sum() == fut["customer_id"].nunique()


def test_unpriced_purchases_count_in_frequency_not_spend(data_dir: Path, tmp_path: Path) -> None:
    """Taobao has no prices: purchases count, spend is undefined, nothing breaks."""
    with EventStore(tmp_path / "t.duckdb") as store:
        load_dataset("taobao", store, data_dir)
        f = build_features(store.con, as_of="2017-12-01")
    assert 0 < len(f) <= read_dataset("taobao", data_dir).events["user_id"].nunique()
    buyers = f["n_purchases"] > 0
    assert buyers.any()
    assert f.loc[buyers, "monetary_sum"].isna().all() and (f.loc[~buyers, "monetary_sum"] == 0).all()
    assert f.loc[buyers, "monetary_mean"].isna().all() and f.loc[buyers, "spend_365d"].isna().all()
    rate = f["cart_abandonment_rate"].dropna()
    assert len(rate) > 0 and rate.between(0, 1).all()


# --- synthetic generator -----------------------------------------------------------------------------

def test_synthetic_is_seeded_valid_and_coherent() -> None:
    a, b = generate_events(300, seed=7), generate_events(300, seed=7)
    pd.testing.assert_frame_equal(a.events, b.events)
    assert not a.events.equals(generate_events(300, seed=8).events)
    ev = a.events
    res = validate_events(ev, source="synthetic")
    assert len(res.rejects) == 0, res.by_reason
    assert ev["ts"].is_monotonic_increasing
    pur = ev[ev["event_type"] == "purchase"]
    assert pur["amount"].gt(0).all() and pur["order_id"].notna().all()
    pay = ev[ev["event_type"] == "payment"]
    # one payment per order, equal to the order total
    totals = pur.groupby("order_id", observed=True)["amount"].sum()
    paid = pay.set_index("order_id")["amount"]
    np.testing.assert_allclose(paid.loc[totals.index], totals.round(2), atol=0.011)
    first_buy = pur.groupby("order_id", observed=True)["ts"].min()
    ref = ev[ev["event_type"] == "refund"]
    assert (ref["ts"].to_numpy() > first_buy.loc[ref["order_id"]].to_numpy()).all()
    rv = ev[ev["event_type"] == "review"]
    assert rv["rating"].between(1, 5).all() and rv["text"].notna().any() and rv["text"].isna().any()
    assert set(a.latent.columns) >= {"user_id", "value", "propensity"}
    assert set(a.users["user_id"]) == set(ev["user_id"].astype(str))


def test_synthetic_latent_value_drives_spend() -> None:
    d = generate_events(1500, seed=3)
    store = EventStore(":memory:")
    store.ingest_frame(d.events, source="syn")
    f = build_features(store.con, as_of="2025-01-31", windows=(30,)).merge(d.latent, on="user_id")
    buyers = f[f["n_purchases"] > 0]
    assert buyers["monetary_mean"].corr(buyers["value"], method="spearman") > 0.4
    assert f["cart_abandonment_rate"].corr(f["propensity"], method="spearman") < -0.3


# --- CLI and demo ------------------------------------------------------------------------------------

def test_demo_synthetic_end_to_end(tmp_path: Path) -> None:
    res = run_demo(tmp_path, n_users=150)
    assert res.db_path.exists() and res.features_path.exists() and res.labels_path.exists()
    f = pd.read_parquet(res.features_path)
    assert list(f.columns) == ["platform", "user_id", *FEATURE_NAMES]
    assert len(res.labels) == len(f) == int(res.summary["users"].sum())
    again = run_demo(tmp_path, n_users=150)  # idempotent: the same batch is not ingested twice
    assert int(again.summary["events"].sum()) == int(res.summary["events"].sum())


def test_cli_features_and_demo(tmp_path: Path) -> None:
    runner = CliRunner()
    r = runner.invoke(app, ["demo", "--out", str(tmp_path / "demo"), "--users", "120"])
    assert r.exit_code == 0, r.output
    assert "synthetic" in r.output
    db = tmp_path / "demo" / "buyerscore.duckdb"
    out = tmp_path / "f.parquet"
    r = runner.invoke(app, ["features", "--db", str(db), "--cutoff", "2024-06-30", "--windows", "7,30",
                            "--out", str(out), "--horizon", "30"])
    assert r.exit_code == 0, r.output
    f = pd.read_parquet(out)
    assert "spend_30d" in f.columns and "spend_90d" not in f.columns
    assert len(pd.read_parquet(tmp_path / "f_labels.parquet")) == len(f)
    r = runner.invoke(app, ["features", "--db", str(tmp_path / "missing.duckdb"), "--cutoff", "2024-06-30"])
    assert r.exit_code == 2 and "does not exist" in r.output
    r = runner.invoke(app, ["features", "--db", str(db), "--cutoff", "2024-06-30", "--windows", "7,x",
                            "--out", str(out)])
    assert r.exit_code == 2 and "--windows" in r.output


# --- benchmark smoke mode ------------------------------------------------------------------------------

def test_benchmark_smoke(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("bench_features", ROOT / "benchmarks" / "features.py")
    mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    r = mod.main(["--events", "200000", "--out-dir", str(tmp_path), "--check-users", "500"])
    assert r["agreement"]["agree"], r["agreement"]
    saved = json.loads((tmp_path / "features.json").read_text())
    assert saved["events"] > 150_000 and saved["duckdb_seconds"] > 0 and (tmp_path / "features.md").exists()
