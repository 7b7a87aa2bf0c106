"""Adapters that read public datasets from their original file formats into the canonical tables.

>>> [s.name for s in list_datasets()][:3]
['cdnow', 'cdnow_sample', 'online_retail']
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from buyerscore.datasets import credit, shops
from buyerscore.datasets._base import DatasetFrames, DatasetSpec, default_data_dir, reporting_to, resolve
from buyerscore.events.store import EventStore, IngestSummary
from buyerscore.exceptions import SchemaError

DATASETS: dict[str, DatasetSpec] = {s.name: s for s in (*shops.SPECS, *credit.SPECS)}


def list_datasets() -> list[DatasetSpec]:
    """All datasets with an adapter, behaviour logs first."""
    return list(DATASETS.values())


def get_spec(name: str) -> DatasetSpec:
    try:
        return DATASETS[name]
    except KeyError:
        raise SchemaError(f"Unknown dataset {name!r}; known: {sorted(DATASETS)} (see 'buyerscore datasets list').") from None


def read_dataset(name: str, data_dir: str | Path | None = None) -> DatasetFrames:
    """Read a dataset into canonical frames without storing it."""
    return get_spec(name).reader(Path(data_dir) if data_dir else default_data_dir())


def read_applicants(name: str, data_dir: str | Path | None = None) -> pd.DataFrame:
    """The canonical applicant table of a credit dataset (``user_id, as_of, label, dataset`` + predictors).

    Examples
    --------
    >>> app = read_applicants("german_credit")  # doctest: +SKIP
    >>> app["label"].mean()  # doctest: +SKIP
    0.3
    """
    spec = get_spec(name)
    if spec.kind != "applicants":
        raise SchemaError(f"Dataset {name!r} is a behaviour log, not an applicant table.")
    frames = read_dataset(name, data_dir)
    if frames.applicants is None:  # pragma: no cover - every applicant adapter sets it
        raise SchemaError(f"Dataset {name!r} produced no applicant table.")
    return frames.applicants


@dataclass
class LoadSummary:
    """What ``load_dataset`` wrote."""

    name: str
    events: IngestSummary | None = None
    applicants: int = 0
    users: int = 0
    side_tables: dict[str, int] = field(default_factory=dict)
    source_rows: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "events": self.events.to_dict() if self.events else None,
                "applicants": self.applicants, "users": self.users, "side_tables": self.side_tables,
                "source_rows": self.source_rows}


def load_dataset(
    name: str, store: EventStore, data_dir: str | Path | None = None, *, on_step: Callable[[str], None] | None = None,
) -> LoadSummary:
    """Read a dataset and write it to the store in one transaction.

    Events go through the same validation as ``buyerscore ingest`` (bad rows to ``rejects``);
    applicants replace ``applicants_<name>``; users are upserted; side tables replaced.  Loading
    the same dataset again changes nothing (same batch id, same event ids).

    Parameters
    ----------
    name : str
        A key of :data:`DATASETS`.
    store : EventStore
        Where to write.
    data_dir : str or Path, optional
        Folder with the downloaded files; default :func:`default_data_dir`.
    on_step : callable, optional
        Called with a short description as each step starts (progress displays), and with the row count
        every 50,000 rows while an Excel sheet is read.

    Examples
    --------
    >>> store = EventStore(":memory:")
    >>> s = load_dataset("cdnow_sample", store)  # doctest: +SKIP
    >>> (s.events.read, s.events.rejected)  # doctest: +SKIP
    (6919, 0)
    """
    spec = get_spec(name)
    step = on_step or (lambda _msg: None)
    step(f"{name}: reading {', '.join(Path(f).name for f in spec.files)}")
    with reporting_to(step):  # slow reads (an Excel sheet) report their progress
        frames = read_dataset(name, data_dir)
    out = LoadSummary(name=name, source_rows=dict(frames.source_rows))
    with store.transaction() as con:
        if frames.events is not None:
            out.events = store.ingest_frame(frames.events, source=f"dataset:{name}",
                                            default_platform=spec.platform or name, on_step=lambda m: step(f"{name}: {m}"))
        step(f"{name}: writing tables")
        if frames.applicants is not None:
            store.write_applicants(name, frames.applicants)
            out.applicants = len(frames.applicants)
        if frames.users is not None:
            out.users = store.write_users(frames.users)
        for tname, df in frames.side_tables.items():
            con.register("_side", df)
            try:
                con.execute(f'CREATE OR REPLACE TABLE "{tname}" AS SELECT * FROM _side')
            finally:
                con.unregister("_side")
            out.side_tables[tname] = len(df)
    return out


__all__ = ["DATASETS", "DatasetFrames", "DatasetSpec", "LoadSummary", "default_data_dir", "get_spec",
           "list_datasets", "load_dataset", "read_applicants", "read_dataset", "resolve"]
