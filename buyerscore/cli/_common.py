"""Shared CLI helpers: the rich console, progress bars and error reporting."""

from __future__ import annotations

import json
import re
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
