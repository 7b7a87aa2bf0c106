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
