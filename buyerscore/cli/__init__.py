"""The ``buyerscore`` command line (typer + rich).

Each area registers its commands from its own module (``register(app)``), so the root
stays small: ``core`` (ingest, features, schema, demo), ``datasets``, ``credit``,
``power``, ``trust`` (anomaly, audit, monitor, report), ``serving`` (train, models,
serve, score) and ``spark_cmd`` (spark features, spark score).
"""

from __future__ import annotations

import logging

import typer

from buyerscore import __version__
from buyerscore.cli import core, credit, datasets, power, serving, spark_cmd, trust

app = typer.Typer(
    name="buyerscore",
    help="Judge e-commerce shoppers from behaviour logs: purchasing power, credit, anomalies, with reasons.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"buyerscore {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log progress details to stderr."),
) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


for _module in (core, datasets, credit, power, trust, serving, spark_cmd):
    _module.register(app)


def main() -> None:
    app()
