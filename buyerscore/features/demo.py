"""The ``buyerscore demo`` pipeline: data -> store -> features (and labels) -> summary.

This issue's version stops after features and labels; later steps (training, scoring, the HTML
report) extend :func:`run_demo` by adding stages that read :class:`DemoResult`.

Without ``data_dir`` it generates synthetic shoppers (:mod:`buyerscore.testing.synthetic`); with
``data_dir`` it loads real public datasets (:data:`REAL_DATASETS`) and builds features per platform,
each at its own documented cut-off.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from buyerscore.events.store import EventStore
from buyerscore.features.build import build_features, build_labels
from buyerscore.features.definitions import DEFAULT_WINDOWS
from buyerscore.testing.synthetic import SyntheticData

logger = logging.getLogger(__name__)

Progress = Callable[[str], AbstractContextManager[object]]


@dataclass(frozen=True)
class DemoDataset:
    """A real dataset in the demo: its cut-off and label horizon (days)."""

    name: str
    as_of: str
    horizon_days: int
    why: str


REAL_DATASETS: tuple[DemoDataset, ...] = (
    DemoDataset("cdnow", "1997-09-30", 90, "39 weeks of calibration as in Fader, Hardie & Lee (2005); next quarter"),
    DemoDataset("ta_feng", "2000-12-31", 59, "Nov-Dec 2000 as history, Jan-Feb 2001 as the label window"),
    DemoDataset("taobao", "2017-12-01", 3, "first week as history, last days as the label window (no prices)"),
)
SYNTHETIC_START = "2024-01-01"
SYNTHETIC_AS_OF = "2024-10-01"
SYNTHETIC_HORIZON = 90


@dataclass
class DemoResult:
    """What :func:`run_demo` produced (paths, frames and a per-platform summary)."""

    out_dir: Path
    db_path: Path
    features_path: Path
    labels_path: Path
    features: pd.DataFrame
    labels: pd.DataFrame
    summary: pd.DataFrame
    cutoffs: dict[str, str] = field(default_factory=dict)
    source: str = "synthetic"
    synthetic: SyntheticData | None = None
    """The generated events, user attributes and latent traits (synthetic runs only)."""


@contextmanager
def _quiet(_: str) -> Iterator[None]:
    yield


def summarise(features: pd.DataFrame, labels: pd.DataFrame, cutoffs: dict[str, str], horizons: dict[str, int],
              events_per_platform: dict[str, int]) -> pd.DataFrame:
    """One row per platform: users, events, purchasers, spend before and after the cut-off."""
    df = features.merge(labels, on=["platform", "user_id"], how="left")
    rows = []
    for plat, g in df.groupby("platform", sort=True):
        buyers = g["n_purchases"] > 0
        unpriced = bool(buyers.any()) and g.loc[buyers, "monetary_sum"].isna().all()  # e.g. Taobao: no amounts
        both = g[["monetary_sum", "future_spend"]].dropna()
        rows.append({
            "platform": plat, "as_of": cutoffs.get(str(plat), ""), "horizon_days": horizons.get(str(plat), 0),
            "events": events_per_platform.get(str(plat), 0), "users": len(g),
            "purchasers": int((g["n_purchases"] > 0).sum()),
            "mean_spend_before": float("nan") if unpriced else float(g["monetary_sum"].mean()),
            "future_buyers_share": float(g["future_purchase"].mean()),
            "mean_future_spend": float("nan") if unpriced else float(g["future_spend"].mean()),
            # no rank correlation of a constant (scipy warns and returns NaN)
            "spend_corr": float(both["monetary_sum"].corr(both["future_spend"], method="spearman"))
            if len(both) > 2 and both.nunique().min() > 1 and not unpriced else float("nan"),
        })
    return pd.DataFrame(rows)


def run_demo(
    out_dir: str | Path, data_dir: str | Path | None = None, *, n_users: int = 2000, seed: int = 0,
    windows: tuple[int, ...] = DEFAULT_WINDOWS, datasets: tuple[DemoDataset, ...] = REAL_DATASETS,
    progress: Progress | None = None,
) -> DemoResult:
    """Generate (or load) data, ingest it into ``out_dir/buyerscore.duckdb``, build features and labels.

    Parameters
    ----------
    out_dir : path
        Folder for ``buyerscore.duckdb``, ``features.parquet`` and ``labels.parquet``.
    data_dir : path, optional
        Folder of the real public datasets (``../shared/data``); synthetic data when omitted.
    n_users : int
        Synthetic users (ignored with ``data_dir``).
    seed : int
        Seed of the synthetic generator.
    windows : tuple of int
        Feature windows in days.
    datasets : tuple of DemoDataset
        Real datasets to load with ``data_dir``.
    progress : callable, optional
        ``progress(description)`` returning a context manager wrapped around each step (the CLI shows a
        spinner); silent by default.

    Returns
    -------
    DemoResult
    """
    step = progress or _quiet
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    db_path = out / "buyerscore.duckdb"
    feats, labs = [], []
    data: SyntheticData | None = None
    cutoffs: dict[str, str] = {}
    horizons: dict[str, int] = {}
    with EventStore(db_path) as store:
        if data_dir is None:
            from buyerscore.testing.synthetic import generate_events

            with step(f"generating {n_users:,} synthetic shoppers"):
                data = generate_events(n_users, seed=seed, start=SYNTHETIC_START)
            with step(f"ingesting {len(data.events):,} events"):
                store.ingest_frame(data.events, source=f"synthetic:seed={seed}:users={n_users}")
                store.write_users(data.users)
            plan = [("synthetic", SYNTHETIC_AS_OF, SYNTHETIC_HORIZON)]
            source = "synthetic"
        else:
            from buyerscore.datasets import load_dataset

            for ds in datasets:
                with step(f"loading {ds.name}"):
                    load_dataset(ds.name, store, data_dir)
            plan = [(ds.name, ds.as_of, ds.horizon_days) for ds in datasets]
            source = str(data_dir)
        for platform, as_of, horizon in plan:
            with step(f"features of {platform} as of {as_of}"):
                feats.append(build_features(store.con, as_of=as_of, windows=windows, platforms=platform))
                labs.append(build_labels(store.con, as_of=as_of, horizon_days=horizon, platforms=platform))
            cutoffs[platform], horizons[platform] = as_of, horizon
        counts = dict(store.con.execute("SELECT platform, COUNT(*) FROM events GROUP BY platform").fetchall())
    features = pd.concat(feats, ignore_index=True)
    labels = pd.concat(labs, ignore_index=True)
    features_path, labels_path = out / "features.parquet", out / "labels.parquet"
    features.to_parquet(features_path, index=False)
    labels.to_parquet(labels_path, index=False)
    summary = summarise(features, labels, cutoffs, horizons, {str(k): int(v) for k, v in counts.items()})
    logger.info("demo wrote %s and %s", features_path, labels_path)
    return DemoResult(out, db_path, features_path, labels_path, features, labels, summary, cutoffs, source,
                      data)
