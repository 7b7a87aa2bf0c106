"""Batch scoring as a user meets it: CSV ids, bad values, empty files, output paths, rejected events.

A stand-in bundle (``buyerscore.serving._testing``) is fitted on real CDNOW sample features; every
check compares what ``buyerscore score`` / :func:`score_file` wrote with what it should have written.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from buyerscore.cli import app
from buyerscore.datasets import load_dataset, read_dataset
from buyerscore.events.store import EventStore
from buyerscore.exceptions import SchemaError
from buyerscore.features import build_features
from buyerscore.pipeline import ScoringPipeline
from buyerscore.serving._testing import standin_bundle
from buyerscore.serving.batch import score_file

WINDOWS = (7, 30, 90, 365)
runner = CliRunner()


@pytest.fixture(scope="module")
def setup(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    """A registry with a stand-in bundle (power, anomaly) and real CDNOW sample features as of 1997-12-31."""
    d = tmp_path_factory.mktemp("batch-audit")
    with EventStore(d / "store.duckdb") as s:
        load_dataset("cdnow_sample", s, data_dir)
        standin_bundle(s.con, d / "registry", as_of="1997-06-30", kinds=("power_spend", "power_tier", "anomaly"),
                       n_estimators=10, windows=WINDOWS)
        feats = build_features(s.con, as_of="1997-12-31", windows=WINDOWS)
    return d / "registry", feats


def _text(r) -> str:  # type: ignore[no-untyped-def]
    return " ".join(r.output.split())


def test_csv_input_keeps_numeric_looking_ids_and_scores_like_parquet(setup, tmp_path: Path) -> None:
    """DuckDB's CSV sniffing read ids such as 9007199254740993 as numbers: the output had 9007199254740992.0
    (ids above 2**53 rounded, longer ones as 9.87e+19), so scores could not be joined back to users."""
    reg, feats = setup
    f = feats.head(300).copy()
    ids = ["9007199254740993", "98765432109876543210", "12345678901234567890123456789"]
    f["user_id"] = ids + [str(10**17 + i) for i in range(len(f) - len(ids))]
    f.to_csv(tmp_path / "f.csv", index=False)
    f.to_parquet(tmp_path / "f.parquet", index=False)
    pipe = ScoringPipeline.from_registry(reg)
    score_file(pipe, tmp_path / "f.csv", tmp_path / "c.parquet", chunk_rows=100, n_jobs=2, reasons=False)
    score_file(pipe, tmp_path / "f.parquet", tmp_path / "p.parquet", chunk_rows=100, n_jobs=2, reasons=False)
    c, p = pd.read_parquet(tmp_path / "c.parquet"), pd.read_parquet(tmp_path / "p.parquet")
    assert c["user_id"].tolist() == f["user_id"].tolist()
    pd.testing.assert_frame_equal(c, p)


def test_json_lines_ids_keep_all_digits(setup, tmp_path: Path) -> None:
    """The same for JSON lines of features (ids sent as JSON numbers keep all their digits)."""
    reg, feats = setup
    f = feats.head(50).copy()
    f["user_id"] = [9007199254740993 + i for i in range(len(f))]
    f.to_json(tmp_path / "f.jsonl", orient="records", lines=True)
    pipe = ScoringPipeline.from_registry(reg)
    score_file(pipe, tmp_path / "f.jsonl", tmp_path / "j.parquet", reasons=False)
    assert pd.read_parquet(tmp_path / "j.parquet")["user_id"].tolist() == [str(u) for u in f["user_id"]]


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_a_non_number_is_named_with_column_row_and_value(setup, tmp_path: Path, n_jobs: int) -> None:
    """Was: "Feature column(s) ['recency_days'] are not numeric (dtype str)" -- no row, no value."""
    reg, feats = setup
    f = feats.head(1200).copy()
    f["recency_days"] = f["recency_days"].astype(object)
    f.loc[1033, "recency_days"] = "n/a"
    f.loc[1100, "recency_days"] = "?"
    f.to_csv(tmp_path / "f.csv", index=False)
    pipe = ScoringPipeline.from_registry(reg)
    with pytest.raises(SchemaError, match=r"f\.csv: column 'recency_days' must hold numbers, but row 1034 has "
                       r"'n/a' \(2 such values in rows 1001-1200, e\.g\. rows 1034, 1101\)"):
        score_file(pipe, tmp_path / "f.csv", tmp_path / "s.parquet", chunk_rows=200, n_jobs=n_jobs)
    assert not (tmp_path / "s.parquet").exists() and not (tmp_path / "s.parquet.partial").exists()
    f.loc[[1033, 1100], "recency_days"] = " 12.5 "  # numbers written as text are still read as numbers
    f.to_csv(tmp_path / "g.csv", index=False)
    assert score_file(pipe, tmp_path / "g.csv", tmp_path / "s.parquet", chunk_rows=200, n_jobs=n_jobs).rows == 1200


@pytest.mark.parametrize("reasons", [False, True])
def test_empty_input_gives_the_columns_of_a_non_empty_one(setup, tmp_path: Path, reasons: bool) -> None:
    """Was: an empty file gave credit columns the input could not feed, power_tier as double, no reason
    columns and float ids, so daily outputs could not be concatenated."""
    reg, feats = setup
    pipe = ScoringPipeline.from_registry(reg)
    feats.head(50).to_parquet(tmp_path / "full.parquet", index=False)
    feats.head(0).to_parquet(tmp_path / "empty.parquet", index=False)
    feats.head(0).to_csv(tmp_path / "empty.csv", index=False)
    score_file(pipe, tmp_path / "full.parquet", tmp_path / "full_s.parquet", reasons=reasons)
    want = pq.read_schema(tmp_path / "full_s.parquet").remove_metadata()
    for name in ("empty.parquet", "empty.csv"):
        s = score_file(pipe, tmp_path / name, tmp_path / "s.parquet", reasons=reasons)
        assert s.rows == 0
        assert pq.read_schema(tmp_path / "s.parquet").remove_metadata() == want, name


def test_output_paths_that_would_lose_data_are_refused_before_scoring(setup, tmp_path: Path) -> None:
    reg, feats = setup
    pipe = ScoringPipeline.from_registry(reg)
    src = tmp_path / "f.parquet"
    feats.head(20).to_parquet(src, index=False)
    before = src.read_bytes()
    with pytest.raises(ValueError, match="is the input file"):  # was: the features replaced by their scores
        score_file(pipe, src, src)
    assert src.read_bytes() == before
    (tmp_path / "folder").mkdir()
    with pytest.raises(ValueError, match="is a folder; give a file path"):  # was: IsADirectoryError after scoring
        score_file(pipe, src, tmp_path / "folder")
    with pytest.raises(ValueError, match=r"written as Parquet, not CSV; name the output s\.parquet"):
        score_file(pipe, src, tmp_path / "s.csv")  # was: Parquet bytes in a file named .csv
    assert not (tmp_path / "s.csv").exists()
    # a missing parent folder is created (was: "Failed to open local file '.../s.parquet.partial'")
    assert score_file(pipe, src, tmp_path / "new" / "dir" / "s.parquet").rows == 20
    # an existing output is replaced, atomically, once the run is complete
    assert score_file(pipe, src, tmp_path / "new" / "dir" / "s.parquet").rows == 20
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(SchemaError, match="is empty"):
        score_file(pipe, tmp_path / "empty.csv", tmp_path / "e.parquet")


def test_cli_reports_rejected_events_and_the_bundle_version(data_dir: Path, setup, tmp_path: Path) -> None:
    """Raw events with unusable rows: the run used to report nothing about them outside --json."""
    reg, _ = setup
    ev = read_dataset("cdnow_sample", data_dir).events.head(400).copy()
    ev.loc[[3, 7], "ts"] = None
    ev.to_csv(tmp_path / "ev.csv", index=False)
    r = runner.invoke(app, ["score", "--registry", str(reg), "--input", str(tmp_path / "ev.csv"), "--as-of",
                            "1997-12-31", "--out", str(tmp_path / "s.parquet")])
    assert r.exit_code == 0, r.output
    assert "events rejected: 2 (MISSING_REQUIRED: 2)" in _text(r)
    s = pd.read_parquet(tmp_path / "s.parquet")
    assert set(s["model_version"]) == {"v1"}
    assert len(s) == ev.drop(index=[3, 7])["user_id"].nunique()
