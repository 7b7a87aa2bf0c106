"""``buyerscore datasets list|load``: the public datasets from their original files."""

from __future__ import annotations

from pathlib import Path

import typer

from buyerscore.cli._common import friendly_errors, out, print_json, step, table

app = typer.Typer(help="Public datasets read from their original file formats.", no_args_is_help=True)


@app.command("list")
def list_cmd(as_json: bool = typer.Option(False, "--json")) -> None:
    """List the datasets buyerscore can load."""
    from buyerscore.datasets import list_datasets
    specs = list_datasets()
    if as_json:
        print_json([{"name": s.name, "kind": s.kind, "rows": s.rows, "files": list(s.files),
                     "description": s.description} for s in specs])
        return
    out.print(table("datasets", ["name", "kind", "rows", "files", "description"],
                    [[s.name, s.kind, s.rows, "\n".join(s.files), s.description] for s in specs]))


@app.command("load")
def load_cmd(
    names: list[str] = typer.Argument(..., help="Dataset name(s), or 'all'."),
    data_dir: Path | None = typer.Option(None, "--data-dir", help="Folder with the downloaded files (default ../shared/data)."),
    db: Path = typer.Option(Path("buyerscore.duckdb"), "--db"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Read dataset(s) into the store: events validated like 'ingest', applicants as applicants_<name>."""
    from buyerscore.datasets import DATASETS, load_dataset
    from buyerscore.events.store import EventStore
    todo = list(DATASETS) if names == ["all"] else names
    results = []
    with friendly_errors(), EventStore(db) as store:
        for n in todo:
            with step(f"loading {n}"):
                results.append(load_dataset(n, store, data_dir))
    if as_json:
        print_json([r.to_dict() for r in results])
        return
    rows = []
    for r in results:
        e = r.events
        rows.append([r.name, e.read if e else r.applicants, e.accepted if e else r.applicants, e.rejected if e else 0,
                     ", ".join(f"{k}={v}" for k, v in (e.by_reason if e else {}).items()), r.users,
                     ", ".join(f"{k}={v}" for k, v in r.side_tables.items())])
    out.print(table(f"loaded into {db}", ["dataset", "read", "accepted", "rejected", "reasons", "users", "side tables"], rows))


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="datasets")
