"""Save and load :class:`ReportInputs` as a folder of parquet files plus ``report.json``.

``buyerscore report --registry DIR`` reads such a folder (``DIR`` itself or ``DIR/report_inputs``), so
any job (the demo, a nightly scoring run) can write its inputs once and render the report later.

Files (each optional): ``credit.parquet`` (y_true, proba, score, grade), ``scorecard.parquet``,
``shap.parquet``, ``shap_values.parquet``, ``power.parquet`` (spend_true, spend_pred, tiers, tiers_true),
``anomaly.parquet`` (anomaly_score), ``anomaly_table.parquet``, ``fairness.parquet``,
``fairness_summary.parquet``, ``drift.parquet``; ``report.json`` holds title, anomaly_threshold,
drift_verdict, drift_reasons, fairness_notes, fairness_di_threshold, evaluated_on, notes and metadata.  Columns that identify a person
(``user_id``, ``email``, ...) are not written.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from buyerscore.explain.report.build import ReportInputs, cell_text, without_identifiers

logger = logging.getLogger(__name__)

_GROUPS: dict[str, tuple[str, ...]] = {
    "credit": ("y_true", "proba", "score", "grade"),
    "power": ("spend_true", "spend_pred", "tiers", "tiers_true"),
    "anomaly": ("anomaly_scores",),
}
_FRAMES = ("scorecard_table", "shap", "shap_values", "anomaly_table", "anomaly_drivers", "fairness", "fairness_summary",
           "drift")
_FILE = {"scorecard_table": "scorecard", "anomaly_scores": "anomaly_score"}
INPUTS_DIR = "report_inputs"
_META = ("title", "anomaly_threshold", "drift_verdict", "drift_reasons", "fairness_notes", "fairness_di_threshold",
         "evaluated_on", "contribution_unit", "notes", "metadata")
#: The files save_inputs writes (other parquet files in a folder, such as scores or features, are not inputs).
_INPUT_FILES = ("report.json", *(f"{g}.parquet" for g in _GROUPS), *(f"{_FILE.get(f, f)}.parquet" for f in _FRAMES))


def _clean(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    out.columns = [str(c) for c in out.columns]
    for c in out.columns:
        if out[c].dtype == object:
            out[c] = out[c].map(lambda v: None if v is None or (isinstance(v, float) and np.isnan(v)) else cell_text(v))
    return out.reset_index(drop=True)


def save_inputs(inputs: ReportInputs, path: str | Path) -> Path:
    """Write ``inputs`` to the folder ``path`` (created); returns it.

    Examples
    --------
    >>> import tempfile
    >>> d = save_inputs(ReportInputs(y_true=[0, 1], proba=[0.2, 0.7], drift_verdict="stable"), tempfile.mkdtemp())
    >>> back = load_inputs(d)
    >>> back.proba.tolist(), back.drift_verdict
    ([0.2, 0.7], 'stable')
    """
    p = Path(path)
    p.mkdir(parents=True, exist_ok=True)
    for group, fields in _GROUPS.items():
        cols = {_FILE.get(f, f): np.asarray(getattr(inputs, f)).ravel() for f in fields
                if getattr(inputs, f) is not None}
        if cols:
            lens = {k: len(v) for k, v in cols.items()}
            if len(set(lens.values())) > 1:
                raise ValueError(f"report inputs of group {group!r} must have the same length; got {lens}.")
            pd.DataFrame(cols).to_parquet(p / f"{group}.parquet", index=False)
    for f in _FRAMES:
        df = getattr(inputs, f)
        if df is not None:
            _clean(without_identifiers(df)[0]).to_parquet(p / f"{_FILE.get(f, f)}.parquet", index=False)
    meta = {"title": inputs.title, "anomaly_threshold": inputs.anomaly_threshold,
            "drift_verdict": inputs.drift_verdict, "drift_reasons": inputs.drift_reasons,
            "fairness_notes": inputs.fairness_notes, "fairness_di_threshold": inputs.fairness_di_threshold,
            "evaluated_on": inputs.evaluated_on, "contribution_unit": inputs.contribution_unit, "notes": inputs.notes,
            "metadata": inputs.metadata}
    (p / "report.json").write_text(json.dumps(meta, indent=2, default=str), encoding="utf-8")
    return p


def load_inputs(path: str | Path) -> ReportInputs:
    """Read a folder written by :func:`save_inputs` (missing files leave their fields empty)."""
    p = Path(path)
    kw: dict[str, Any] = {}
    meta_file = p / "report.json"
    if meta_file.exists():
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
        kw.update({k: v for k, v in meta.items() if k in _META and v is not None})
    for group, fields in _GROUPS.items():
        f = p / f"{group}.parquet"
        if f.exists():
            df = pd.read_parquet(f)
            for name in fields:
                col = _FILE.get(name, name)
                if col in df.columns:
                    kw[name] = df[col].to_numpy()
    for name in _FRAMES:
        f = p / f"{_FILE.get(name, name)}.parquet"
        if f.exists():
            kw[name] = pd.read_parquet(f)
    return ReportInputs(**kw)


def inputs_from_registry(path: str | Path) -> ReportInputs:
    """Report inputs from a folder: precomputed inputs (``DIR`` or ``DIR/report_inputs``) plus what saved
    model directories below ``DIR`` (``metadata.json`` + ``model.joblib``, at most 4 levels deep) provide:
    their kinds and cut-offs in the header and, for a ``CreditScorecard``, its scorecard table."""
    from buyerscore.artifacts import load_metadata, load_model

    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"registry folder {root} does not exist; pass a folder with saved models and/or "
                                "report inputs (see docs/trust.md).")
    if (root / "versions").is_dir():  # a registry of 'buyerscore train': its promoted (else newest) bundle
        from buyerscore.registry import ModelRegistry

        reg = ModelRegistry(root)
        versions: list[str | None] = [None, *reg.versions()]
        version = reg.promoted() or versions[-1]
        if version is None:
            raise FileNotFoundError(f"registry {root} has no bundle yet; run 'buyerscore train' first.")
        logger.info("report of bundle %s (%s)", version, "promoted" if version == reg.promoted() else "newest")
        inputs = inputs_from_registry(root / "versions" / version)
        inputs.metadata = {"bundle": f"{version} ({'promoted' if version == reg.promoted() else 'newest, not promoted'})",
                           **inputs.metadata}
        return inputs
    src = root / INPUTS_DIR if (root / INPUTS_DIR).is_dir() else root
    inputs = load_inputs(src)
    models = sorted(m.parent for m in root.glob("**/metadata.json") if len(m.relative_to(root).parts) <= 5)
    found: list[str] = []
    for mdir in models:
        try:
            meta = load_metadata(mdir)
        except Exception as exc:  # noqa: BLE001 - not a model directory of ours: skip it
            logger.info("skipping %s: %s", mdir, exc)
            continue
        found.append(f"{meta.kind} ({mdir.relative_to(root)}, as_of {meta.as_of or 'n/a'})")
        if inputs.scorecard_table is None and ("scorecard" in meta.kind.lower() or meta.kind == "credit"):
            model, _ = load_model(mdir)
            if hasattr(model, "scorecard_table"):
                inputs.scorecard_table = model.scorecard_table()
    if found:
        inputs.metadata = {**inputs.metadata, "models": "; ".join(found)}
    has_inputs = any((src / f).is_file() for f in _INPUT_FILES)
    if found and not has_inputs:
        from buyerscore.explain.report.build import SECTIONS

        why = (f"no precomputed report inputs in {root / INPUTS_DIR} (write them with "
               "buyerscore.explain.report.save_inputs after scoring a labelled sample)")
        for sid, _ in SECTIONS:
            inputs.notes.setdefault(sid, why)
    if not found and not has_inputs:
        raise FileNotFoundError(f"{root} holds neither saved models (metadata.json) nor report inputs (report.json, "
                                "credit.parquet, ...); write inputs with buyerscore.explain.report.save_inputs or "
                                "train a model first.")
    return inputs
