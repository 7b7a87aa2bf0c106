"""Core commands: ingest, schema, and (registered by the features module) features and demo."""

from __future__ import annotations

from pathlib import Path

import typer

from buyerscore.cli._common import console, friendly_errors, out, print_json, step, table
from buyerscore.events.io import FORMATS, ColumnMapping
from buyerscore.events.schema import data_model_markdown
from buyerscore.events.store import EventStore


def ingest(
    path: Path = typer.Argument(..., help="File of events (csv, parquet or jsonl; .gz allowed for csv)."),
    fmt: str | None = typer.Option(None, "--format", help=f"One of {', '.join(FORMATS)}; default: from the name."),
    db: Path = typer.Option(Path("buyerscore.duckdb"), "--db", help="DuckDB store file (created if absent)."),
    mapping: Path | None = typer.Option(None, "--mapping", help="YAML column mapping (see docs/ingestion.md)."),
    platform: str = typer.Option("default", "--platform", help="Platform for rows without one."),
    strict: bool = typer.Option(False, "--strict", help="Exit with code 1 if any row is rejected."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON on stdout."),
) -> None:
    """Validate a file of behaviour events and store it; bad rows go to the rejects table with a reason."""
    with friendly_errors():
        m = ColumnMapping.from_yaml(mapping) if mapping else None
        with EventStore(db) as store, step(f"ingesting {path.name}"):
            s = store.ingest_file(path, fmt=fmt, mapping=m, default_platform=platform)
    if as_json:
        print_json(s.to_dict())
    else:
        note = " (already ingested: nothing changed)" if s.already_ingested else ""
        out.print(table(f"ingest {path.name}{note}", ["read", "accepted", "rejected", "inserted", "already present"],
                        [[s.read, s.accepted, s.rejected, s.inserted, s.already_present]]))
        if s.by_reason:
            out.print(table("rejects by reason", ["reason", "rows"], [[k, v] for k, v in s.by_reason.items()]))
            console.print(f"Rejected rows are in table 'rejects' of {db} (batch {s.batch_id[:12]}).")
    if strict and s.rejected:
        console.print(f"[red]--strict: {s.rejected} row(s) rejected[/]")
        raise typer.Exit(1)


def schema(markdown: bool = typer.Option(False, "--markdown", help="Print docs/data-model.md.")) -> None:
    """Show the canonical data model (events, applicants, users, reject reasons)."""
    from buyerscore.events.schema import EVENT_FIELDS
    if markdown:
        typer.echo(data_model_markdown())
        return
    out.print(table("events", ["field", "type", "required", "meaning"],
                    [[f.name, f.dtype, "yes" if f.required else "", f.description] for f in EVENT_FIELDS]))


def export(
    db: Path = typer.Option(Path("buyerscore.duckdb"), "--db"),
    out_dir: Path = typer.Option(Path("export"), "--out", help="Folder for <table>.parquet files."),
) -> None:
    """Export events, rejects and users to Parquet."""
    with friendly_errors(), EventStore(db) as store:
        for p in store.export_parquet(out_dir):
            out.print(str(p))


def register(app: typer.Typer) -> None:
    app.command()(ingest)
    app.command()(schema)
    app.command()(export)
    try:  # features/demo commands live with the features package
        from buyerscore.cli import features_cmd
        features_cmd.register(app)
    except ImportError:  # pragma: no cover - during bootstrap only
        pass
