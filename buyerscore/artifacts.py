"""Saving and loading fitted models with their metadata.

A model directory holds ``model.joblib`` (the fitted estimator, never training rows) and
``metadata.json``: kind, feature list, training-data hash, parameters, metrics, as-of
cut-off, versions and creation time.  Loading checks that the file exists and was written
by a compatible buyerscore.
"""

from __future__ import annotations

import hashlib
import json
import platform
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib
import pandas as pd

from buyerscore import __version__
from buyerscore.exceptions import ModelInputError

MODEL_FILE = "model.joblib"
META_FILE = "metadata.json"


@dataclass
class ModelMetadata:
    """What a saved model records about itself (STYLE rule 9)."""

    kind: str
    features: list[str]
    training_data_hash: str
    params: dict[str, Any]
    metrics: dict[str, Any]
    as_of: str | None = None
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    buyerscore_version: str = __version__
    python_version: str = field(default_factory=platform.python_version)
    extra: dict[str, Any] = field(default_factory=dict)


def data_hash(df: pd.DataFrame) -> str:
    """SHA-256 over column names and values of a frame (order-sensitive)."""
    h = hashlib.sha256(json.dumps([str(c) for c in df.columns]).encode())
    h.update(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes())
    return h.hexdigest()


def _jsonable(obj: Any) -> Any:
    try:
        json.dumps(obj)
        return obj
    except TypeError:
        if isinstance(obj, dict):
            return {str(k): _jsonable(v) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return [_jsonable(v) for v in obj]
        if hasattr(obj, "item"):
            return obj.item()
        return repr(obj)


def save_model(model: Any, path: str | Path, *, kind: str, features: list[str], training_data_hash: str,
               params: dict[str, Any] | None = None, metrics: dict[str, Any] | None = None,
               as_of: str | None = None, extra: dict[str, Any] | None = None) -> Path:
    """Write ``model`` and its metadata to the directory ``path`` (created if needed)."""
    p = Path(path)
    p.mkdir(parents=True, exist_ok=True)
    meta = ModelMetadata(kind=kind, features=list(features), training_data_hash=training_data_hash,
                         params=_jsonable(params or {}), metrics=_jsonable(metrics or {}), as_of=as_of,
                         extra=_jsonable(extra or {}))
    tmp = p / (MODEL_FILE + ".tmp")
    joblib.dump(model, tmp)
    tmp.replace(p / MODEL_FILE)
    (p / META_FILE).write_text(json.dumps(asdict(meta), indent=2, default=str), encoding="utf-8")
    return p


def load_metadata(path: str | Path) -> ModelMetadata:
    p = Path(path) / META_FILE
    if not p.exists():
        raise ModelInputError(f"{Path(path)} is not a buyerscore model directory (no {META_FILE}); "
                              "train one with 'buyerscore credit train' or 'buyerscore power train'.")
    return ModelMetadata(**json.loads(p.read_text(encoding="utf-8")))


def load_model(path: str | Path) -> tuple[Any, ModelMetadata]:
    """Load a model directory written by :func:`save_model`."""
    meta = load_metadata(path)
    return joblib.load(Path(path) / MODEL_FILE), meta


def check_columns(X: pd.DataFrame, features: list[str], *, model: str = "model") -> pd.DataFrame:
    """Return ``X[features]`` or raise naming the missing, extra and mistyped columns."""
    missing = [c for c in features if c not in X.columns]
    extra = [c for c in X.columns if c not in features]
    if missing:
        raise ModelInputError(
            f"Input for {model} lacks column(s) {missing} (extra columns present: {extra[:10]}). "
            "Score with the same columns the model was trained on (see its metadata.json 'features')."
        )
    return X[features]
