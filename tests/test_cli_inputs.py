"""Command-line inputs a user gets wrong: ambiguous dates, unknown platforms, a label window past the data."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from buyerscore.cli import app
from buyerscore.cli._common import parse_cutoff
from buyerscore.events.store import EventStore

runner = CliRunner()


def _text(r) -> str:  # type: ignore[no-untyped-def]
    return " ".join(r.output.split())


@pytest.fixture(scope="module")
def store(cdnow_sample_db: Path) -> Path:
    return cdnow_sample_db


@pytest.mark.parametrize(("text", "want"), [("1997-09-30", "1997-09-30"), ("30/09/1997", "1997-09-30"),
                                            ("09/30/1997", "1997-09-30"), ("05/05/1997", "1997-05-05"),
                                            ("1997-09-30T12:00:00+02:00", "1997-09-30 10:00:00")])
def test_unambiguous_cutoffs_parse(text: str, want: str) -> None:
    assert str(parse_cutoff(text)).startswith(want)


@pytest.mark.parametrize("text", ["01/09/1997", "1.9.1997", "12/01/97"])
def test_ambiguous_cutoff_is_refused_with_both_readings(text: str) -> None:
    with pytest.raises(ValueError, match="ambiguous") as e:
        parse_cutoff(text)
    assert str(e.value).count("-") >= 4  # both ISO readings are offered


def test_features_refuses_ambiguous_date_and_unknown_platform(store: Path, tmp_path: Path) -> None:
    r = runner.invoke(app, ["features", "--db", str(store), "--cutoff", "01/09/1997", "--out", str(tmp_path / "f.parquet")])
    assert r.exit_code == 2 and "1997-09-01 or 1997-01-09" in _text(r)
    r = runner.invoke(app, ["features", "--db", str(store), "--cutoff", "1997-09-30", "--platform", "cdnw",
                            "--out", str(tmp_path / "f.parquet")])
    assert r.exit_code == 2 and "cdnw" in _text(r) and "'cdnow_sample'" in _text(r)
    assert not (tmp_path / "f.parquet").exists()


def test_power_train_label_window_past_the_data(store: Path, tmp_path: Path) -> None:
    with EventStore(store, read_only=True) as s:
        last = str(s.con.execute("SELECT CAST(MAX(ts) AS DATE) FROM events").fetchone()[0])
    r = runner.invoke(app, ["power", "train", "--db", str(store), "--cutoff", last, "--horizon", "90",
                            "--out", str(tmp_path / "m")])
    assert r.exit_code == 2 and "No spend in the label window" in _text(r) and "Move --cutoff" in _text(r)
    assert not (tmp_path / "m").exists()
    r = runner.invoke(app, ["power", "train", "--db", str(store), "--cutoff", "1998-03-31", "--horizon", "273",
                            "--out", str(tmp_path / "m2"), "--no-tiers", "--json"])
    assert r.exit_code == 0, r.output
    assert "only 91 of its 273 days are observed" in _text(r)


def test_small_usage_errors_exit_2_without_traceback(tmp_path: Path) -> None:
    r = runner.invoke(app, ["serve-key", "--keys-file", str(tmp_path)])
    assert r.exit_code == 2 and "is a folder" in _text(r)
    r = runner.invoke(app, ["datasets", "load", "cdnow", "--data-dir", str(tmp_path / "nowhere"),
                            "--db", str(tmp_path / "new.duckdb")])
    assert r.exit_code == 2 and "not found" in _text(r)
    assert not (tmp_path / "new.duckdb").exists()  # a failed first load leaves no empty store
    r = runner.invoke(app, ["score", "--registry", str(tmp_path / "no-registry"), "--input", "x.parquet",
                            "--out", str(tmp_path / "s.parquet")])
    assert r.exit_code == 2 and "does not exist" in _text(r)
    r = runner.invoke(app, ["audit", "fairness", "--model", str(tmp_path), "--data", "x.csv", "--threshold", "1.5"])
    assert r.exit_code == 2 and "strictly between 0 and 1" in _text(r), r.output
