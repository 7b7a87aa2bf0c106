"""Audit of the ingestion boundary and the anomaly commands on real logs: separators other than commas,
no unread (personal) columns in the rejects, mapping typos, the features command's output files, and the
anomaly commands' checks before any feature is built."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from buyerscore.cli import app
from buyerscore.events.io import ColumnMapping
from buyerscore.events.store import EventStore

runner = CliRunner()
MAPPING = ("columns: {user_id: CustomerID, ts: InvoiceDate, event_type: action, item_id: StockCode, "
           "quantity: Qty, amount: LineTotal, order_id: InvoiceNo}\nconstants: {platform: myshop, currency: GBP}\n")


def _text(r) -> str:  # type: ignore[no-untyped-def]
    return " ".join(r.output.split())


@pytest.fixture(scope="module")
def retail(data_dir: Path) -> pd.DataFrame:
    """The first 400 lines of UCI Online Retail as a shop would export them (an action and a line total)."""
    df = pd.read_csv(data_dir / "uci_online_retail" / "online_retail.csv.gz", nrows=400,
                     dtype={"InvoiceNo": str, "StockCode": str, "CustomerID": "Int64"})
    df["action"] = np.where(df["InvoiceNo"].str.startswith("C"), "refund", "purchase")
    df["LineTotal"] = (df["Quantity"].abs() * df["UnitPrice"]).round(2)
    df["Qty"] = df["Quantity"].abs()
    return df


@pytest.fixture(scope="module")
def cdnow(cdnow_sample_db: Path) -> Path:
    return cdnow_sample_db


def _events(db: Path) -> pd.DataFrame:
    with EventStore(db, read_only=True) as s:
        return s.con.execute("SELECT * EXCLUDE (batch_id) FROM events ORDER BY event_id").df()


@pytest.mark.parametrize(("sep", "name"), [(";", "semi.csv"), ("|", "pipe.csv"), ("\t", "tabs.csv")])
def test_semicolon_pipe_and_tab_separated_csv_are_split_like_commas(retail, tmp_path, sep, name) -> None:
    m = tmp_path / "cols.yaml"
    m.write_text(MAPPING)
    retail.to_csv(tmp_path / "comma.csv", index=False)
    retail.to_csv(tmp_path / name, index=False, sep=sep)
    mapping = ColumnMapping.from_yaml(m)
    with EventStore(tmp_path / "a.duckdb") as a, EventStore(tmp_path / "b.duckdb") as b:
        want = a.ingest_file(tmp_path / "comma.csv", mapping=mapping)
        got = b.ingest_file(tmp_path / name, mapping=mapping)
    assert want.read == 400 and want.accepted > 300
    assert (got.read, got.accepted, got.by_reason) == (want.read, want.accepted, want.by_reason)
    pd.testing.assert_frame_equal(_events(tmp_path / "b.duckdb"), _events(tmp_path / "a.duckdb"))


def test_ragged_semicolon_file_keeps_its_bad_line_as_a_reject(retail, tmp_path) -> None:
    f = tmp_path / "semi.csv"
    text = retail.head(5).to_csv(index=False, sep=";").splitlines()
    text[3] += ";extra"  # data row 3 has one field more than the header
    f.write_text("\n".join(text) + "\n")
    m = tmp_path / "cols.yaml"
    m.write_text(MAPPING)
    r = runner.invoke(app, ["ingest", str(f), "--db", str(tmp_path / "s.duckdb"), "--mapping", str(m), "--json"])
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    assert (s["read"], s["accepted"], s["by_reason"]) == (5, 4, {"MALFORMED_ROW": 1})
    with EventStore(tmp_path / "s.duckdb", read_only=True) as st:
        row, raw = st.con.execute("SELECT row_number, raw FROM rejects").fetchone()  # type: ignore[misc]
    assert row == 3 and json.loads(raw)["_line"] == text[3]


def test_rejects_keep_only_the_columns_that_were_read(retail, tmp_path) -> None:
    df = retail.head(40).copy()
    df["email"] = [f"shopper{i}@example.com" for i in range(len(df))]  # personal data no field is read from
    df["phone"] = "+44 20 7946 0000"
    df.loc[[3, 7], "LineTotal"] = -1.0  # NEGATIVE_AMOUNT
    dup = df.iloc[[30]].copy()  # the same line again, in a later chunk: DUPLICATE_EVENT (store's chunk path)
    df = pd.concat([df, dup], ignore_index=True)
    f = tmp_path / "export.csv"
    df.to_csv(f, index=False)
    m = tmp_path / "cols.yaml"
    m.write_text(MAPPING)
    with EventStore(tmp_path / "s.duckdb") as s:
        summary = s.ingest_file(f, mapping=ColumnMapping.from_yaml(m), chunk_rows=10)
        rej = s.con.execute("SELECT row_number, reason, raw FROM rejects ORDER BY row_number").df()
    assert summary.by_reason.get("NEGATIVE_AMOUNT") == 2 and summary.by_reason.get("DUPLICATE_EVENT", 0) >= 1
    assert "DUPLICATE_EVENT" in set(rej["reason"]) and len(rej) == summary.rejected
    want = ["InvoiceNo", "StockCode", "InvoiceDate", "CustomerID", "action", "LineTotal", "Qty"]
    for r in rej.itertuples():
        raw = json.loads(r.raw)
        assert list(raw) == want, (r.reason, list(raw))
        assert raw["LineTotal"] == str(df.loc[r.row_number - 1, "LineTotal"])
    assert "example.com" not in "".join(rej["raw"]) and "7946" not in "".join(rej["raw"])

    # without a mapping the canonical columns are kept, an extra personal column is not
    g = tmp_path / "canonical.csv"
    g.write_text("user_id,ts,event_type,email\nu1,2024-01-01,view,a@example.com\nu2,never,view,b@example.com\n")
    with EventStore(tmp_path / "t.duckdb") as s:
        s.ingest_file(g)
        raw = json.loads(s.con.execute("SELECT raw FROM rejects").fetchone()[0])  # type: ignore[index]
    assert raw == {"user_id": "u2", "ts": "never", "event_type": "view"}


def test_mapping_typo_names_the_column_it_probably_meant(retail, tmp_path) -> None:
    f = tmp_path / "export.csv"
    retail.head(3).to_csv(f, index=False)
    m = tmp_path / "cols.yaml"
    m.write_text("columns: {user_id: CustomerId, ts: InvoiceDat, event_type: action}\n")
    r = runner.invoke(app, ["ingest", str(f), "--db", str(tmp_path / "s.duckdb"), "--mapping", str(m)])
    assert r.exit_code == 2
    assert "perhaps 'CustomerId' -> 'CustomerID', 'InvoiceDat' -> 'InvoiceDate'" in _text(r)
    assert not (tmp_path / "s.duckdb").exists()


def test_features_out_csv_is_csv_and_labels_never_overwrite_features(cdnow, tmp_path) -> None:
    base = ["features", "--db", str(cdnow), "--cutoff", "1997-09-30", "--windows", "30"]
    r = runner.invoke(app, [*base, "--out", str(tmp_path / "f.csv"), "--horizon", "90"])
    assert r.exit_code == 0, r.output
    csv = pd.read_csv(tmp_path / "f.csv")  # was Parquet bytes under a .csv name
    pq = pd.read_parquet(tmp_path / "f_labels.parquet")
    assert len(csv) == len(pq) == 2357 and list(csv.columns[:3]) == ["platform", "user_id", "recency_days"]

    r = runner.invoke(app, [*base, "--out", str(tmp_path / "f.txt")])
    assert r.exit_code == 2 and ".parquet or .csv" in _text(r) and not (tmp_path / "f.txt").exists()

    same = tmp_path / "both.parquet"
    r = runner.invoke(app, [*base, "--out", str(same), "--horizon", "90", "--labels-out", str(same)])
    assert r.exit_code == 2 and "would overwrite the features" in _text(r)
    assert not same.exists()  # labels used to replace the features in the same file


def test_anomaly_fit_and_score_before_any_event_say_why(cdnow, tmp_path) -> None:
    r = runner.invoke(app, ["anomaly", "fit", "--db", str(cdnow), "--as-of", "1990-01-01", "--out", str(tmp_path / "m")])
    text = _text(r)
    assert r.exit_code == 2 and "no user has an event at or before --as-of 1990-01-01" in text
    assert "from 1997-01-01" in text and "to 1998-06-30" in text and "n_samples=0" not in text
    assert not (tmp_path / "m").exists()

    model = tmp_path / "model"
    r = runner.invoke(app, ["anomaly", "fit", "--db", str(cdnow), "--as-of", "1997-09-30", "--out", str(model),
                            "--detectors", "ecod", "--json"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["anomaly", "score", "--model", str(model), "--db", str(cdnow), "--as-of", "1990-01-01",
                            "--out", str(tmp_path / "s.csv")])
    assert r.exit_code == 0 and "note: no user has an event at or before --as-of 1990-01-01" in _text(r)
    assert len(pd.read_csv(tmp_path / "s.csv")) == 0


@pytest.mark.parametrize(("cmd", "args", "match"), [
    ("fit", ["--contamination", "0.7"], "'contamination' parameter of AnomalyDetector must be a float in (0, 0.5)"),
    ("fit", ["--detectors", "iforest,lof"], "'detectors' parameter"),
    ("fit", ["--combine", "median"], "'combine' parameter"),
    ("score", ["--lang", "fr"], "--lang must be one of en, zh; got 'fr'"),
    ("score", ["--reasons", "0"], "--reasons must be a positive whole number"),
])
def test_anomaly_options_are_checked_before_features_are_built(cdnow, tmp_path, monkeypatch, cmd, args,
                                                                 match) -> None:
    from buyerscore.artifacts import save_model
    from buyerscore.models.anomaly import AnomalyDetector, features

    model = tmp_path / "model"
    rng = np.random.default_rng(0)
    det = AnomalyDetector(detectors=["ecod"]).fit(pd.DataFrame(rng.normal(size=(50, 2)), columns=["a", "b"]))
    save_model(det, model, kind="anomaly.AnomalyDetector", features=["a", "b"], training_data_hash="x")

    def boom(*a, **k):  # type: ignore[no-untyped-def]
        raise AssertionError("features were built before the options were checked")

    monkeypatch.setattr(features, "anomaly_features", boom)
    where = ["--out", str(tmp_path / "m")] if cmd == "fit" else ["--model", str(model)]
    r = runner.invoke(app, ["anomaly", cmd, "--db", str(cdnow), "--as-of", "1997-09-30", *where, *args])
    assert r.exit_code == 2 and match in _text(r), (r.exit_code, r.output, r.exception)
