"""``buyerscore spark features|score``: the same features and batch scores on Spark (see buyerscore/spark.py)."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from buyerscore.cli._common import console, friendly_errors, parse_cutoff, step

spark_app = typer.Typer(help="Features and batch scoring on Spark, for logs one machine cannot hold "
                             "(installs pyspark when missing; needs Java 17).", no_args_is_help=True)

MASTER_OPT = typer.Option("local[*]", "--master", help="Spark master URL (local[*]: this machine's cores).")
OVERWRITE_OPT = typer.Option(False, "--overwrite", help="Replace --out when it exists and is not empty (Spark "
                             "deletes the whole folder first); without it such an --out is refused.")


def _session(master: str):  # type: ignore[no-untyped-def]
    from buyerscore.spark import ensure_pyspark, spark_session

    ensure_pyspark(install=True)
    spark = spark_session(master)
    # Spark's own log prints each failed task's Java stack trace before the command's one-line error (which
    # says the same); BUYERSCORE_SPARK_LOG_LEVEL=WARN (or INFO, ERROR) brings Spark's log back
    spark.sparkContext.setLogLevel(os.environ.get("BUYERSCORE_SPARK_LOG_LEVEL", "FATAL"))
    return spark


def _check_out(out_dir: str, source: str, overwrite: bool) -> None:
    """Refuse an --out that would delete data: the input itself or a folder holding it (always), or an existing
    non-empty file/folder (unless --overwrite).  URIs (s3a://, hdfs://) are left to Spark."""
    from buyerscore.spark import _is_local

    if not _is_local(out_dir):
        return
    out = Path(out_dir).resolve()
    if _is_local(source):
        src = Path(source).resolve()
        if out == src or out in src.parents:
            raise ValueError(f"--out {out_dir} is the input {source} or holds it; writing there would delete the "
                             "input. Choose another --out folder.")
    if not overwrite and out.exists() and (out.is_file() or any(out.iterdir())):
        raise ValueError(f"--out {out_dir} exists and is not empty; pass --overwrite to replace it (its whole "
                         "contents are deleted) or choose a new folder.")


@spark_app.command("features")
def features(
    events: str = typer.Option(..., "--events", help="Canonical events as Parquet (file, folder, glob or URI such as "
                               "s3a://...), e.g. from 'buyerscore export --db STORE --out DIR' (DIR/events.parquet); "
                               "ts may be a timestamp, ISO 8601 text or Unix time."),
    cutoff: str = typer.Option(..., "--cutoff", help="As-of date/time (UTC unless it has an offset); only events with "
                               "ts <= cutoff are used."),
    out_dir: str = typer.Option(..., "--out", help="Parquet folder to write (Spark writes one file per partition)."),
    windows: str = typer.Option("7,30,90,365", "--windows", help="Window lengths in days, comma-separated."),
    platform: list[str] | None = typer.Option(None, "--platform", help="Only this platform (repeatable)."),
    validate: bool = typer.Option(True, "--validate/--no-validate", help="First check the events the features read "
                                  "(null/empty user_id or platform, unreadable ts, unknown event_type, negative "
                                  "amounts, unknown --platform): one more pass over the data."),
    overwrite: bool = OVERWRITE_OPT,
    master: str = MASTER_OPT,
) -> None:
    """Point-in-time features on Spark: the same SQL and the same columns as 'buyerscore features'."""
    from buyerscore.cli.features_cmd import _windows
    from buyerscore.spark import build_features_spark, readable_job_errors

    with friendly_errors():
        ts = parse_cutoff(cutoff)
        wins = _windows(windows)
        _check_out(out_dir, events, overwrite)
        spark = _session(master)
        with step(f"features as of {ts} on Spark ({master})"), readable_job_errors("events", events):
            F = build_features_spark(spark, events, as_of=ts, windows=wins, platforms=platform or None,
                                     validate=validate)
            F.write.mode("overwrite").parquet(out_dir)
            n = spark.read.parquet(out_dir).count()
    console.print(f"wrote features of {n:,} users as of {ts} to {out_dir}")
    if n == 0:
        console.print("[yellow]no user has an event at or before the cutoff[/]")


@spark_app.command("score")
def score(
    registry: Path = typer.Option(..., "--registry", help="Registry folder of 'buyerscore train' (a local or mounted "
                                  "path readable from every executor)."),
    input: str = typer.Option(..., "--input", help="Parquet features (file, folder, glob or URI), e.g. from "
                              "'buyerscore spark features'."),
    out_dir: str = typer.Option(..., "--out", help="Parquet folder of scores to write."),
    version: str | None = typer.Option(None, "--version", help="Bundle version (default: the promoted one)."),
    reasons: bool = typer.Option(False, "--reasons/--no-reasons", help="Add reason-code columns."),
    overwrite: bool = OVERWRITE_OPT,
    master: str = MASTER_OPT,
) -> None:
    """Score a features table on Spark with a bundle: the columns of 'buyerscore score', row for row."""
    from buyerscore.spark import read_parquet, readable_job_errors, score_spark, scoring_plan

    with friendly_errors():
        if not registry.exists():
            raise FileNotFoundError(f"--registry {registry} does not exist; train one with 'buyerscore train "
                                    "--config buyerscore.toml --as-of DATE --out DIR --promote'.")
        _check_out(out_dir, input, overwrite)
        spark = _session(master)
        F = read_parquet(spark, input, "features", "build them with 'buyerscore spark features' (or 'buyerscore "
                         "features').")
        pipe, _, skipped = scoring_plan(F.columns, registry, version)  # the bundle is read once, here
        with step(f"scoring {input} on Spark ({master})"), readable_job_errors("features", input):
            S = score_spark(F, registry, version=pipe.version, reasons=reasons)
            S.write.mode("overwrite").parquet(out_dir)
            n = spark.read.parquet(out_dir).count()
    console.print(f"wrote {n:,} scores of bundle {pipe.version} to {out_dir}")
    for kind, lacks in skipped.items():
        more = f" and {len(lacks) - 5} more" if len(lacks) > 5 else ""
        console.print(f"[yellow]not scored[/]: {kind} (the input lacks {', '.join(lacks[:5])}{more})")


def register(app: typer.Typer) -> None:
    """Add this area's commands to the root app."""
    app.add_typer(spark_app, name="spark")
