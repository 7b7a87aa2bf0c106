"""CLI commands of the serving area: train, models list|show|promote, serve, serve-key, score."""

from __future__ import annotations

from pathlib import Path

import typer

from buyerscore.cli._common import (
    console,
    friendly_errors,
    out,
    parse_cutoff,
    print_json,
    progress,
    step,
    table,
)

models_app = typer.Typer(help="List, inspect and promote model bundles of a registry.", no_args_is_help=True)

REGISTRY_OPT = typer.Option(Path("registry"), "--registry", "-r", help="Model registry folder.")


# -- train -----------------------------------------------------------------------------------------
def train(
    config: Path | None = typer.Option(None, "--config", "-c", help="buyerscore.toml (see buyerscore.toml.example)."),
    out_dir: Path = typer.Option(Path("registry"), "--out", "-o", help="Registry folder to add the bundle to."),
    as_of: str = typer.Option(..., "--as-of", help="Training cut-off of behaviour features (labels come after it)."),
    promote: bool = typer.Option(False, "--promote", help="Promote the new bundle right away."),
    as_json: bool = typer.Option(False, "--json", help="Print the bundle manifest as JSON."),
) -> None:
    """Train the configured models (purchasing power, credit, anomaly) into one versioned bundle."""
    from buyerscore.config import load_config
    from buyerscore.registry import ModelRegistry
    from buyerscore.serving.train import train_bundle

    with friendly_errors():
        cfg = load_config(config)
        ts = parse_cutoff(as_of, "--as-of")
        with step(f"training bundle as of {ts}"):
            version = train_bundle(cfg, out_dir, as_of=ts)
        reg = ModelRegistry(out_dir)
        if promote:
            reg.promote(version)
        m = reg.show(version)
    if as_json:
        print_json(m)
        return
    rows = [[k, _metric_text(info.get("metrics") or {}), len(info["features"])] for k, info in m["models"].items()]
    out.print(table(f"bundle {version} ({'promoted' if promote else 'not promoted'})", ["model", "metrics", "features"],
                    rows))
    if not promote:
        console.print(f"Promote it with: buyerscore models promote {version} --registry {out_dir}")


def _metric_text(metrics: dict[str, object], width: int = 90) -> str:
    """``name=value`` pairs up to about ``width`` characters, never cut inside a pair (a cut ``n_test=472``
    would read ``n_test=4``); counts print as integers."""
    parts = [f"{n}={v:,.0f}" if isinstance(v, int) or (isinstance(v, float) and v.is_integer() and abs(v) >= 1)
             else f"{n}={v:.4g}" for n, v in metrics.items()
             if isinstance(v, (int, float)) and not isinstance(v, bool)]
    text = ""
    for i, part in enumerate(parts):
        if text and len(text) + 2 + len(part) > width:
            return text + f", ... (+{len(parts) - i})"
        text = f"{text}, {part}" if text else part
    return text


# -- models ----------------------------------------------------------------------------------------
@models_app.command("list")
def models_list(registry: Path = REGISTRY_OPT, as_json: bool = typer.Option(False, "--json")) -> None:
    """List bundles, oldest first; * marks the promoted one."""
    from buyerscore.registry import ModelRegistry, RegistryError
    with friendly_errors():
        if not registry.is_dir():
            raise RegistryError(f"Registry folder {registry} does not exist; check the --registry path, or create a "
                                f"bundle with 'buyerscore train --config FILE --as-of DATE --out {registry}'.")
        rows = ModelRegistry(registry).list()
    if as_json:
        print_json(rows)
        return
    if not rows:
        console.print(f"no bundles in {registry} yet; train one with 'buyerscore train --config FILE --as-of DATE "
                      f"--out {registry}'.", highlight=False)
        return
    out.print(table(f"bundles in {registry}", ["", "version", "created", "as_of", "models", "data hash"],
                    [["*" if r["promoted"] else "", r["version"], r["created_at"], r["as_of"] or "",
                      ", ".join(r["models"]) or ("damaged: see the warning" if r.get("damaged") else ""),
                      r["training_data_hash"][:12]] for r in rows]))


@models_app.command("show")
def models_show(version: str | None = typer.Argument(None, help="Version (default: the promoted one)."),
                registry: Path = REGISTRY_OPT) -> None:
    """Print a bundle's manifest (feature spec, models, metrics, data hash, creation time) as JSON."""
    from buyerscore.registry import ModelRegistry
    with friendly_errors():
        print_json(ModelRegistry(registry).show(version))


@models_app.command("promote")
def models_promote(version: str = typer.Argument(..., help="Version to serve, e.g. v3."),
                   registry: Path = REGISTRY_OPT) -> None:
    """Make VERSION the served bundle (running services reload it without a restart)."""
    from buyerscore.registry import ModelRegistry
    with friendly_errors():
        reg = ModelRegistry(registry)
        before = reg.promoted()
        reg.promote(version)
    console.print(f"promoted {version} (was {before or 'none'})")


# -- serve -----------------------------------------------------------------------------------------
def serve(
    registry: Path = REGISTRY_OPT,
    config: Path | None = typer.Option(None, "--config", "-c", help="buyerscore.toml: its [serve] section and "
                                       "[store] db apply where the flag is not given."),
    db: Path | None = typer.Option(None, "--db", help="DuckDB event store (created if absent) [default: "
                                   "[store] db, else buyerscore.duckdb]."),
    host: str | None = typer.Option(None, "--host", help="[default: [serve] host, else 127.0.0.1]"),
    port: int | None = typer.Option(None, "--port", help="TCP port; 0 = any free port (see --port-file) "
                                    "[default: [serve] port, else 8000]."),
    port_file: Path | None = typer.Option(None, "--port-file", help="Write the bound port here."),
    keys_file: Path | None = typer.Option(None, "--keys-file", help="File of SHA-256 hashes of accepted API keys "
                                          "[default: [serve] api_keys_file]."),
    allow_anonymous: bool = typer.Option(False, "--allow-anonymous", help="Serve without API keys (local only)."),
    max_body_bytes: int | None = typer.Option(None, "--max-body-bytes", help="Larger request bodies get 413 "
                                              "[default: [serve] max_body_bytes, else 1000000]."),
    reload_interval: float = typer.Option(2.0, "--reload-interval", help="Seconds between promoted-version checks."),
    warm_interval: float = typer.Option(300.0, "--warm-interval", help="Seconds between background rebuilds of all "
                                        "users' features and scores (0 = build each user on first request)."),
    max_amount: float | None = typer.Option(None, "--max-amount", help="Largest event amount accepted (422 above; "
                                            "at most 1e18, so that sums stay finite) [default: [serve] max_amount, "
                                            "else 1e12]."),
    max_quantity: float | None = typer.Option(None, "--max-quantity", help="Largest event quantity accepted (422 "
                                              "above) [default: [serve] max_quantity, else 1e6]."),
    future_tolerance: float | None = typer.Option(None, "--future-tolerance", help="Seconds an event may lie after "
                                                  "the server's clock (later events get 422) [default: [serve] "
                                                  "future_tolerance_s, else 86400]."),
    log_level: str = typer.Option("warning", "--log-level", help="info also logs each request (route template, "
                                  "status, ms; never ids or payloads)."),
    openapi: bool = typer.Option(False, "--openapi", help="Print the OpenAPI spec (docs/openapi.json) and exit."),
) -> None:
    """Run the scoring API (FastAPI + uvicorn) on the promoted bundle of REGISTRY."""
    import json
    import logging

    from pydantic import ValidationError

    from buyerscore.serving.api.main import openapi_spec, run
    if openapi:
        typer.echo(json.dumps(openapi_spec(), indent=2, sort_keys=True))
        return
    logging.getLogger("buyerscore").setLevel(log_level.upper())
    from buyerscore.config import load_config
    from buyerscore.serving.api.settings import ServeSettings, load_key_hashes
    with friendly_errors():
        cfg = load_config(config)
        sv = cfg.serve
        db = db if db is not None else cfg.store.db
        host = host if host is not None else sv.host
        port = port if port is not None else sv.port
        keys_file = keys_file if keys_file is not None else sv.api_keys_file
        max_body_bytes = max_body_bytes if max_body_bytes is not None else sv.max_body_bytes
        max_amount = max_amount if max_amount is not None else sv.max_amount
        max_quantity = max_quantity if max_quantity is not None else sv.max_quantity
        future_tolerance = future_tolerance if future_tolerance is not None else sv.future_tolerance_s
        try:
            settings = ServeSettings(registry=registry, db=db, api_key_hashes=load_key_hashes(keys_file),
                                     allow_anonymous=allow_anonymous, max_body_bytes=max_body_bytes,
                                     reload_interval_s=reload_interval, warm_interval_s=warm_interval,
                                     max_amount=max_amount, max_quantity=max_quantity,
                                     future_tolerance_s=future_tolerance)
        except ValidationError as exc:
            flags = {"max_body_bytes": "--max-body-bytes", "reload_interval_s": "--reload-interval",
                     "warm_interval_s": "--warm-interval", "max_amount": "--max-amount",
                     "max_quantity": "--max-quantity", "future_tolerance_s": "--future-tolerance"}
            raise ValueError("; ".join(f"{flags.get(str(e['loc'][0]), e['loc'][0]) if e['loc'] else 'settings'}: "
                                       f"{e['msg']}" for e in exc.errors())) from None
        console.print(f"serving bundle from {registry} on http://{host}:{port} (docs at /docs)")
        run(settings, host=host, port=port, port_file=port_file, log_level=log_level)


def serve_key(keys_file: Path = typer.Option(..., "--keys-file", help="Keys file to append the hash to."),
              name: str = typer.Option("", "--name", help="Comment stored next to the hash.")) -> None:
    """Create an API key: print it once on stdout and append only its SHA-256 hash to KEYS_FILE."""
    from buyerscore.serving.api.settings import new_key
    with friendly_errors():
        if keys_file.is_dir():
            raise ValueError(f"--keys-file {keys_file} is a folder; give a file path, e.g. {keys_file / 'api-keys'}.")
        if "\n" in name or "\r" in name:
            raise ValueError("--name must be one line.")
        key, h = new_key()
        keys_file.parent.mkdir(parents=True, exist_ok=True)
        with keys_file.open("a", encoding="utf-8") as fh:
            fh.write(f"{h}{'  # ' + name if name else ''}\n")
    typer.echo(key)
    console.print(f"hash appended to {keys_file}; the key is not stored anywhere, keep it now.")


# -- batch score -----------------------------------------------------------------------------------
def score(
    registry: Path = REGISTRY_OPT,
    input: Path = typer.Option(..., "--input", "-i", help="Parquet of features (one row per user) or raw events."),
    out_path: Path = typer.Option(..., "--out", "-o", help="Parquet of scores to write."),
    as_of: str | None = typer.Option(None, "--as-of", help="Feature cut-off; required for raw events."),
    version: str | None = typer.Option(None, "--version", help="Bundle version (default: the promoted one)."),
    chunk_rows: int = typer.Option(50_000, "--chunk-rows", min=1,
                                   help="Rows per chunk (bounds memory; small chunks keep every --jobs thread busy)."),
    jobs: int | None = typer.Option(None, "--jobs", min=1, help="Chunks scored at the same time, in threads "
                                    "(default min(2, CPUs)); memory grows with it."),
    reasons: bool = typer.Option(False, "--reasons/--no-reasons", help="Add reason-code columns (SHAP-like "
                                 "contributions; several times slower for tree models)."),
    as_json: bool = typer.Option(False, "--json", help="Print the run summary as JSON."),
) -> None:
    """Score a file in streaming chunks with the promoted bundle; prints rows/s."""
    from buyerscore.pipeline import ScoringPipeline
    from buyerscore.serving.batch import score_file
    with friendly_errors():
        pipe = ScoringPipeline.from_registry(registry, version)
        ts = parse_cutoff(as_of, "--as-of") if as_of is not None else None
        with progress() as p:
            task = p.add_task(f"scoring {input.name}", total=None)
            s = score_file(pipe, input, out_path, as_of=ts, chunk_rows=chunk_rows, reasons=reasons, n_jobs=jobs,
                           on_progress=lambda done, total: p.update(task, completed=done, total=total))
    if as_json:
        print_json(s.to_dict())
    else:
        out.print(table(f"scored {input.name} -> {out_path.name}", ["rows", "seconds", "rows/s", "bundle", "models"],
                        [[s.rows, s.seconds, s.rows_per_s, s.model_version, ", ".join(s.models)]]))
        if s.events_rejected:
            reasons_txt = ", ".join(f"{k}: {v:,}" for k, v in sorted(s.events_by_reason.items()))
            out.print(f"[yellow]events rejected[/]: {s.events_rejected:,} ({reasons_txt}); they are not in the "
                      f"features. `buyerscore ingest {input}` lists each rejected row with its reason.",
                      highlight=False)
        for kind, lacks in s.skipped.items():
            more = f" and {len(lacks) - 5} more" if len(lacks) > 5 else ""
            out.print(f"[yellow]not scored[/]: {kind} (the input lacks {', '.join(lacks[:5])}{more})")


def register(app: typer.Typer) -> None:
    """Add this area's commands to the root app."""
    app.command()(train)
    app.add_typer(models_app, name="models")
    app.command()(serve)
    app.command("serve-key")(serve_key)
    app.command()(score)
