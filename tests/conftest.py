"""Shared fixtures: the real-data folder (fails loudly under CI when missing) and temporary stores."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from buyerscore.datasets import default_data_dir
from buyerscore.events.store import EventStore


@pytest.fixture(scope="session")
def data_dir() -> Path:
    d = default_data_dir()
    if not (d / "MANIFEST.md").exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"real data not found at {d}: CI needs ../shared/data beside the repository")
        pytest.skip(f"real data not found at {d}")
    return d


@pytest.fixture()
def store(tmp_path: Path) -> EventStore:
    s = EventStore(tmp_path / "store.duckdb")
    yield s
    s.close()


@pytest.fixture(scope="module")
def cdnow_sample_db(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store holding the CDNOW 1/10 sample (2,357 customers, 1997-01..1998-06); one per test module."""
    from buyerscore.datasets import load_dataset

    db = tmp_path_factory.mktemp("cdnow_sample") / "cdnow.duckdb"
    with EventStore(db) as s:
        load_dataset("cdnow_sample", s, data_dir)
    return db
