"""Point-in-time features and batch scoring on Spark, for event logs one machine cannot hold.

The features are the same SQL text as on DuckDB (:func:`buyerscore.features.feature_sql` with
``dialect="spark"``), run by Spark SQL on canonical events (the ``events`` table that ``buyerscore
ingest`` validates and ``buyerscore export`` writes to Parquet).  Scoring runs the bundle's
:class:`~buyerscore.pipeline.ScoringPipeline` on every partition with ``mapInPandas``: each Python
worker loads the bundle from the registry folder once, so the registry must be readable from every
executor (a shared or mounted path on a cluster, since Python reads it; any local path with ``local[*]``).

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
import re
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
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
    """A Spark session (the active one, or a new one on ``master``) with UTC as the SQL time zone and Arrow
    for pandas conversions.

    The features compare timestamps with epoch seconds of the cut-off, as DuckDB does in UTC, so the
    session time zone must be UTC; ``conf`` adds other settings (``spark.executor.memory`` ...).
    """
    ensure_pyspark(install=False)
    from pyspark.sql import SparkSession

    # scoring runs Python on the executors: by default the interpreter with buyerscore (in local mode,
    # the PATH's python3 may lack pandas); PYSPARK_PYTHON set by the user wins
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)

    # Arrow for pandas <-> Spark: without it pyspark 3.5 turns a missing value of a pandas string column into
    # the text 'NaN' (a user 'NaN', every purchase without order_id in one order 'NaN')
    b = (SparkSession.builder.master(master).appName(app_name).config("spark.sql.session.timeZone", "UTC")
         .config("spark.sql.ansi.enabled", "false").config("spark.ui.enabled", "false")
         .config("spark.sql.execution.arrow.pyspark.enabled", "true"))
    for k, v in conf.items():
        b = b.config(k, v)
    spark = b.getOrCreate()
    spark.conf.set("spark.sql.session.timeZone", "UTC")
    if "spark.sql.execution.arrow.pyspark.enabled" not in conf:
        spark.conf.set("spark.sql.execution.arrow.pyspark.enabled", "true")
    return spark


def _is_local(path: str) -> bool:
    """A plain local path (not a URI such as ``s3a://``/``hdfs://`` and not a glob), which can be checked here."""
    return "://" not in path and not any(ch in path for ch in "*?[{")


def read_parquet(spark: Any, path: str | Path, what: str, fix: str) -> Any:
    """``spark.read.parquet(path)`` with a one-line error naming the path and ``fix`` instead of a Java stack
    trace (a local path that does not exist, a folder without Parquet files, a file that is not Parquet).
    URIs (``s3a://``, ``hdfs://``) and globs go to Spark unchecked."""
    path = str(path)
    if _is_local(path) and not Path(path).exists():
        raise FileNotFoundError(f"{what} {path} does not exist; {fix}")
    if _is_local(path) and Path(path).is_dir():
        _check_part_types(Path(path), what)
    from py4j.protocol import Py4JJavaError
    from pyspark.errors import AnalysisException

    try:
        return spark.read.parquet(path)
    except (AnalysisException, Py4JJavaError) as exc:
        lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
        causes = [ln.removeprefix("Caused by: ") for ln in lines if ln.startswith("Caused by: ")]
        why = (causes[-1] if causes else lines[0] if lines else type(exc).__name__)[:300]
        raise SchemaError(f"Spark cannot read {what} {path} as Parquet ({why}); {fix}") from None


_CONVERT = re.compile(r"Parquet column cannot be converted in file (?P<file>\S+?)\.? Column: \[(?P<col>[^\]]*)\], "
                      r"Expected: (?P<exp>[^,]+), Found: (?P<found>[^.\s]+)")


@contextmanager
def readable_job_errors(what: str, path: str) -> Iterator[None]:
    """Turn the Java error of a Spark job that met a Parquet file whose column has another type than the
    others (``user_id`` as integers in one file, text in the rest) into a :class:`SchemaError` naming the
    column, the file and both types.  Local folders are checked before the job (:func:`_check_part_types`);
    this covers URIs (``s3a://``, ``hdfs://``) and globs, where the mismatch shows only when a task reads the
    file.  Other errors pass through unchanged."""
    try:
        yield
    except Exception as exc:  # py4j's Py4JJavaError or pyspark's captured SparkException, by Spark version
        m = _CONVERT.search(str(exc))
        if m is None:
            raise
        raise SchemaError(
            f"{what} {path}: column {m['col']!r} is {m['found']} in {m['file']} but {m['exp']} in the schema Spark "
            "took from the other files; Spark cannot read one column as both. Rewrite the files with one type per "
            "column (e.g. ids as text), or read only the files that agree.") from None


def _type_family(t: Any) -> str:
    import pyarrow as pa

    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_dictionary(t):
        return "text"
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        return "number"
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        return "timestamp"
    return str(t)


def _check_part_types(folder: Path, what: str) -> None:
    """The Parquet files of a local folder must agree on each column's kind (text, number, timestamp, ...):
    Spark takes the schema of one file and fails deep inside a job, with a Java error, on a file where a
    column has another kind (``user_id`` as integers in one file and text in another).  Only the files'
    footers are read."""
    import pyarrow.parquet as pq

    files = sorted(f for f in folder.rglob("*.parquet") if not f.name.startswith(("_", ".")))
    if len(files) < 2:
        return
    seen: dict[str, tuple[str, Path]] = {}
    for f in files:
        try:
            schema = pq.read_schema(f)
        except Exception as exc:  # noqa: BLE001 - an unreadable file is reported by Spark's own read below
            logger.debug("cannot read the Parquet footer of %s (%s); Spark's read reports it", f, exc)
            continue
        for name in schema.names:
            fam = _type_family(schema.field(name).type)
            first = seen.setdefault(name, (fam, f))
            if first[0] != fam:
                raise SchemaError(
                    f"{what} {folder}: column {name!r} is {first[0]} in {first[1].name} but {fam} in {f.name}; "
                    "Spark cannot read one column as both. Rewrite the files with one type per column (e.g. ids "
                    "as text), or read only the files that agree.")


def _epoch_to_timestamp(col: Any, integral: bool) -> Any:
    """Numbers -> timestamps as ``buyerscore ingest`` reads them: 8-digit ``YYYYMMDD`` dates (19000101 to
    21001231), else Unix seconds (< 1e11), milliseconds (< 1e14), microseconds (< 1e17) or nanoseconds."""
    from pyspark.sql import functions as sf

    a = sf.abs(col)
    if integral:
        c = col.cast("bigint")
        micros = (sf.when(a < 10**11, c * 1_000_000).when(a < 10**14, c * 1000).when(a < 10**17, c)
                  .otherwise(sf.floor(c / 1000)))
    else:
        micros = sf.round(sf.when(a < 1e11, col * 1e6).when(a < 1e14, col * 1e3).when(a < 1e17, col)
                          .otherwise(col / 1e3)).cast("bigint")
    ymd = (col >= 19000101) & (col <= 21001231) & (col == sf.floor(col))
    return (sf.when(ymd, sf.to_timestamp(col.cast("bigint").cast("string"), "yyyyMMdd"))
            .otherwise(sf.timestamp_micros(sf.when(sf.abs(micros) < 10**17, micros))))


def _events(spark: Any, events: Any) -> Any:
    """A Spark DataFrame of canonical events from a DataFrame or a Parquet path (file, folder, glob or URI).

    Columns are cast to the canonical types (ids and codes to strings, money to doubles; NaN is missing, as
    at ingest) and ``ts`` to a timestamp: text as ISO 8601 (an offset is honoured), numbers as Unix time like
    ``buyerscore ingest``, ``TIMESTAMP_NTZ``/dates as UTC.  The original ``ts`` stays in ``_ts_raw`` for error messages.
    """
    if isinstance(events, (str, Path)):
        events = read_parquet(spark, events, "events", "write canonical events with 'buyerscore export --db STORE "
                              "--out DIR' (DIR/events.parquet), or pass your own Parquet file(s) with the columns "
                              f"{list(EVENT_COLUMNS)}.")
    if "_ts_raw" in events.columns:  # already normalised
        return events
    missing = [c for c in EVENT_COLUMNS if c not in events.columns]
    if missing:
        raise SchemaError(f"Spark events lack column(s) {missing}; the features read canonical events (validated by "
                          "'buyerscore ingest', exported by 'buyerscore export').")
    from pyspark.sql import functions as sf
    from pyspark.sql import types as st

    from buyerscore.events.schema import EVENT_FIELDS

    types = {"VARCHAR": "string", "DOUBLE": "double", "INTEGER": "int", "BIGINT": "bigint", "TIMESTAMP": "timestamp"}
    ts_type = events.schema["ts"].dataType
    events = events.withColumn("_ts_raw", sf.col("ts").cast("string"))
    if isinstance(ts_type, (st.IntegerType, st.LongType, st.ShortType, st.ByteType, st.DecimalType)):
        ts = _epoch_to_timestamp(sf.col("ts"), integral=not isinstance(ts_type, st.DecimalType) or ts_type.scale == 0)
    elif isinstance(ts_type, (st.FloatType, st.DoubleType)):
        ts = _epoch_to_timestamp(sf.col("ts"), integral=False)
    else:  # string (ISO 8601), date, timestamp, timestamp_ntz; anything else fails in the cast with its type
        ts = sf.col("ts").cast("timestamp")
    # canonical columns the input lacks are added as nulls of the right type, so the one SQL text runs
    for f in EVENT_FIELDS:
        typ = types.get(str(f.dtype).upper(), "string")
        if f.name == "ts":
            events = events.withColumn("ts", ts)
        elif f.name not in events.columns:
            events = events.withColumn(f.name, sf.lit(None).cast(typ))
        elif events.schema[f.name].dataType.simpleString() != typ:
            events = events.withColumn(f.name, sf.col(f.name).cast(typ))
        if typ == "double" and f.name in events.columns:  # NaN (pandas' missing value) is missing, as at ingest
            events = events.withColumn(f.name, sf.when(~sf.isnan(f.name), sf.col(f.name)))
    return events


_MONEY = "('refund', 'payment', 'repayment')"


def _checks() -> list[tuple[str, str, str, str]]:
    """(column, SQL condition of a bad row, what is wrong, the fix), the ingest rules the features depend on."""
    from buyerscore.events.schema import EVENT_TYPES

    types = ", ".join(f"'{t}'" for t in EVENT_TYPES)
    ingest = "or load the file with 'buyerscore ingest' (it rejects such rows with a reason) and 'buyerscore export'"
    return [
        ("user_id", "user_id IS NULL OR trim(user_id) = ''", "is null or empty",
         f"drop those rows or fill the id, {ingest}"),
        ("platform", "platform IS NULL OR trim(platform) = ''", "is null or empty",
         f"set the shop's name (e.g. withColumn('platform', lit('myshop'))), {ingest}"),
        ("ts", "ts IS NULL", ("is null or not a timestamp (text is read as ISO 8601 'YYYY-MM-DD HH:MM:SS[+HH:MM]', "
         "numbers as Unix seconds/ms/us/ns)"), f"convert it to a UTC timestamp, {ingest}"),
        ("event_type", f"event_type IS NULL OR event_type NOT IN ({types})", "is not a canonical event type",
         f"map it to one of [{types}] in lower case (Taobao 'pv' -> 'view', 'buy' -> 'purchase'), {ingest}"),
        ("amount", "amount < 0 OR amount = double('inf')", "is negative or infinite",
         f"amounts are non-negative (a refund is event_type 'refund' with a positive amount), {ingest}"),
        ("amount", f"amount IS NULL AND event_type IN {_MONEY}", "is null on a refund/payment/repayment event",
         f"those events need their amount, {ingest}"),
    ]


def validate_events_spark(spark: Any, events: Any, *, as_of: Any, platforms: Sequence[str] | None = None) -> None:
    """Raise :class:`~buyerscore.exceptions.SchemaError` when rows the features would read (``ts`` at or before
    ``as_of`` or unreadable, on the requested platforms) break the canonical rules that ``buyerscore ingest``
    enforces, naming the column, the number of rows, one offending row and the fix; or when a requested
    platform has no event at all.  One pass over the events (``validate=False`` skips it)."""
    from buyerscore.features.sql import _platform_filter, _q, timestamp_literal, to_timestamp

    ev = _events(spark, events)
    view = f"buyerscore_check_{next(_views)}"
    ev.createOrReplaceTempView(view)
    checks = _checks()
    read = f"(ts IS NULL OR ts <= {timestamp_literal(to_timestamp(as_of))}){_platform_filter(platforms)}"
    row = ("concat('user_id=', coalesce(user_id, 'NULL'), ', ts=', coalesce(_ts_raw, 'NULL'), ', event_type=', "
           "coalesce(event_type, 'NULL'), ', amount=', coalesce(CAST(amount AS STRING), 'NULL'))")
    aggs = [f"COUNT(CASE WHEN {read} AND ({cond}) THEN 1 END) AS n{i}, "
            f"FIRST(CASE WHEN {read} AND ({cond}) THEN {row} END, true) AS e{i}"
            for i, (_, cond, _, _) in enumerate(checks)]
    aggs += [f"COUNT(CASE WHEN platform = {_q(p)} THEN 1 END) AS p{j}" for j, p in enumerate(platforms or [])]
    r = spark.sql(f"SELECT {', '.join(aggs)} FROM {view}").collect()[0]  # one pass over the events
    absent = [p for j, p in enumerate(platforms or []) if r[f"p{j}"] == 0]
    if absent:
        known = sorted(str(x[0]) for x in spark.sql(f"SELECT DISTINCT platform FROM {view} LIMIT 21").collect())
        spark.catalog.dropTempView(view)
        raise SchemaError(f"--platform {', '.join(absent)}: no event has this platform; the events' platforms are "
                          f"{known[:20]}{' ...' if len(known) > 20 else ''}.")
    spark.catalog.dropTempView(view)
    for i, (col, _, what, fix) in enumerate(checks):
        if r[f"n{i}"]:
            raise SchemaError(f"events: {col} {what} in {r[f'n{i}']:,} row(s) at or before the cut-off, e.g. "
                              f"{r[f'e{i}']}; the features would be wrong ({col}). Fix: {fix}. "
                              "(validate=False / --no-validate skips this check.)")


def build_features_spark(spark: Any, events: Any, *, as_of: Any, windows: Sequence[int] | None = None,
                         platforms: Sequence[str] | None = None, validate: bool = True) -> Any:
    """Features as of ``as_of``, one row per ``(platform, user_id)``, as a Spark DataFrame.

    Parameters
    ----------
    spark : SparkSession
        From :func:`spark_session` (its SQL time zone must be UTC).
    events : Spark DataFrame or path
        Canonical events, or a Parquet file/folder/glob/URI of them (``buyerscore export``).  ``ts`` may be a
        timestamp, ISO 8601 text or Unix time (read as ``buyerscore ingest`` reads them).
    as_of, windows, platforms
        As :func:`buyerscore.features.build_features` (an aware ``as_of`` is converted to UTC).
    validate : bool
        First check, in one pass, the rows the features read (:func:`validate_events_spark`): null or empty
        ``user_id``/``platform``, unreadable ``ts``, unknown ``event_type``, negative amounts, refunds without
        amount, and platforms with no event; a :class:`~buyerscore.exceptions.SchemaError` names the column,
        a row and the fix.  Events exported by ``buyerscore export`` were validated at ingest.
    """
    from buyerscore.features import DEFAULT_WINDOWS, feature_sql

    tz = spark.conf.get("spark.sql.session.timeZone")
    if tz not in ("UTC", "Etc/UTC", "GMT", "+00:00", "Z"):
        raise ValueError(f"the Spark session's time zone is {tz!r}; features need UTC "
                         "(spark.conf.set('spark.sql.session.timeZone', 'UTC') or use spark_session()).")
    if str(spark.conf.get("spark.sql.ansi.enabled", "false")).lower() == "true":
        raise ValueError("the Spark session runs in ANSI mode, where a division by zero raises; the features divide "
                         "by counts that can be 0 (NULL on DuckDB): spark.conf.set('spark.sql.ansi.enabled', 'false').")
    ev = _events(spark, events)
    if validate:
        validate_events_spark(spark, ev, as_of=as_of, platforms=platforms)
    view = f"buyerscore_events_{next(_views)}"
    ev.drop("_ts_raw").createOrReplaceTempView(view)
    sql = feature_sql(as_of=as_of, windows=tuple(windows or DEFAULT_WINDOWS), platforms=platforms, dialect="spark",
                      table=view)
    F = spark.sql(sql)
    return F.mapInPandas(_rounded, schema=F.schema)  # the 12 significant digits of build_features


def _rounded(frames: Any) -> Any:
    from buyerscore.features.build import round_features

    for pdf in frames:
        yield round_features(pdf)


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


def scoring_plan(columns: Sequence[str], registry: str | Path, version: str | None = None) -> tuple[Any, list[str],
                                                                                            dict[str, list[str]]]:
    """The bundle (the promoted one, read now, or ``version``), the model kinds that can score ``columns`` and
    the ones left out with the features they lack; a :class:`~buyerscore.exceptions.SchemaError` naming every
    model and its missing columns when none can score."""

    registry = str(Path(registry).resolve())
    if version is not None:
        pipe = _pipeline(registry, version)
    else:  # the promoted version is read now (not from the cache: a promotion since the last call counts)
        from buyerscore.pipeline import ScoringPipeline

        pipe = ScoringPipeline.from_registry(registry)
        _PIPELINES.setdefault((registry, pipe.version), pipe)
    kinds, skipped = pipe.scorable(columns, source="The features", fix="Build the features with 'buyerscore spark "
                                   "features' (same windows as the bundle).")
    return pipe, kinds, skipped


def score_spark(features: Any, registry: str | Path, *, version: str | None = None, reasons: bool = False) -> Any:
    """Score a Spark DataFrame of features with a registry's bundle: a Spark DataFrame of the columns
    :meth:`~buyerscore.pipeline.ScoringPipeline.score_frame` returns, row for row.

    Models whose features are not all in ``features`` are left out with a warning (as in ``buyerscore
    score``; :func:`scoring_plan` says which); when none can score, a
    :class:`~buyerscore.exceptions.SchemaError` names every model and the columns it lacks.
    """
    from buyerscore._validation import examples

    registry = str(Path(registry).resolve())
    pipe, kinds, skipped = scoring_plan(features.columns, registry, version)
    for k, v in skipped.items():
        logger.warning("the %s model of bundle %s is left out: the features lack %d of its %d columns (e.g. %s)",
                       k, pipe.version, len(v), len(pipe.features[k]), examples(v, 5))
    need = [c for c in ("platform", "user_id") if c in features.columns]
    need += list(dict.fromkeys(f for k in kinds for f in pipe.features[k]))
    # the output schema from scoring a few rows here (one row of NaN features when there are none, so that an
    # empty input still gets typed score columns)
    sample = features.select(*need).limit(64).toPandas()
    if sample.empty:
        sample = pd.DataFrame({c: [None] if c in ("platform", "user_id") else [np.nan] for c in need})
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
