"""Batch scoring: stream a Parquet file of features (or raw events) through the pipeline in chunks.

Memory stays bounded by the chunk size: the input is read ``chunk_rows`` rows at a time (only
the columns the models need plus the ids), at most ``n_jobs`` chunks are scored at once (in
threads), and every scored chunk is appended, in input order, to the output Parquet file.  Raw events are first validated and stored exactly like
``buyerscore ingest`` in a temporary DuckDB file; their features are computed there by the one
offline SQL definition and spilled to a temporary Parquet file, which is then streamed the same way.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from buyerscore._validation import check_param, examples
from buyerscore.exceptions import LeakageError, ModelInputError, SchemaError
from buyerscore.pipeline import ID_COLUMNS, ScoringPipeline

logger = logging.getLogger(__name__)

ProgressFn = Callable[[int, int], None]


@dataclass
class BatchSummary:
    """What a batch run did and how fast."""

    input: str
    output: str
    input_kind: str
    rows: int
    chunks: int
    seconds: float
    rows_per_s: float
    model_version: str
    models: list[str]
    feature_seconds: float = 0.0
    events_rejected: int = 0
    events_by_reason: dict[str, int] = field(default_factory=dict)
    """Raw-event input: rejected events per reason code (as ``buyerscore ingest`` reports them)."""
    skipped: dict[str, list[str]] = field(default_factory=dict)
    """Models of the bundle left out because the input lacks some of their features -> those features."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def input_kind(path: str | Path) -> str:
    """``"events"`` when the Parquet file has ``ts`` and ``event_type`` columns, else ``"features"``."""
    names = set(pq.ParquetFile(path).schema_arrow.names)
    return "events" if {"ts", "event_type"} <= names else "features"


def _normalise(df: pd.DataFrame) -> pd.DataFrame:
    """Stable column types across chunks (object -> string, so all-missing chunks keep the schema)."""
    for c in df.columns:
        if df[c].dtype == object:
            df[c] = df[c].astype("string")
    return df


def _is_number(t: pa.DataType) -> bool:
    return bool(pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t))


def batch_frame(batch: pa.RecordBatch) -> pd.DataFrame:
    """An Arrow record batch as a DataFrame whose numeric columns are one column-major float64 block.

    ``batch.to_pandas()`` makes one block per type (and the models then interleave them again); here
    every numeric column is converted once, nulls as NaN, and every model whose features are a run of
    those columns reads the block in place.  Id columns keep their own arrays.  A batch with any other
    non-numeric column is converted by ``to_pandas`` so that the models' input checks name it.

    Examples
    --------
    >>> b = pa.record_batch({"user_id": ["a", "b"], "n_orders": pa.array([1, None]), "spend": [2.5, 0.0]})
    >>> X = batch_frame(b)
    >>> list(X.columns), X["n_orders"].tolist(), str(X["spend"].dtype)
    (['user_id', 'n_orders', 'spend'], [1.0, nan], 'float64')
    """
    names = batch.schema.names
    num = [c for c, t in zip(names, batch.schema.types, strict=True) if c not in ID_COLUMNS and _is_number(t)]
    if any(c not in ID_COLUMNS and c not in num for c in names):
        return batch.to_pandas()
    M = np.empty((batch.num_rows, len(num)), order="F")
    for j, c in enumerate(num):
        col = batch.column(c)
        if col.null_count == 0 and not pa.types.is_boolean(col.type):
            M[:, j] = col.to_numpy()  # a view of the Arrow buffer, cast while copied
        else:  # nulls -> NaN
            M[:, j] = col.cast(pa.float64()).to_numpy(zero_copy_only=False)
    X = pd.DataFrame(M, columns=num, copy=False)
    for i, c in enumerate(c for c in names if c in ID_COLUMNS):
        X.insert(i, c, batch.column(c).to_pandas())
    return X


def default_jobs() -> int:
    """Chunks scored at the same time by default: ``min(2, CPU count)`` (each holds one chunk in memory)."""
    return max(1, min(2, os.cpu_count() or 1))


def score_frames(pipeline: ScoringPipeline, chunks: Any, out: str | Path, *, total: int, reasons: bool = True,
                 on_progress: ProgressFn | None = None, n_jobs: int = 1, source: str = "input",
                 input_schema: pa.Schema | None = None) -> tuple[int, int]:
    """Score an iterable of frames (or Arrow record batches), appending each result to the Parquet file ``out``.

    With ``n_jobs > 1`` up to ``n_jobs`` chunks are scored at once in threads (the models' numeric
    work -- LightGBM, tree traversal, numpy -- runs without the GIL); results are written in input
    order, so the output is the same as with ``n_jobs=1``.  A value that is not a number in a numeric
    feature column is reported with its column, its row (1-based, counted over all chunks) and the
    value, named after ``source``.  ``input_schema`` (the input's Arrow schema) gives an empty input the
    same output columns and types as a non-empty one.
    """
    check_param("score_frames", "n_jobs", n_jobs, lambda v: isinstance(v, int) and v >= 1, "an int >= 1")
    writer: pq.ParquetWriter | None = None
    schema: pa.Schema | None = None
    rows = n = 0
    tmp = Path(str(out) + ".partial")

    def work(X: Any, offset: int) -> pa.Table:
        if isinstance(X, pa.RecordBatch):
            X = batch_frame(X)
        try:
            res = pipeline.score_frame(X, reasons=reasons)
        except ModelInputError:
            _raise_bad_values(pipeline, X, offset, source)
            raise
        return pa.Table.from_pandas(_normalise(res), preserve_index=False)

    def write(table: pa.Table) -> None:
        nonlocal writer, schema, rows, n
        if writer is None:
            schema = table.schema
            # dictionary pages only for the repetitive text columns (tier, grade, reason names,
            # version): for ids and numbers they cost time and make the file larger
            words = [f.name for f in schema if f.name != "user_id"
                     and (pa.types.is_string(f.type) or pa.types.is_large_string(f.type))]
            writer = pq.ParquetWriter(tmp, schema, compression="zstd", use_dictionary=words)
        elif table.schema != schema:  # e.g. an all-missing column in this chunk: same types as the first
            table = table.cast(schema)
        writer.write_table(table)
        rows += table.num_rows
        n += 1
        if on_progress is not None:
            on_progress(rows, total)

    try:
        offset = 0
        if n_jobs == 1:
            for X in chunks:
                write(work(X, offset))
                offset += len(X)
        else:
            with ThreadPoolExecutor(max_workers=n_jobs, thread_name_prefix="buyerscore-batch") as pool:
                pending: deque[Future[pa.Table]] = deque()
                for X in chunks:  # at most n_jobs chunks in flight: memory stays bounded
                    if len(pending) >= n_jobs:
                        write(pending.popleft().result())
                    pending.append(pool.submit(work, X, offset))
                    offset += len(X)
                while pending:
                    write(pending.popleft().result())
        if writer is None:  # empty input: still write a valid (empty) file, with the columns of a non-empty one
            pq.write_table(_empty_result(pipeline, input_schema, reasons=reasons), tmp)
        else:
            writer.close()
            writer = None
        tmp.replace(out)
    finally:
        if writer is not None:
            writer.close()
        tmp.unlink(missing_ok=True)
    return rows, n


def _raise_bad_values(pipeline: ScoringPipeline, X: pd.DataFrame, offset: int, source: str) -> None:
    """Raise a :class:`SchemaError` naming the column, row and value of the first non-numbers in numeric
    feature columns of chunk ``X`` (rows ``offset + 1 ...`` of the input); return when there is none."""
    from buyerscore.pipeline import categorical_features

    cols: dict[str, None] = {}
    for kind, feats in pipeline.features.items():
        cat = categorical_features(pipeline.models[kind])
        cols.update((c, None) for c in feats if c in X.columns and c not in cat)
    for c in cols:
        v = X[c]
        if pd.api.types.is_numeric_dtype(v.dtype) or pd.api.types.is_bool_dtype(v.dtype):
            continue
        bad = pd.to_numeric(v, errors="coerce").isna().to_numpy() & v.notna().to_numpy()
        if not bad.any():
            continue
        pos = np.flatnonzero(bad)
        rows = [offset + int(i) + 1 for i in pos[:3]]
        first = v.iloc[int(pos[0])]
        more = f" ({len(pos)} such values in rows {offset + 1}-{offset + len(X)}, e.g. rows " \
               f"{', '.join(map(str, rows))})" if len(pos) > 1 else ""
        raise SchemaError(f"{source}: column {c!r} must hold numbers, but row {rows[0]} has {str(first)[:40]!r}{more}. "
                          "Rows are counted from 1 without the header. Write numbers (leave the cell empty or null "
                          "for an unknown value), or rebuild the file with `buyerscore features`.")


def _empty_result(pipeline: ScoringPipeline, schema: pa.Schema | None, *, reasons: bool) -> pa.Table:
    """The output of an empty input: no rows, but the columns and types a non-empty input of ``schema`` gets.

    One all-null row is scored (models see missing values, as for a user with no data) and dropped, so
    the sections of models the input cannot feed are absent and text columns (tier, reasons) stay text.
    """
    names = list(schema.names) if schema is not None else [*ID_COLUMNS, *pipeline.input_features]
    probe = (batch_frame(pa.RecordBatch.from_pylist([{}], schema=schema)) if schema is not None
             else pd.DataFrame({c: [np.nan] for c in names}))
    try:
        res = pipeline.score_frame(probe, reasons=reasons).iloc[:0]
    except Exception:  # a model that refuses missing values: score the empty frame itself
        logger.debug("empty input: the all-null probe row could not be scored", exc_info=True)
        res = pipeline.score_frame(pd.DataFrame({c: pd.Series(dtype=float) for c in names}), reasons=reasons)
    table = pa.Table.from_pandas(_normalise(res), preserve_index=False)
    if schema is not None:  # ids get the types their values get (an all-null probe id would read as float)
        for c in ID_COLUMNS:
            if c in table.column_names and c in schema.names:
                ids = pa.table({c: pa.array([], type=schema.field(c).type)}).to_pandas()
                table = table.set_column(table.column_names.index(c), c,
                                         pa.Table.from_pandas(_normalise(ids), preserve_index=False).column(c))
    return table

def _feature_chunks(path: Path, columns: list[str], chunk_rows: int) -> Any:
    """Arrow record batches of ``chunk_rows`` rows (converted to pandas by the thread that scores them)."""
    pf = pq.ParquetFile(path)
    yield from pf.iter_batches(batch_size=chunk_rows, columns=columns)


def score_file(pipeline: ScoringPipeline, input: str | Path, out: str | Path, *, as_of: Any = None,
               windows: tuple[int, ...] | None = None, chunk_rows: int = 50_000, reasons: bool = True,
               on_progress: ProgressFn | None = None, workdir: str | Path | None = None,
               n_jobs: int | None = None) -> BatchSummary:
    """Score a Parquet file of features or of raw events into a Parquet file of scores.

    Parameters
    ----------
    pipeline : ScoringPipeline
        The bundle's pipeline (:meth:`ScoringPipeline.from_registry`).
    input : path
        Parquet with one row per user and the feature columns (``platform``/``user_id`` copied
        through), or raw canonical events (detected by ``ts`` and ``event_type`` columns).
    out : path
        Output Parquet (written to ``out.partial`` and renamed when complete).
    as_of : date-like
        Feature cut-off; required for raw events (ignored for features).
    windows : tuple of int, optional
        Feature windows for raw events (default: those the bundle was trained with).
    chunk_rows : int
        Rows per chunk; memory is proportional to it (times ``n_jobs``).  Smaller files are split
        into ``n_jobs`` chunks so that every thread has work.
    reasons : bool
        Include reason-code columns.
    on_progress : callable, optional
        Called as ``on_progress(rows_done, rows_total)`` after every chunk.
    workdir : path, optional
        Folder for temporary files (raw-event input).
    n_jobs : int, optional
        Chunks scored at the same time, in threads (default :func:`default_jobs`: ``min(2, CPUs)``).
        The output does not depend on it.

    Examples
    --------
    >>> import tempfile, pandas as pd
    >>> from sklearn.linear_model import LinearRegression
    >>> d = tempfile.mkdtemp()
    >>> X = pd.DataFrame({"user_id": ["a", "b", "c"], "spend_90d": [1.0, 2.0, 3.0]})
    >>> X.to_parquet(f"{d}/f.parquet")
    >>> p = ScoringPipeline({"power_spend": LinearRegression().fit(X[["spend_90d"]], [2.0, 4.0, 6.0])},
    ...                     features={"power_spend": ["spend_90d"]}, version="v1")
    >>> s = score_file(p, f"{d}/f.parquet", f"{d}/s.parquet", chunk_rows=2, n_jobs=2)
    >>> s.rows, s.chunks, pd.read_parquet(f"{d}/s.parquet")["power_expected_spend"].round(6).tolist()
    (3, 2, [2.0, 4.0, 6.0])
    """
    input, out = Path(input), Path(out)
    if not input.exists():
        raise FileNotFoundError(f"Input {input} does not exist.")
    _check_out(input, out)
    t0 = time.perf_counter()
    feat_s = 0.0
    rejected = 0
    by_reason: dict[str, int] = {}
    with tempfile.TemporaryDirectory(dir=workdir, prefix="buyerscore-batch-") as tmpd:
        src = _as_parquet(input, Path(tmpd))
        kind = input_kind(src)
        if kind == "events":
            if as_of is None:
                raise LeakageError(f"{input} holds raw events: pass as_of (the feature cut-off, e.g. --as-of "
                                   "2024-01-01) so that no event after it enters the features.")
            # the original file: ingest validates it row by row (bad rows -> rejects with a reason)
            src, rejected, by_reason = _events_to_features(input, Path(tmpd), as_of=as_of,
                                                           windows=windows or _pipeline_windows(pipeline))
            feat_s = time.perf_counter() - t0
        names = pq.ParquetFile(src).schema_arrow.names
        scored, skipped = pipeline.scorable(names, source=str(input), fix="Build the features with `buyerscore "
                                            "features` (same windows as the bundle), or pass raw events with --as-of.")
        for k, v in skipped.items():
            logger.info("%s: the %s model is left out: the input lacks %d of its %d features (e.g. %s)",
                           input.name, k, len(v), len(pipeline.features[k]), examples(v, 5))
        need = [c for c in ID_COLUMNS if c in names] + [f for k in scored for f in pipeline.features[k]]
        need = list(dict.fromkeys(need))
        total = pq.ParquetFile(src).metadata.num_rows
        jobs = default_jobs() if n_jobs is None else n_jobs
        # a file smaller than jobs x chunk_rows is split so that every thread gets a share
        rows_per_chunk = max(1, min(chunk_rows, -(-total // max(jobs, 1))))  # n_jobs < 1: score_frames says so
        arrow_schema = pq.ParquetFile(src).schema_arrow
        out.parent.mkdir(parents=True, exist_ok=True)
        rows, n = score_frames(pipeline, _feature_chunks(src, need, rows_per_chunk), out, total=total,
                               reasons=reasons, on_progress=on_progress, n_jobs=jobs, source=input.name,
                               input_schema=pa.schema([arrow_schema.field(c) for c in need]))
    dt = time.perf_counter() - t0
    s = BatchSummary(input=str(input), output=str(out), input_kind=kind, rows=rows, chunks=n, seconds=round(dt, 3),
                     rows_per_s=round(rows / dt, 1) if dt > 0 else 0.0, model_version=pipeline.version,
                     models=scored, feature_seconds=round(feat_s, 3), events_rejected=rejected,
                     events_by_reason=by_reason, skipped=skipped)
    logger.info("scored %d rows in %.2fs (%.0f rows/s)", rows, dt, s.rows_per_s)
    return s


_NOT_PARQUET = (".csv", ".tsv", ".txt", ".json", ".jsonl", ".ndjson", ".xlsx", ".xls")


def _check_out(input: Path, out: Path) -> None:
    """Refuse an output path that cannot receive the Parquet file of scores, before any work is done."""
    if out.resolve() == input.resolve():
        raise ValueError(f"--out {out} is the input file; scoring would replace the input with its scores. "
                         "Choose another output path.")
    if out.is_dir():
        raise ValueError(f"--out {out} is a folder; give a file path, e.g. {out / 'scores.parquet'}.")
    if out.suffix.lower() in _NOT_PARQUET:
        raise ValueError(f"--out {out}: scores are written as Parquet, not {out.suffix[1:].upper()}; name the output "
                         f"{out.with_suffix('.parquet').name} (convert it afterwards if needed, e.g. with DuckDB: "
                         f"COPY (FROM '{out.with_suffix('.parquet').name}') TO '{out.name}').")


# id columns read as text from CSV/JSON (an id such as 9007199254740993 or 00042 is a name, not a number)
_TEXT_COLUMNS = (*ID_COLUMNS, "event_id", "order_id", "item_id")


def _as_parquet(path: Path, tmpd: Path) -> Path:
    """``path`` itself when it is Parquet; a CSV or JSON file is converted by DuckDB to a temporary Parquet file."""
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return path
    readers = {".csv": "read_csv", ".tsv": "read_csv", ".txt": "read_csv", ".json": "read_json_auto",
               ".jsonl": "read_json_auto", ".ndjson": "read_json_auto"}
    if suffix not in readers:
        raise SchemaError(f"{path}: unknown file type {suffix!r}; score reads Parquet, CSV or JSON (lines) files.")
    import duckdb

    if path.stat().st_size == 0:
        raise SchemaError(f"{path} is empty (not even a header row); score needs a header with the feature "
                          "columns (or raw events with ts and event_type).")
    dst = tmpd / "input.parquet"
    con = duckdb.connect()
    try:
        # ids stay text: auto-detection would read numeric-looking ids as integers or doubles (dropping
        # leading zeros, rounding ids above 2**53) and they would no longer match the Parquet path
        cols = con.execute(f"DESCRIBE SELECT * FROM {readers[suffix]}(?)", [str(path)]).fetchall()
        types = {str(r[0]): ("VARCHAR" if r[0] in _TEXT_COLUMNS else str(r[1])) for r in cols}

        def lit(v: str) -> str:
            return "'" + v.replace("'", "''") + "'"

        if readers[suffix] == "read_csv":
            text = {k: v for k, v in types.items() if k in _TEXT_COLUMNS}
            opts = (", types = {" + ", ".join(f"{lit(k)}: 'VARCHAR'" for k in text) + "}") if text else ""
            read = f"read_csv(?{opts})"
        else:
            read = "read_json(?, columns = {" + ", ".join(f"{lit(k)}: {lit(v)}" for k, v in types.items()) + "})"
        con.execute(f"COPY (SELECT * FROM {read}) TO '{dst.as_posix()}' (FORMAT PARQUET)", [str(path)])
    except duckdb.Error as e:
        raise SchemaError(f"{path} could not be read as {suffix[1:].upper()}: {e}") from None
    finally:
        con.close()
    return dst


def _pipeline_windows(pipeline: ScoringPipeline) -> tuple[int, ...]:
    return tuple(getattr(pipeline, "windows", None) or (7, 30, 90, 365))


def _events_to_features(path: Path, tmpd: Path, *, as_of: Any,
                        windows: tuple[int, ...]) -> tuple[Path, int, dict[str, int]]:
    from buyerscore.events.store import EventStore
    from buyerscore.features import build_features
    from buyerscore.features.sql import to_timestamp

    with EventStore(tmpd / "events.duckdb") as store:
        summary = store.ingest_file(path)
        feats = tmpd / "features.parquet"
        build_features(store.con, as_of=to_timestamp(as_of), windows=windows).to_parquet(feats, index=False)
    return feats, summary.rejected, dict(summary.by_reason)
