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
import warnings
from dataclasses import MISSING, asdict, dataclass, field, fields
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
    """The :class:`ModelMetadata` of a model directory; a missing or damaged ``metadata.json`` is a
    :class:`~buyerscore.exceptions.ModelInputError` naming the file and what to do."""
    p = Path(path) / META_FILE
    if not p.exists():
        raise ModelInputError(f"{Path(path)} is not a buyerscore model directory (no {META_FILE}); "
                              "train one with 'buyerscore credit train' or 'buyerscore power train'.")
    try:
        raw = json.loads(p.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelInputError(f"{p} is damaged ({exc}); train the model again or restore the directory from a "
                              "copy.") from None
    known = {f.name for f in fields(ModelMetadata)}
    lacking = [f.name for f in fields(ModelMetadata) if f.name not in raw and f.default is MISSING
               and f.default_factory is MISSING]
    if not isinstance(raw, dict) or lacking:
        raise ModelInputError(f"{p} is damaged: it lacks {lacking or 'every field'}; train the model again or "
                              "restore the directory from a copy.")
    # fields added by a later buyerscore are kept out of the dataclass (the saving version is recorded)
    return ModelMetadata(**{k: v for k, v in raw.items() if k in known})


def load_model(path: str | Path) -> tuple[Any, ModelMetadata]:
    """Load a model directory written by :func:`save_model`.

    A missing or unreadable ``model.joblib`` is a :class:`~buyerscore.exceptions.ModelInputError` naming
    the file, the buyerscore version that saved it and this one; a model saved by another buyerscore
    version loads with a ``UserWarning`` that names both (its scores may differ).
    """
    meta = load_metadata(path)
    f = Path(path) / MODEL_FILE
    saved_by = f"buyerscore {meta.buyerscore_version} (Python {meta.python_version})"
    if not f.exists():
        raise ModelInputError(f"{Path(path)} has {META_FILE} but no {MODEL_FILE}: the model directory is incomplete "
                              "(an interrupted save or copy?); train the model again or restore the directory.")
    try:
        model = joblib.load(f)
    except Exception as exc:  # noqa: BLE001 - truncated file, pickle of another version: one readable error
        other = meta.buyerscore_version != __version__ or meta.python_version != platform.python_version()
        fix = (f"The file is damaged or from an incompatible version: train the model again, or load it with "
               f"buyerscore {meta.buyerscore_version}." if other else
               "The file is damaged: train the model again or restore the directory from a copy.")
        raise ModelInputError(f"could not load {f} ({type(exc).__name__}: {exc}); it was saved by {saved_by}, this "
                              f"is buyerscore {__version__} (Python {platform.python_version()}). {fix}") from None
    if meta.buyerscore_version != __version__:
        warnings.warn(f"{Path(path)} was saved by {saved_by}; this is buyerscore {__version__}. Its scores may "
                      "differ from the saving version's: train it again to be sure.", UserWarning, stacklevel=2)
    return model, meta


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
