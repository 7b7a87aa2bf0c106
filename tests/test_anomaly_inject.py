"""inject_anomalies: documented patterns, window, determinism; end to end on real Taobao events."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from buyerscore.exceptions import LeakageError, ModelInputError
from buyerscore.models.anomaly import ANOMALY_TYPES, AnomalyDetector, inject_anomalies

AS_OF = pd.Timestamp("2024-03-31")


def _events(n_users: int = 60, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        for i in range(int(rng.integers(2, 8))):
            ts = pd.Timestamp("2024-01-01") + pd.Timedelta(days=float(rng.uniform(0, 70)))
            rows.append({"event_id": f"e{u}_{i}", "user_id": f"u{u}", "ts": ts, "event_type": "purchase",
                         "platform": "shop", "item_id": f"i{rng.integers(50)}", "quantity": 1.0,
                         "amount": float(rng.uniform(5, 50)), "order_id": f"o{u}_{i}"})
            rows.append({"event_id": f"v{u}_{i}", "user_id": f"u{u}", "ts": ts - pd.Timedelta(minutes=5),
                         "event_type": "view", "platform": "shop", "item_id": f"i{rng.integers(50)}",
                         "quantity": np.nan, "amount": np.nan, "order_id": None})
    return pd.DataFrame(rows)


def test_patterns_window_and_labels() -> None:
    ev = _events()
    res = inject_anomalies(ev, as_of=AS_OF, n_per_type=3, window_days=14, random_state=1)
    assert res.labels["anomaly_type"].value_counts().to_dict() == {t: 3 for t in ANOMALY_TYPES}
    assert res.labels["user_id"].is_unique
    inj = res.injected
    assert inj["event_id"].str.startswith("inject:").all()
    assert (inj["ts"] <= AS_OF).all() and (inj["ts"] > AS_OF - pd.Timedelta(days=14)).all()
    # original rows are kept unchanged
    orig = res.events[~res.events["event_id"].str.startswith("inject:")]
    pd.testing.assert_frame_equal(orig.sort_values("event_id").reset_index(drop=True),
                                  ev.sort_values("event_id").reset_index(drop=True), check_dtype=False)
    kind = inj["event_id"].str.split(":").str[1]
    ct = inj[kind == "card_testing"]
    assert ct.groupby("user_id").size().between(15, 40).all()
    assert ct["amount"].max() <= ev["amount"].quantile(0.10) + 0.01
    assert (ct.groupby("user_id")["ts"].agg(lambda t: (t.max() - t.min()).total_seconds()) <= 3600).all()
    ra = inj[kind == "refund_abuse"]
    per = ra.groupby(["user_id", "event_type"]).size().unstack()
    assert (per["refund"] >= 0.75 * per["purchase"]).all() and (per["refund"] <= per["purchase"]).all()
    vs = inj[kind == "view_storm"]
    assert set(vs["event_type"]) == {"view"} and vs.groupby("user_id").size().between(300, 900).all()
    sp = inj[kind == "spend_spike"]
    assert sp["amount"].min() >= 15 * ev["amount"].min()


def test_deterministic_and_mapping_counts() -> None:
    ev = _events()
    a = inject_anomalies(ev, as_of=AS_OF, n_per_type={"spend_spike": 2}, random_state=5)
    b = inject_anomalies(ev, as_of=AS_OF, n_per_type={"spend_spike": 2}, random_state=5)
    pd.testing.assert_frame_equal(a.injected, b.injected)
    shuffled = inject_anomalies(ev.sample(frac=1.0, random_state=9), as_of=AS_OF, n_per_type={"spend_spike": 2},
                                random_state=5)
    pd.testing.assert_frame_equal(shuffled.injected, a.injected)  # independent of the input row order
    assert a.labels["anomaly_type"].tolist() == ["spend_spike", "spend_spike"]


def test_errors() -> None:
    ev = _events(5)
    with pytest.raises(ModelInputError, match="only 5 users"):
        inject_anomalies(ev, as_of=AS_OF, n_per_type=3)
    with pytest.raises(ModelInputError, match="need purchase amounts"):
        inject_anomalies(ev.assign(amount=np.nan), as_of=AS_OF, n_per_type={"card_testing": 1})
    with pytest.raises(ValueError, match="Unknown anomaly type"):
        inject_anomalies(ev, as_of=AS_OF, types=("phishing",))
    with pytest.raises(LeakageError):
        inject_anomalies(ev, as_of=None, n_per_type=1)
    with pytest.raises(ModelInputError, match="lack column"):
        inject_anomalies(ev.drop(columns=["ts"]), as_of=AS_OF)


def test_view_storms_detected_on_real_taobao(data_dir, store) -> None:
    from buyerscore.datasets import load_dataset
    from buyerscore.models.anomaly.features import anomaly_features

    load_dataset("taobao", store, data_dir)
    ev = store.con.execute("SELECT * FROM events").df()
    as_of = "2017-12-03 00:00:00"
    res = inject_anomalies(ev, as_of=as_of, n_per_type={"view_storm": 10}, window_days=7, random_state=0)
    store.con.register("inj_df", res.events)
    store.con.execute("CREATE TABLE events_inj AS SELECT * FROM inj_df")
    F = anomaly_features(store.con, as_of=as_of, table="events_inj")
    det = AnomalyDetector(contamination=0.05, change_features=True).fit(F)
    s = det.anomaly_score(F)
    y = F[["platform", "user_id"]].merge(res.labels, how="left")["anomaly_type"].notna().to_numpy()
    assert det.predict(F)[y].mean() >= 0.9          # recall of the flag (5 % of 814 real users flagged)
    top = np.argsort(-s)[: y.sum()]
    assert y[top].mean() >= 0.3                     # precision@10; random ranking gives about 0.012
    assert (F.loc[y, "max_events_1h"] > F.loc[~y, "max_events_1h"].max()).all()


def test_cli_anomaly_fit_and_score(store, tmp_path) -> None:
    import json

    from typer.testing import CliRunner

    from buyerscore.cli import app
    from buyerscore.testing.synthetic import generate_events

    data = generate_events(150, seed=3, days=90, start="2024-01-01")
    ev = data.events.astype({c: "object" for c in data.events.columns if str(data.events[c].dtype) == "category"})
    res = inject_anomalies(ev, as_of="2024-03-25", n_per_type={"card_testing": 3}, random_state=0)
    store.ingest_frame(res.events, source="synthetic+injected")
    db = store.path if hasattr(store, "path") else tmp_path / "store.duckdb"
    store.close()
    runner = CliRunner()
    model = tmp_path / "anomaly_model"
    r = runner.invoke(app, ["anomaly", "fit", "--db", str(db), "--as-of", "2024-03-25", "--out", str(model),
                            "--contamination", "0.05", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["n_train"] == 150
    out = tmp_path / "scores.csv"
    r = runner.invoke(app, ["anomaly", "score", "--model", str(model), "--db", str(db), "--as-of", "2024-03-25",
                            "--out", str(out), "--json", "--lang", "zh", "--top", "5"])
    assert r.exit_code == 0, r.output
    top = json.loads(r.stdout)["top"]
    testers = set(res.labels["user_id"])
    assert {t["user_id"] for t in top} & testers  # 3 card testers among 150 users
    assert all("异常" in t["reasons"] for t in top)
    scores = pd.read_csv(out, dtype={"user_id": str})
    assert len(scores) == 150
    assert (scores.loc[scores["user_id"].isin(testers), "anomaly_score"] >= 0.9).all()
    r = runner.invoke(app, ["anomaly", "fit", "--db", str(db), "--out", str(model)])
    assert r.exit_code == 2 and "--as-of" in r.output
