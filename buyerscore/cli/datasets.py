"""``buyerscore datasets list|load``: the public datasets from their original files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from buyerscore.cli._common import out, print_json, progress, table

app = typer.Typer(help="Public datasets read from their original file formats.", no_args_is_help=True)


@app.command("list")
def list_cmd(
    data_dir: Path | None = typer.Option(None, "--data-dir", help="Folder to look for the files in (default: as for "
                                         "'datasets load')."),
    as_json: bool = typer.Option(False, "--json", help="Print the list as JSON."),
) -> None:
    """List the datasets buyerscore can load (name, kind, rows of the main file, files)."""
    from buyerscore.datasets import default_data_dir, list_datasets, resolve
    from buyerscore.exceptions import DatasetNotFoundError

    d = data_dir or default_data_dir()
    specs = list_datasets()

    def present(files: tuple[str, ...], name: str) -> bool:
        try:
            for f in files:
                resolve(d, f, name)
        except DatasetNotFoundError:
            return False
        return True

    rows: list[dict[str, Any]] = [{"name": s.name, "kind": s.kind, "rows": s.rows, "files": list(s.files), "present": present(s.files, s.name),
             "sensitive": list(s.sensitive), "description": s.description} for s in specs]
    if as_json:
        print_json({"data_dir": str(d), "datasets": rows})
        return
    out.print(table(f"datasets (files looked up under {d})", ["name", "kind", "rows", "present", "files", "description"],
                    [[r["name"], r["kind"], r["rows"], "yes" if r["present"] else "no", "\n".join(r["files"]),
                      r["description"]] for r in rows]))


@app.command("load")
def load_cmd(
    names: list[str] = typer.Argument(..., help="Dataset name(s), or 'all'."),
    data_dir: Path | None = typer.Option(None, "--data-dir",
                                         help="Folder with the downloaded files (default: $BUYERSCORE_DATA_DIR, "
                                              "else the first of ../shared/data, ./shared/data and the shared/data "
                                              "folder beside the checkout that exists)."),
    db: Path = typer.Option(Path("buyerscore.duckdb"), "--db", help="DuckDB store file (created if absent)."),
    as_json: bool = typer.Option(False, "--json", help="Print one summary per dataset as JSON."),
) -> None:
    """Read dataset(s) into the store: events validated like 'ingest', applicants as applicants_<name>.

    Each dataset is one transaction; loading it again changes nothing.
    """
    from buyerscore.cli.core import store_errors
    from buyerscore.datasets import get_spec, load_dataset
    from buyerscore.events.store import EventStore

    results = []
    with store_errors():
        from buyerscore.datasets import DATASETS
        todo = list(DATASETS) if names == ["all"] else names
        for n in todo:
            get_spec(n)  # unknown names fail before anything is written
        created = not db.exists()
        try:
            with EventStore(db) as store, progress() as bar:
                task = bar.add_task("loading", total=len(todo))
                for n in todo:
                    results.append(load_dataset(n, store, data_dir, on_step=lambda m: bar.update(task, description=m)))
                    bar.advance(task)
                bar.update(task, description=f"loaded {len(todo)} dataset(s)")
        except BaseException:
            if created and not results:  # nothing was loaded: leave no empty store behind
                for p in (db, db.with_name(db.name + ".wal")):
                    p.unlink(missing_ok=True)
            raise
    if as_json:
        print_json([r.to_dict() for r in results])
        return
    rows = []
    for r in results:
        e = r.events
        rows.append([r.name, e.read if e else r.applicants, e.accepted if e else r.applicants, e.rejected if e else 0,
                     e.inserted if e else r.applicants,
                     ", ".join(f"{k}={v:,}" for k, v in (e.by_reason if e else {}).items()), r.users,
                     ", ".join(f"{k}={v:,}" for k, v in r.side_tables.items())])
    out.print(table(f"loaded into {db}", ["dataset", "read", "accepted", "rejected", "new", "reasons", "users",
                                          "side tables"], rows))


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="datasets")
