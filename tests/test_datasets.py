"""Every dataset of ../shared/data/MANIFEST.md loads through `buyerscore datasets load`, with known counts."""

from __future__ import annotations

import json
import re
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from buyerscore.cli import app
from buyerscore.datasets import DATASETS, load_dataset, read_applicants, read_dataset
from buyerscore.events.store import EventStore

runner = CliRunner()


def manifest_rows(manifest: str, rel: str) -> int:
    """Data rows MANIFEST.md states for a file: the first 'N × M' after the file is named."""
    for needle in (f"`{rel}`", f"`{Path(rel).name}`"):
        i = manifest.find(needle)
        if i >= 0:
            m = re.search(r"([\d,]+) × \d+", manifest[i:])
            assert m is not None, rel
            return int(m.group(1).replace(",", ""))
    raise AssertionError(f"{rel} is not named in MANIFEST.md")


@pytest.fixture(scope="session")
def loaded(data_dir, tmp_path_factory):
    """All datasets loaded once, through the CLI, into one store (shared by pytest-xdist workers of one run)."""
    import fcntl
    import os

    uid = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    root = tmp_path_factory.getbasetemp().parent / f"datasets-{uid}" if uid else tmp_path_factory.mktemp("datasets")
    root.mkdir(exist_ok=True)
    db, done = root / "all.duckdb", root / "summaries.json"
    with (root / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the first worker loads, the others wait and reuse
        if not done.exists():
            res = runner.invoke(app, ["datasets", "load", "all", "--data-dir", str(data_dir), "--db", str(db), "--json"])
            assert res.exit_code == 0, res.stderr
            done.write_text(res.stdout)
        fcntl.flock(lock, fcntl.LOCK_UN)
    summaries = {d["name"]: d for d in json.loads(done.read_text())}
    con = duckdb.connect(str(db), read_only=True)
    yield summaries, con, db
    con.close()


def test_every_dataset_is_loaded(loaded):
    summaries, _, _ = loaded
    assert set(summaries) == set(DATASETS)


@pytest.mark.parametrize("name", list(DATASETS))
def test_rows_read_match_manifest(loaded, data_dir, name):
    summaries, _, _ = loaded
    manifest = (data_dir / "MANIFEST.md").read_text(encoding="utf-8")
    s, spec = summaries[name], DATASETS[name]
    assert set(s["source_rows"]) == set(spec.files)
    for rel, n in s["source_rows"].items():
        assert n == manifest_rows(manifest, rel), rel
    assert spec.rows == manifest_rows(manifest, spec.files[0])
    if spec.kind == "applicants":
        assert s["applicants"] == spec.rows and s["events"] is None
    else:
        e = s["events"]
        per_line = 2 if name == "olist" else 1  # Olist: one purchase and one review per order line
        assert e["read"] == per_line * spec.rows
        assert e["read"] == e["accepted"] + e["rejected"] and e["inserted"] == e["accepted"]


def test_online_retail(loaded, data_dir):
    summaries, con, _ = loaded
    e = summaries["online_retail"]["events"]
    assert (e["read"], e["accepted"], e["rejected"]) == (541_909, 406_829, 135_080)
    assert e["by_reason"] == {"MISSING_REQUIRED": 135_080}
    assert con.execute("SELECT count(*) FROM rejects WHERE source = 'dataset:online_retail' "
                       "AND reason = 'MISSING_REQUIRED' AND detail = 'user_id is empty'").fetchone() == (135_080,)
    q = "SELECT count(DISTINCT user_id), count(DISTINCT order_id), min(ts), max(ts) FROM events WHERE platform = 'online_retail'"
    users, _orders, lo, hi = con.execute(q).fetchone()
    assert users == 4_372  # MANIFEST: 4,372 customers
    assert str(lo) == "2010-12-01 08:26:00" and str(hi) == "2011-12-09 12:50:00"
    assert con.execute("SELECT count(*) FROM users WHERE platform = 'online_retail'").fetchone() == (4_372,)
    # the raw canonical frame keeps every line: MANIFEST's invoice, stock code and quantity totals
    ev = read_dataset("online_retail", data_dir).events
    assert ev["order_id"].nunique() == 25_900 and ev["item_id"].nunique() == 4_070
    assert ev["order_id"].str.startswith("C").sum() == 9_288
    signed = ev["quantity"].where(ev["event_type"] == "purchase", -ev["quantity"])
    assert signed.sum() == 5_176_450
    assert (ev.loc[ev["order_id"].str.startswith("C"), "event_type"] == "refund").all()
    # amounts are line totals, never negative in the store
    assert con.execute("SELECT count(*) FROM events WHERE amount < 0").fetchone() == (0,)


def test_ta_feng(loaded):
    summaries, con, _ = loaded
    assert summaries["ta_feng"]["events"]["accepted"] == 817_741
    row = con.execute("""SELECT count(DISTINCT user_id), count(DISTINCT item_id), count(DISTINCT order_id),
                                sum(quantity), sum(amount), count(DISTINCT CAST(ts AS DATE)), min(ts), max(ts)
                         FROM events WHERE platform = 'ta_feng'""").fetchone()
    assert row[:6] == (32_266, 23_812, 119_578, 1_129_939, 107_840_076, 120)
    assert (str(row[6]), str(row[7])) == ("2000-11-01 00:00:00", "2001-02-28 00:00:00")
    months = dict(con.execute("SELECT month(ts), count(*) FROM events WHERE platform = 'ta_feng' GROUP BY 1").fetchall())
    assert months == {11: 223_622, 12: 178_216, 1: 216_864, 2: 199_039}
    assert con.execute("SELECT count(*), count(age_band) FROM users WHERE platform = 'ta_feng'").fetchone()[0] == 32_266
    assert summaries["ta_feng"]["users"] == 32_266


@pytest.mark.parametrize(("name", "customers", "spend", "first", "last"), [
    ("cdnow", 23_570, 2_500_315.63, "1997-01-01", "1998-06-30"),
    ("cdnow_sample", 2_357, 244_091.94, "1997-01-01", "1998-06-30"),
])
def test_cdnow(loaded, name, customers, spend, first, last):
    _, con, _ = loaded
    n, total, lo, hi = con.execute("SELECT count(DISTINCT user_id), sum(amount), min(ts)::DATE, max(ts)::DATE "
                                   "FROM events WHERE platform = ?", [name]).fetchone()
    assert n == customers and round(total, 2) == spend and (str(lo), str(hi)) == (first, last)


def test_taobao(loaded):
    _, con, _ = loaded
    counts = dict(con.execute("SELECT event_type, count(*) FROM events WHERE platform = 'taobao' GROUP BY 1").fetchall())
    assert counts == {"view": 75_693, "cart": 4_494, "favorite": 2_351, "purchase": 1_749}
    assert con.execute("SELECT count(DISTINCT user_id), count(amount) FROM events WHERE platform = 'taobao'"
                       ).fetchone() == (814, 0)


def test_olist(loaded):
    _, con, _ = loaded
    counts = dict(con.execute("SELECT event_type, count(*) FROM events WHERE platform = 'olist' GROUP BY 1").fetchall())
    assert counts == {"purchase": 3_584, "review": 3_584}
    assert con.execute("SELECT min(rating), max(rating) FROM events WHERE event_type = 'review' AND platform = 'olist'"
                       ).fetchone() == (1, 5)
    n, orders = con.execute("SELECT count(*), count(DISTINCT order_id) FROM order_payments").fetchone()
    assert (n, orders) == (103_886, 99_440)
    types = dict(con.execute("SELECT payment_type, count(*) FROM order_payments GROUP BY 1").fetchall())
    assert types == {"credit_card": 76_795, "boleto": 19_784, "voucher": 5_775, "debit_card": 1_529, "not_defined": 3}
    assert con.execute("SELECT min(installments), max(installments) FROM order_payments").fetchone() == (0, 24)


@pytest.mark.parametrize(("name", "rows", "bad_rate"), [
    ("give_me_some_credit", 150_000, 0.06684),
    ("taiwan_default", 30_000, 0.2212),
    ("german_credit", 1_000, 0.3),
])
def test_credit_tables(loaded, name, rows, bad_rate):
    _, con, _ = loaded
    n, rate, users, as_of = con.execute(f"SELECT count(*), avg(label), count(DISTINCT user_id), min(as_of) "
                                        f"FROM applicants_{name}").fetchone()
    assert (n, users) == (rows, rows) and round(rate, 5) == bad_rate
    cols = [r[0] for r in con.execute(f"DESCRIBE applicants_{name}").fetchall()]
    assert cols[:4] == ["user_id", "as_of", "label", "dataset"]
    assert set(DATASETS[name].sensitive) <= set(cols)
    assert as_of is not None


def test_credit_known_missing_values(data_dir):
    gmsc = read_applicants("give_me_some_credit", data_dir)
    assert gmsc["MonthlyIncome"].isna().sum() == 29_731 and gmsc["NumberOfDependents"].isna().sum() == 3_924
    assert "SeriousDlqin2yrs" not in gmsc.columns  # the label is only in `label`
    taiwan = read_applicants("taiwan_default", data_dir)
    assert taiwan["label"].sum() == 6_636 and "default payment next month" not in taiwan.columns


def test_reloading_changes_nothing(data_dir, tmp_path):
    with EventStore(tmp_path / "s.duckdb") as store:
        first = load_dataset("cdnow_sample", store, data_dir)
        counts = store.counts()
        again = load_dataset("cdnow_sample", store, data_dir)
        assert first.events is not None and again.events is not None
        assert first.events.inserted == 6_919 and again.events.already_ingested and again.events.inserted == 0
        assert store.counts() == counts


def test_list_json_says_which_files_are_present(data_dir, tmp_path):
    res = runner.invoke(app, ["datasets", "list", "--json", "--data-dir", str(data_dir)])
    d = json.loads(res.stdout)
    assert [x["name"] for x in d["datasets"]] == list(DATASETS) and all(x["present"] for x in d["datasets"])
    res = runner.invoke(app, ["datasets", "list", "--json", "--data-dir", str(tmp_path)])
    assert not any(x["present"] for x in json.loads(res.stdout)["datasets"])


def test_missing_files_are_a_friendly_error(tmp_path):
    res = runner.invoke(app, ["datasets", "load", "cdnow", "--data-dir", str(tmp_path), "--db", str(tmp_path / "s.db")])
    assert res.exit_code == 2 and "Traceback" not in res.stderr and res.stderr.count("\n") == 1
    msg = res.stderr
    assert "cdnow/cdnow_master.csv.gz" in msg and "docs/datasets.md" in msg and "--data-dir" in msg
    res = runner.invoke(app, ["datasets", "load", "nope", "--db", str(tmp_path / "s.db")])
    assert res.exit_code == 2 and "datasets list" in " ".join(res.stderr.split())


def test_original_text_formats_give_the_same_events(data_dir, tmp_path):
    """CDNOW_sample.txt (whitespace, no header) and Tianchi's headerless UserBehavior.csv, as first published."""
    import gzip

    with gzip.open(data_dir / "cdnow" / "cdnow_sample.csv.gz", "rt") as fh:
        (tmp_path / "CDNOW_sample.txt").write_text("".join("  ".join(line.rstrip("\n").split(",")) + "\n"
                                                          for line in list(fh)[1:]))
    with gzip.open(data_dir / "taobao_user_behavior_sample" / "taobao_userbehavior_first_users.csv.gz", "rt") as fh:
        (tmp_path / "UserBehavior.csv").write_text("".join(list(fh)[1:]))
    for name in ("cdnow_sample", "taobao"):
        want = read_dataset(name, data_dir).events
        got = read_dataset(name, tmp_path).events
        cols = ["event_id", "user_id", "event_type", "quantity", "amount"]
        cols = [c for c in cols if c in want.columns]
        assert len(got) == len(want)
        assert got[cols].astype(str).equals(want[cols].astype(str)), name
