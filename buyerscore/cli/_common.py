"""Shared CLI helpers: the rich console, progress bars and error reporting."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
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
