"""Point-in-time features and batch scoring on Spark, for event logs one machine cannot hold.

The features are the same SQL text as on DuckDB (:func:`buyerscore.features.feature_sql` with
``dialect="spark"``), run by Spark SQL on canonical events (the ``events`` table that ``buyerscore
ingest`` validates and ``buyerscore export`` writes to Parquet).  Scoring runs the bundle's
:class:`~buyerscore.pipeline.ScoringPipeline` on every partition with ``mapInPandas``: each Python
worker loads the bundle from the registry folder once, so the registry must be readable from every
executor (a shared or object-store path on a cluster; any local path with ``local[*]``).

Needs the ``[spark]`` extra (``pip install "buyerscore[spark]"``) and a Java 17 runtime; the command
line installs pyspark itself when it is missing (:func:`ensure_pyspark`).

Examples
--------
>>> from buyerscore.spark import spark_session, build_features_spark   # doctest: +SKIP
>>> spark = spark_session()                                            # doctest: +SKIP
>>> F = build_features_spark(spark, "export/events.parquet", as_of="1997-09-30")  # doctest: +SKIP
>>> F.write.parquet("features/")                                       # doctest: +SKIP
"""

from __future__ import annotations

import itertools
import logging
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from buyerscore.exceptions import SchemaError

logger = logging.getLogger(__name__)

EVENT_COLUMNS = ("platform", "user_id", "ts", "event_type", "amount")
"""Columns the feature SQL cannot do without (the other canonical columns may be missing or null)."""

PYSPARK = "pyspark>=3.5,<4"
"""The ``[spark]`` extra's requirement (Spark 4 turns ANSI mode on, where the feature SQL's divisions by
zero would raise instead of giving NULL as on DuckDB)."""

_views = itertools.count()
_PIPELINES: dict[tuple[str, str | None], Any] = {}  # per Python worker: (registry, version) -> pipeline


def ensure_pyspark(*, install: bool = True) -> None:
    """Import pyspark, installing the ``[spark]`` extra's ``pyspark>=3.5`` with pip first when it is
    missing and ``install`` is true; a clear error when that is not possible."""
    try:
        import pyspark  # noqa: F401 - the import is the check
        return
    except ImportError:
        if not install:
            raise ImportError("Spark support needs pyspark: pip install 'buyerscore[spark]' (and Java 17).") from None
    logger.warning("pyspark is not installed; installing it now (pip install '%s')", PYSPARK)
    r = subprocess.run([sys.executable, "-m", "pip", "install", PYSPARK], capture_output=True, text=True,
                       check=False)
    if r.returncode != 0:
        raise ImportError(f"Installing pyspark failed ({r.stderr.strip()[-300:]}); install it yourself with "
                          "pip install 'buyerscore[spark]'.")
    import importlib

    importlib.invalidate_caches()
    importlib.import_module("pyspark")  # fails here, not later, if the install did not take


def spark_session(master: str = "local[*]", app_name: str = "buyerscore", **conf: str) -> Any:
    """A Spark session (the active one, or a new one on ``master``) with UTC as the SQL time zone.

    The features compare timestamps with epoch seconds of the cut-off, as DuckDB does in UTC, so the
    session time zone must be UTC; ``conf`` adds other settings (``spark.executor.memory`` ...).
    """
    ensure_pyspark(install=False)
    from pyspark.sql import SparkSession

    # scoring runs Python on the executors: by default the interpreter with buyerscore (in local mode,
    # the PATH's python3 may lack pandas); PYSPARK_PYTHON set by the user wins
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)

    b = (SparkSession.builder.master(master).appName(app_name).config("spark.sql.session.timeZone", "UTC")
         .config("spark.sql.ansi.enabled", "false").config("spark.ui.enabled", "false"))
    for k, v in conf.items():
        b = b.config(k, v)
    spark = b.getOrCreate()
    spark.conf.set("spark.sql.session.timeZone", "UTC")
    return spark


def _events(spark: Any, events: Any) -> Any:
    """A Spark DataFrame of canonical events from a DataFrame or a Parquet path (file or folder)."""
    if isinstance(events, (str, Path)):
        p = Path(events)
        if not p.exists():
            raise FileNotFoundError(f"{p} does not exist; write canonical events with 'buyerscore export --db STORE "
                                    "--out DIR' (DIR/events.parquet).")
        events = spark.read.parquet(str(p))
    missing = [c for c in EVENT_COLUMNS if c not in events.columns]
    if missing:
        raise SchemaError(f"Spark events lack column(s) {missing}; the features read canonical events (validated by "
                          "'buyerscore ingest', exported by 'buyerscore export').")
    from pyspark.sql import functions as sf

    from buyerscore.events.schema import EVENT_FIELDS

    # canonical columns the input lacks are added as nulls of the right type, so the one SQL text runs
    types = {"VARCHAR": "string", "DOUBLE": "double", "INTEGER": "int", "BIGINT": "bigint", "TIMESTAMP": "timestamp"}
    for f in EVENT_FIELDS:
        if f.name not in events.columns:
            events = events.withColumn(f.name, sf.lit(None).cast(types.get(str(f.dtype).upper(), "string")))
    return events


def build_features_spark(spark: Any, events: Any, *, as_of: Any, windows: Sequence[int] | None = None,
                         platforms: Sequence[str] | None = None) -> Any:
    """Features as of ``as_of``, one row per ``(platform, user_id)``, as a Spark DataFrame.

    Parameters
    ----------
    spark : SparkSession
        From :func:`spark_session` (its SQL time zone must be UTC).
    events : Spark DataFrame or path
        Canonical events, or a Parquet file/folder of them (``buyerscore export``).
    as_of, windows, platforms
        As :func:`buyerscore.features.build_features`.
    """
    from buyerscore.features import DEFAULT_WINDOWS, feature_sql

    tz = spark.conf.get("spark.sql.session.timeZone")
    if tz not in ("UTC", "Etc/UTC", "GMT", "+00:00", "Z"):
        raise ValueError(f"the Spark session's time zone is {tz!r}; features need UTC "
                         "(spark.conf.set('spark.sql.session.timeZone', 'UTC') or use spark_session()).")
    if str(spark.conf.get("spark.sql.ansi.enabled", "false")).lower() == "true":
        raise ValueError("the Spark session runs in ANSI mode, where a division by zero raises; the features divide "
                         "by counts that can be 0 (NULL on DuckDB): spark.conf.set('spark.sql.ansi.enabled', 'false').")
    view = f"buyerscore_events_{next(_views)}"
    _events(spark, events).createOrReplaceTempView(view)
    sql = feature_sql(as_of=as_of, windows=tuple(windows or DEFAULT_WINDOWS), platforms=platforms, dialect="spark",
                      table=view)
    return spark.sql(sql)


def _pipeline(registry: str, version: str | None) -> Any:
    key = (registry, version)
    pipe = _PIPELINES.get(key)
    if pipe is None:
        from buyerscore.pipeline import ScoringPipeline

        pipe = _PIPELINES[key] = ScoringPipeline.from_registry(registry, version)
    return pipe


def _spark_type(dtype: Any) -> str:
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if pd.api.types.is_integer_dtype(dtype):
        return "bigint"
    if pd.api.types.is_float_dtype(dtype):
        return "double"
    return "string"


def score_spark(features: Any, registry: str | Path, *, version: str | None = None, reasons: bool = False) -> Any:
    """Score a Spark DataFrame of features with a registry's bundle: a Spark DataFrame of the columns
    :meth:`~buyerscore.pipeline.ScoringPipeline.score_frame` returns, row for row.

    Models whose features are not all in ``features`` are left out (as in ``buyerscore score``); when
    none can score, a :class:`~buyerscore.exceptions.SchemaError` names the missing columns.
    """
    registry = str(Path(registry).resolve())
    # the promoted version is read now (not from the cache: a promotion since the last call counts); the
    # workers then load that exact version
    pipe = _pipeline(registry, version) if version is not None else None
    if pipe is None:
        from buyerscore.pipeline import ScoringPipeline

        pipe = ScoringPipeline.from_registry(registry)
        _PIPELINES.setdefault((registry, pipe.version), pipe)
    missing = pipe.missing_features(features.columns)
    kinds = [k for k in pipe.kinds if not missing[k]]
    if not kinds:
        lacks = "; ".join(f"{k} lacks e.g. {v[:5]}" for k, v in missing.items())
        raise SchemaError(f"No model of bundle {pipe.version} can score these features: {lacks}.")
    need = [c for c in ("platform", "user_id") if c in features.columns]
    need += list(dict.fromkeys(f for k in kinds for f in pipe.features[k]))
    sample = features.select(*need).limit(64).toPandas()
    out = pipe.score_frame(sample, reasons=reasons, kinds=kinds)
    schema = ", ".join(f"`{c}` {_spark_type(out[c].dtype)}" for c in out.columns)
    cols = list(out.columns)
    version_used = pipe.version

    def score(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        p = _pipeline(registry, version_used)
        for X in batches:
            res = p.score_frame(X, reasons=reasons, kinds=kinds)
            yield res.reindex(columns=cols)

    return features.select(*need).mapInPandas(score, schema=schema)
