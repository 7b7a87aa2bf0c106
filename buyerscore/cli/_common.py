"""Shared CLI helpers: the rich console, progress bars and error reporting."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from buyerscore.exceptions import BuyerscoreError

console = Console(stderr=True)
out = Console()


def progress() -> Progress:
    """A progress display on stderr (quiet when stderr is not a terminal)."""
    return Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                    TimeElapsedColumn(), console=console, transient=False, disable=not console.is_terminal)


@contextmanager
def step(description: str) -> Iterator[None]:
    """Show a spinner with elapsed time for one step of unknown length."""
    with progress() as p:
        t = p.add_task(description, total=None)
        yield
        p.update(t, total=1, completed=1)


@contextmanager
def friendly_errors() -> Iterator[None]:
    """Turn buyerscore errors into a one-line message and exit code 2 (no traceback)."""
    try:
        yield
    except (BuyerscoreError, FileNotFoundError, ValueError) as exc:
        console.print(f"[bold red]error:[/] {exc}", markup=True, highlight=False)
        raise typer.Exit(2) from None


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")


def table(title: str, columns: list[str], rows: list[list[Any]]) -> Table:
    t = Table(title=title)
    for c in columns:
        t.add_column(c, overflow="fold")
    for r in rows:
        t.add_row(*[f"{v:,.4g}" if isinstance(v, float) else f"{v:,}" if isinstance(v, int) else str(v) for v in r])
    return t


_SLASHED = re.compile(r"\s*(\d{1,2})[/.](\d{1,2})[/.](\d{2,4})\b")


def parse_cutoff(text: str, name: str = "--cutoff") -> Any:
    """A cut-off given on the command line as a naive UTC timestamp.

    ``01/09/1997`` could be 9 January or 1 September: such a date is refused (pandas would read it
    month-first without a word) and the user is asked for ISO ``YYYY-MM-DD``.

    Examples
    --------
    >>> parse_cutoff("1997-09-30")
    Timestamp('1997-09-30 00:00:00')
    >>> parse_cutoff("01/09/1997")
    Traceback (most recent call last):
    ...
    ValueError: --cutoff='01/09/1997' is ambiguous (day/month or month/day?); write it as YYYY-MM-DD: 1997-09-01 or 1997-01-09.
    """
    from buyerscore.features.sql import to_timestamp

    m = _SLASHED.match(str(text))
    if m and int(m[1]) <= 12 and int(m[2]) <= 12 and int(m[1]) != int(m[2]):
        y = m[3] if len(m[3]) == 4 else f"20{m[3]}"
        a, b = int(m[1]), int(m[2])
        raise ValueError(f"{name}={text!r} is ambiguous (day/month or month/day?); write it as YYYY-MM-DD: "
                         f"{y}-{b:02d}-{a:02d} or {y}-{a:02d}-{b:02d}.")
    return to_timestamp(text, name=name)


def check_platforms(con: Any, platforms: list[str] | None, table: str = "events") -> None:
    """Fail when a ``--platform`` is not in the store, listing the ones that are (a typo otherwise reads as
    "no user has an event")."""
    if not platforms:
        return
    known = [r[0] for r in con.execute(f"SELECT DISTINCT platform FROM {table} ORDER BY 1").fetchall()]
    unknown = [p for p in platforms if p not in known]
    if unknown:
        raise ValueError(f"--platform {', '.join(unknown)}: not in the store; its platforms are {known}.")


PARQUET_SUFFIXES = (".parquet", ".pq")
CSV_SUFFIXES = (".csv", ".csv.gz")


def table_kind(path: Path, option: str = "--out") -> str:
    """``"parquet"`` or ``"csv"`` from an output file name; any other name is an error (it would get the wrong
    bytes: Parquet in a file named ``.csv``)."""
    name = path.name.lower()
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    if name.endswith(CSV_SUFFIXES):
        return "csv"
    raise ValueError(f"{option} {path}: write a .parquet or .csv file (the format comes from the name), e.g. "
                     f"{path.with_suffix('.parquet')}.")


def write_table(df: Any, path: Path, kind: str | None = None) -> None:
    """Write ``df`` as Parquet or CSV (``kind``, default from the name); in a CSV a list cell (the reason
    features) becomes one comma-separated text cell."""
    kind = kind or table_kind(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "csv":
        lists = [c for c in df.columns if len(df) and isinstance(df[c].iloc[0], list | tuple)]
        if lists:
            df = df.copy()
            for c in lists:
                df[c] = [",".join(map(str, v)) if isinstance(v, list | tuple) else v for v in df[c]]
        df.to_csv(path, index=False)
    else:
        df.to_parquet(path, index=False)


def check_model_out(out_dir: Path) -> None:
    """A model directory's ``--out`` must be absent, empty or a model directory (replaced whole); never
    another folder (the data folder, a home directory)."""
    from buyerscore.artifacts import META_FILE

    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"--out {out_dir} is a file; give a folder path for the model directory.")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / META_FILE).exists():
        raise ValueError(f"--out {out_dir} is a folder that holds other files, not a buyerscore model directory; "
                         "choose a new or empty folder (an existing model directory is replaced as a whole).")


@contextmanager
def staged_model_dir(out_dir: Path) -> Iterator[Path]:
    """Write a model directory beside ``out_dir`` and swap it in when complete: readers never see a
    half-written model, a failed fit leaves the earlier model as it was, and no file of an earlier model
    (``scorecard.csv`` of a scorecard retrained as a GBM, ``tier/`` after ``--no-tiers``) survives."""
    import shutil
    import tempfile

    check_model_out(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    try:
        yield stage
        old = None
        if out_dir.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".old", dir=out_dir.parent))
            out_dir.rename(old / "model")
        try:
            stage.rename(out_dir)
        except BaseException:
            if old is not None:  # put the earlier model back
                (old / "model").rename(out_dir)
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
