"""Core commands: ingest, schema, export, and (registered by the features module) features and demo."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import typer
from rich.markup import escape

from buyerscore.cli._common import console, friendly_errors, out, print_json, progress, table
from buyerscore.events.io import FORMATS, ColumnMapping
from buyerscore.events.schema import (
    APPLICANT_FIELDS,
    EVENT_FIELDS,
    REJECT_REASONS,
    USER_FIELDS,
    data_model_markdown,
)
from buyerscore.events.store import DEFAULT_CHUNK_ROWS, EventStore
from buyerscore.exceptions import BuyerscoreError, StrictModeError


@contextmanager
def store_errors() -> Iterator[None]:
    """Unusable input, store and OS errors -> one unwrapped line on stderr and exit code 2 (no traceback).

    Like ``friendly_errors`` (which stays the outer guard), but never wraps the message, and it also
    explains DuckDB and permission errors.
    """
    import duckdb

    with friendly_errors():
        try:
            yield
        except (BuyerscoreError, ValueError, OSError, duckdb.Error) as exc:
            if isinstance(exc, PermissionError):
                msg = f"permission denied: {exc.filename}; choose a path you can read and write."
            elif isinstance(exc, duckdb.Error):
                msg = (f"store error: {str(exc).splitlines()[0]}. If the file comes from another buyerscore "
                       "version, ingest into a new --db.")
            else:
                msg = str(exc)
            console.print(f"[bold red]error:[/] {escape(msg)}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None


def _remove_store(db: Path) -> None:
    """Delete a store file this command created, with its write-ahead log, if no batch was committed to it."""
    try:
        with EventStore(db, read_only=True) as store:
            if store.con.execute("SELECT count(*) FROM ingest_batches").fetchone()[0]:  # type: ignore[index]
                return
    except Exception:  # noqa: BLE001 - unreadable or locked: leave it alone
        return
    for p in (db, db.with_name(db.name + ".wal")):
        p.unlink(missing_ok=True)


def ingest(
    path: Path = typer.Argument(..., help="File of events (csv, parquet or jsonl; .gz allowed for csv)."),
    fmt: str | None = typer.Option(None, "--format", help=f"One of {', '.join(FORMATS)}; default: from the name."),
    db: Path = typer.Option(Path("buyerscore.duckdb"), "--db", help="DuckDB store file (created if absent)."),
    mapping: Path | None = typer.Option(None, "--mapping", help="YAML column mapping (see docs/ingestion.md)."),
    platform: str = typer.Option("default", "--platform", help="Platform for rows without one."),
    strict: bool = typer.Option(False, "--strict",
                                help="Store nothing and exit with code 1 if any row would be rejected."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON on stdout."),
    chunk_rows: int = typer.Option(DEFAULT_CHUNK_ROWS, "--chunk-rows", min=1,
                                   help="Rows validated at a time (about 1 GB of memory per million rows); "
                                        "all chunks are still one atomic batch."),
) -> None:
    """Validate a file of behaviour events and store it; bad rows go to the rejects table with a reason.

    One file is one atomic batch: after a crash the store holds all of it or none of it.
    Ingesting the same file again changes nothing; events whose event_id is stored already are skipped.
    """
    failed: StrictModeError | None = None
    created, opened = not db.exists(), False
    with store_errors():
        m = ColumnMapping.from_yaml(mapping) if mapping else None
        try:
            with EventStore(db) as store, progress() as bar:
                opened = True
                task = bar.add_task(f"ingesting {path.name}", total=None)
                try:
                    s = store.ingest_file(path, fmt=fmt, mapping=m, default_platform=platform, strict=strict,
                                          on_step=lambda msg: bar.update(task, description=msg),
                                          chunk_rows=chunk_rows)
                except StrictModeError as exc:
                    failed, s = exc, exc.summary  # type: ignore[attr-defined]
                bar.update(task, total=1, completed=1, description=f"ingested {path.name}")
        except BaseException:
            if created and opened:  # nothing was stored: leave no empty store behind (e.g. a mistyped path)
                _remove_store(db)
            raise
    if failed is not None and created:
        _remove_store(db)
    if as_json:
        print_json(s.to_dict())
    else:
        note = " (already ingested: nothing changed)" if s.already_ingested else \
            " (--strict: nothing stored)" if not s.stored else ""
        out.print(table(f"ingest {path.name}{note}", ["read", "accepted", "rejected", "inserted", "already present"],
                        [[s.read, s.accepted, s.rejected, s.inserted, s.already_present]]))
        if s.by_reason:
            out.print(table("rejects by reason", ["reason", "rows", "meaning"],
                            [[k, v, REJECT_REASONS.get(k, "")] for k, v in s.by_reason.items()]))
            if s.stored:
                console.print(f"Rejected rows are in table 'rejects' of {db} (batch_id '{s.batch_id}').",
                              highlight=False)
    if failed is not None:
        console.print(f"[red]error:[/] {escape(str(failed))}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)


def schema(
    markdown: bool = typer.Option(False, "--markdown", help="Print docs/data-model.md."),
    as_json: bool = typer.Option(False, "--json", help="Print the fields as JSON."),
) -> None:
    """Show the canonical data model (events, applicants, users, reject reasons)."""
    if markdown:
        typer.echo(data_model_markdown(), nl=False)
        return
    if as_json:
        print_json({"events": [asdict(f) for f in EVENT_FIELDS], "applicants": [asdict(f) for f in APPLICANT_FIELDS],
                    "users": [asdict(f) for f in USER_FIELDS], "reject_reasons": REJECT_REASONS})
        return
    out.print(table("events", ["field", "type", "required", "unit", "allowed", "meaning"],
                    [[f.name, f.dtype, "yes" if f.required else "", f.unit, f.allowed, f.description]
                     for f in EVENT_FIELDS]))
    out.print(table("reject reasons", ["reason", "meaning"], [[k, v] for k, v in REJECT_REASONS.items()]))


def export(
    db: Path = typer.Option(Path("buyerscore.duckdb"), "--db", help="DuckDB store file."),
    out_dir: Path = typer.Option(Path("export"), "--out", help="Folder for <table>.parquet files."),
    tables: str = typer.Option("events,rejects,users", "--tables",
                               help="Comma-separated tables, or 'all' (every table in the store)."),
    as_json: bool = typer.Option(False, "--json", help="Print {table: {path, rows}} as JSON."),
) -> None:
    """Export tables of the store to Parquet (zstd), one file per table."""
    with store_errors(), EventStore(db, read_only=True) as store:
        names = None if tables.strip() == "all" else tuple(t.strip() for t in tables.split(",") if t.strip())
        with progress() as bar:
            task = bar.add_task("exporting", total=None)
            written = store.export_parquet(out_dir, names, on_step=lambda msg: bar.update(task, description=msg))
            bar.update(task, total=1, completed=1, description=f"exported {len(written)} table(s)")
    if as_json:
        print_json({t: {"path": str(p), "rows": n} for t, (p, n) in written.items()})
    else:
        out.print(table(f"exported to {out_dir}", ["table", "rows", "file"],
                        [[t, n, str(p)] for t, (p, n) in written.items()]))


def register(app: typer.Typer) -> None:
    app.command()(ingest)
    app.command()(schema)
    app.command()(export)
    try:  # features/demo commands live with the features package
        from buyerscore.cli import features_cmd
        features_cmd.register(app)
    except ImportError:  # pragma: no cover - during bootstrap only
        pass


__all__ = ["export", "ingest", "register", "schema", "store_errors"]
