"""``buyerscore spark features|score``: the same features and batch scores on Spark (see buyerscore/spark.py)."""

from __future__ import annotations

from pathlib import Path

import typer

from buyerscore.cli._common import console, friendly_errors, parse_cutoff, step

spark_app = typer.Typer(help="Features and batch scoring on Spark, for logs one machine cannot hold "
                             "(installs pyspark when missing; needs Java 17).", no_args_is_help=True)

MASTER_OPT = typer.Option("local[*]", "--master", help="Spark master URL (local[*]: this machine's cores).")


def _session(master: str):  # type: ignore[no-untyped-def]
    from buyerscore.spark import ensure_pyspark, spark_session

    ensure_pyspark(install=True)
    return spark_session(master)


@spark_app.command("features")
def features(
    events: Path = typer.Option(..., "--events", help="Canonical events as Parquet (file or folder), e.g. from "
                                "'buyerscore export --db STORE --out DIR' (DIR/events.parquet)."),
    cutoff: str = typer.Option(..., "--cutoff", help="As-of date/time (UTC); only events with ts <= cutoff are used."),
    out_dir: Path = typer.Option(..., "--out", help="Parquet folder to write (Spark writes one file per partition)."),
    windows: str = typer.Option("7,30,90,365", "--windows", help="Window lengths in days, comma-separated."),
    platform: list[str] | None = typer.Option(None, "--platform", help="Only this platform (repeatable)."),
    master: str = MASTER_OPT,
) -> None:
    """Point-in-time features on Spark: the same SQL and the same columns as 'buyerscore features'."""
    from buyerscore.cli.features_cmd import _windows
    from buyerscore.spark import build_features_spark

    with friendly_errors():
        ts = parse_cutoff(cutoff)
        wins = _windows(windows)
        spark = _session(master)
        with step(f"features as of {ts} on Spark ({master})"):
            F = build_features_spark(spark, events, as_of=ts, windows=wins, platforms=platform or None)
            F.write.mode("overwrite").parquet(str(out_dir))
            n = spark.read.parquet(str(out_dir)).count()
    console.print(f"wrote features of {n:,} users as of {ts} to {out_dir}")


@spark_app.command("score")
def score(
    registry: Path = typer.Option(..., "--registry", help="Registry folder of 'buyerscore train' (readable from "
                                  "every executor)."),
    input: Path = typer.Option(..., "--input", help="Parquet features (file or folder), e.g. from "
                               "'buyerscore spark features'."),
    out_dir: Path = typer.Option(..., "--out", help="Parquet folder of scores to write."),
    version: str | None = typer.Option(None, "--version", help="Bundle version (default: the promoted one)."),
    reasons: bool = typer.Option(False, "--reasons/--no-reasons", help="Add reason-code columns."),
    master: str = MASTER_OPT,
) -> None:
    """Score a features table on Spark with a bundle: the columns of 'buyerscore score', row for row."""
    from buyerscore.spark import score_spark

    with friendly_errors():
        if not input.exists():
            raise FileNotFoundError(f"{input} does not exist.")
        spark = _session(master)
        with step(f"scoring {input} on Spark ({master})"):
            S = score_spark(spark.read.parquet(str(input)), registry, version=version, reasons=reasons)
            S.write.mode("overwrite").parquet(str(out_dir))
            n = spark.read.parquet(str(out_dir)).count()
    console.print(f"wrote {n:,} scores to {out_dir}")


def register(app: typer.Typer) -> None:
    """Add this area's commands to the root app."""
    app.add_typer(spark_app, name="spark")
