"""Common pieces of the dataset adapters."""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pandas as pd

from buyerscore.exceptions import DatasetNotFoundError

logger = logging.getLogger("buyerscore.datasets")

ORIGINAL_NAMES: dict[str, tuple[str, ...]] = {}
"""Relative path of a dataset file -> the names its original public form is published under (``resolve``
accepts them too, after the CSV form); each adapter module registers its own."""

_on_step: contextvars.ContextVar[Callable[[str], None] | None] = contextvars.ContextVar("buyerscore_dataset_step",
                                                                                       default=None)


@contextlib.contextmanager
def reporting_to(on_step: Callable[[str], None] | None) -> Iterator[None]:
    """Send the adapters' progress messages (:func:`report`) to ``on_step`` inside the block."""
    token = _on_step.set(on_step)
    try:
        yield
    finally:
        _on_step.reset(token)


def report(message: str) -> None:
    """A progress message of a slow read: logged at INFO, and shown by ``load_dataset``'s ``on_step``."""
    logger.info("%s", message)
    cb = _on_step.get()
    if cb is not None:
        cb(message)


@dataclass(frozen=True)
class DatasetSpec:
    """A public dataset buyerscore can read from its original file format.

    Attributes
    ----------
    name : str
        Name used on the command line (``buyerscore datasets load NAME``).
    kind : {"events", "applicants"}
        Behaviour log (canonical events, maybe user attributes) or credit applicant table.
    files : tuple of str
        Paths relative to the data directory, as downloaded (gzip allowed).
    rows : int
        Data rows of the main file (first of ``files``), as in MANIFEST.md.
    description : str
        One line on what it is and how it maps to the canonical tables.
    sensitive : tuple of str
        Columns holding protected attributes: used for fairness audits, never as model inputs
        unless the user opts in.
    """

    name: str
    kind: Literal["events", "applicants"]
    files: tuple[str, ...]
    rows: int
    description: str
    reader: Callable[[Path], DatasetFrames] = field(repr=False, compare=False)
    sensitive: tuple[str, ...] = ()
    platform: str = ""


@dataclass
class DatasetFrames:
    """What an adapter produces: canonical raw events and/or applicants, users, side tables.

    Attributes
    ----------
    events : DataFrame, optional
        Raw canonical events (not yet validated; they go through the same validation as ``ingest``).
    applicants : DataFrame, optional
        Canonical applicant table (``user_id, as_of, label, dataset`` + predictors).
    users : DataFrame, optional
        User attributes (``user_id, platform, age_band, sex, region``).
    side_tables : dict
        Extra tables stored under their name (e.g. Olist ``order_payments``).
    source_rows : dict
        Data rows read from each original file (relative path -> rows), to check against MANIFEST.md.
    """

    events: pd.DataFrame | None = None
    applicants: pd.DataFrame | None = None
    users: pd.DataFrame | None = None
    side_tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    source_rows: dict[str, int] = field(default_factory=dict)


def default_data_dir() -> Path:
    """``$BUYERSCORE_DATA_DIR`` if set, else the first of ``../shared/data``, ``./shared/data`` and the
    ``shared/data`` folder beside the checkout that exists (``../shared/data`` when none does)."""
    env = os.environ.get("BUYERSCORE_DATA_DIR")
    if env:
        return Path(env)
    for cand in (Path.cwd().parent / "shared" / "data", Path.cwd() / "shared" / "data",
                 Path(__file__).resolve().parents[3] / "shared" / "data"):
        if cand.exists():
            return cand
    return Path("../shared/data")


def is_excel(path: Path) -> bool:
    """Named as an Excel workbook (``.xlsx``, ``.xlsm``, ``.xls``; gzipped or not)."""
    return Path(path.name.lower().removesuffix(".gz")).suffix in (".xlsx", ".xlsm", ".xls")


def resolve(data_dir: str | Path, rel: str, dataset: str, alternates: tuple[str, ...] = ()) -> Path:
    """Find ``rel`` under ``data_dir``, also accepting the uncompressed name, a flat layout, or an
    alternate original file name (e.g. ``CDNOW_master.txt`` as distributed by its authors, ``Online
    Retail.xlsx`` as published by UCI): ``alternates`` and the names :data:`ORIGINAL_NAMES` holds for
    ``rel``, each gzipped or not, at its own path or directly in ``data_dir``.  The CSV form wins when
    several are present.

    Raises
    ------
    DatasetNotFoundError
        None of the names exists; the message says which names were tried and where to get them.
    """
    d = Path(data_dir)
    alternates = tuple(dict.fromkeys((*alternates, *ORIGINAL_NAMES.get(rel, ()))))
    candidates: list[Path] = []
    for name in (rel, *alternates):
        path = Path(name)
        candidates += [d / path, d / path.name]
        if name.endswith(".gz"):
            candidates += [d / name.removesuffix(".gz"), d / path.name.removesuffix(".gz")]
        else:
            candidates += [d / (name + ".gz"), d / (path.name + ".gz")]
    for c in candidates:
        if c.is_file():
            return c
    also = f" (or {', '.join(alternates)})" if alternates else ""
    raise DatasetNotFoundError(
        f"Dataset {dataset!r}: file {rel}{also} not found under {d}. Download it (see docs/datasets.md) "
        f"and pass --data-dir pointing at its parent folder."
    )
