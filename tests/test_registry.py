"""Model registry: versioned bundles, explicit promotion with an atomic pointer, round trips."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression

from buyerscore.pipeline import ScoringPipeline
from buyerscore.registry import PROMOTED_FILE, ModelEntry, ModelRegistry, RegistryError


def _entry(slope: float = 2.0) -> ModelEntry:
    X = pd.DataFrame({"x": [0.0, 1.0, 2.0]})
    return ModelEntry(LinearRegression().fit(X, slope * X["x"]), ["x"], metrics={"r2": 1.0})


def test_create_list_show_promote(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path / "reg")
    assert reg.list() == [] and reg.promoted() is None
    v1 = reg.create({"power_spend": _entry()}, as_of="2024-01-01", training_data_hash="h1",
                    feature_spec={"x": {"description": "an input"}}, config={"features": {"windows": [7]}})
    v2 = reg.create({"power_spend": _entry(3.0)}, as_of="2024-02-01", training_data_hash="h2")
    assert (v1, v2) == ("v1", "v2") and reg.promoted() is None  # creation never promotes
    with pytest.raises(RegistryError, match="No promoted bundle"):
        reg.load()
    reg.promote(v1)
    m = reg.show()
    assert m["version"] == "v1" and m["promoted"] and m["training_data_hash"] == "h1"
    assert m["as_of"] == "2024-01-01" and m["feature_spec"]["x"]["description"] == "an input"
    assert m["models"]["power_spend"]["features"] == ["x"] and m["models"]["power_spend"]["metrics"] == {"r2": 1.0}
    assert m["created_at"].endswith("+00:00")
    reg.promote(v2)
    assert [(r["version"], r["promoted"]) for r in reg.list()] == [("v1", False), ("v2", True)]
    assert (tmp_path / "reg" / PROMOTED_FILE).read_text() == "v2\n"
    assert not [p for p in (tmp_path / "reg").rglob("*") if p.name.endswith(".tmp") or ".staging" in p.name]


def test_load_round_trip_scores_identically(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path)
    e = _entry(2.5)
    reg.promote(reg.create({"power_spend": e}, as_of="2024-01-01", training_data_hash="h",
                           config={"features": {"windows": [7, 30]}}))
    X = pd.DataFrame({"user_id": ["a", "b"], "x": [1.0, 4.0]})
    p = ScoringPipeline.from_registry(tmp_path)
    np.testing.assert_allclose(p.score_frame(X)["power_expected_spend"], e.model.predict(X[["x"]]))
    assert p.version == "v1" and p.windows == (7, 30)


def test_bundle_records_no_training_rows(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path)
    v = reg.create({"power_spend": _entry()}, as_of=None, training_data_hash="abc")
    meta = json.loads((tmp_path / "versions" / v / "models" / "power_spend" / "metadata.json").read_text())
    assert meta["training_data_hash"] == "abc" and meta["features"] == ["x"]
    assert sum(f.stat().st_size for f in (tmp_path / "versions" / v).rglob("*") if f.is_file()) < 20_000


@pytest.mark.parametrize("call, match", [
    (lambda r: r.create({}, as_of=None, training_data_hash=""), "at least one model"),
    (lambda r: r.create({"oracle": _entry()}, as_of=None, training_data_hash=""), "Unknown model kind"),
    (lambda r: r.promote("v9"), "No bundle 'v9'"),
    (lambda r: r.show("v9"), "No bundle 'v9'"),
])
def test_errors(tmp_path: Path, call, match: str) -> None:
    with pytest.raises(RegistryError, match=match):
        call(ModelRegistry(tmp_path))


def test_concurrent_creates_get_distinct_versions(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path)
    out: list[str] = []
    lock = threading.Lock()

    def work() -> None:
        v = ModelRegistry(tmp_path).create({"power_spend": _entry()}, as_of=None, training_data_hash="h")
        with lock:
            out.append(v)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(out, key=lambda v: int(v[1:])) == [f"v{i}" for i in range(1, 7)]
    assert [r["version"] for r in reg.list()] == [f"v{i}" for i in range(1, 7)]
