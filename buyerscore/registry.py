"""Versioned model bundles on disk: create, list, show, promote, load.

A registry is a folder::

    registry/
      PROMOTED                 # the promoted version id (one line), replaced atomically
      versions/
        v1/
          bundle.json          # manifest: version, created_at, feature spec, models, metrics,
                               # training-data hash, as_of, config
          models/<kind>/       # one buyerscore.artifacts model directory per model kind
        v2/ ...

A bundle is written into a temporary folder and renamed into place, so a reader never
sees half a bundle; version ids are ``v1, v2, ...`` allocated under an exclusive
file lock.  Promotion writes ``PROMOTED.tmp``, fsyncs it and renames it over
``PROMOTED`` (atomic on POSIX), so a running service that polls the pointer reads either
the old or the new version, never a torn file.

Model kinds understood by :class:`~buyerscore.pipeline.ScoringPipeline`:
``power_spend`` (expected spend regressor), ``power_tier`` (high/mid/low classifier),
``credit`` (probability of default, points, grade) and ``anomaly`` (score in [0, 1], flag).

Examples
--------
>>> import tempfile
>>> from sklearn.dummy import DummyRegressor
>>> reg = ModelRegistry(tempfile.mkdtemp())
>>> m = DummyRegressor().fit([[0.0], [1.0]], [1.0, 3.0])
>>> v = reg.create({"power_spend": ModelEntry(m, features=["x"])}, as_of="2024-01-01",
...                training_data_hash="abc", feature_spec={"x": {"description": "an input"}})
>>> v, reg.promoted()
('v1', None)
>>> reg.promote(v); reg.promoted()
'v1'
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from buyerscore import __version__
from buyerscore.artifacts import ModelMetadata, load_model, save_model
from buyerscore.exceptions import BuyerscoreError

logger = logging.getLogger(__name__)

MODEL_KINDS: tuple[str, ...] = ("power_spend", "power_tier", "credit", "anomaly")
PROMOTED_FILE = "PROMOTED"
MANIFEST_FILE = "bundle.json"


class RegistryError(BuyerscoreError, LookupError):
    """A registry folder, version or bundle is missing or malformed."""


@dataclass
class ModelEntry:
    """One fitted model to put in a bundle, with what it needs to be scored."""

    model: Any
    features: list[str]
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    training_data_hash: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Bundle:
    """A loaded bundle: its manifest and its fitted models with their metadata."""

    version: str
    path: Path
    manifest: dict[str, Any]
    models: dict[str, tuple[Any, ModelMetadata]]

    @property
    def as_of(self) -> str | None:
        return self.manifest.get("as_of")


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file, fsync and rename (readers never see a torn file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


class ModelRegistry:
    """A folder of versioned model bundles with one promoted version.

    Parameters
    ----------
    root : str or Path
        Registry folder (created on the first :meth:`create`).
    """

    _thread_lock = threading.Lock()

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    # -- paths ----------------------------------------------------------------------------------
    @property
    def versions_dir(self) -> Path:
        return self.root / "versions"

    @property
    def pointer(self) -> Path:
        return self.root / PROMOTED_FILE

    def _version_dir(self, version: str) -> Path:
        if not self.root.is_dir():
            raise RegistryError(f"Registry folder {self.root} does not exist; check the --registry path, or create "
                                f"a bundle with 'buyerscore train --config FILE --as-of DATE --out {self.root}'.")
        if not re.fullmatch(r"v\d+", version):
            hint = f" (did you mean 'v{version}'?)" if version.isdigit() else ""
            raise RegistryError(f"{version!r} is not a bundle version{hint}: versions are v1, v2, ...; known "
                                f"versions: {self.versions()[-10:]}.")
        d = self.versions_dir / version
        if not (d / MANIFEST_FILE).exists():
            known = self.versions()
            what = ("its folder holds no bundle.json (a partial or damaged bundle)" if d.is_dir() else "no such bundle")
            raise RegistryError(f"No bundle {version!r} in registry {self.root}: {what}; known versions: "
                                f"{known[-10:]}. List them with 'buyerscore models list --registry {self.root}'.")
        return d

    def _manifest_of(self, version: str) -> dict[str, Any]:
        p = self.versions_dir / version / MANIFEST_FILE
        try:
            m = json.loads(p.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise RegistryError(f"Bundle {version} of registry {self.root} is damaged: {p} is not valid JSON ({exc}). "
                                "Promote another version, or train a new bundle.") from None
        if not isinstance(m, dict):
            raise RegistryError(f"Bundle {version} of registry {self.root} is damaged: {p} holds no manifest.")
        return m

    # -- writing --------------------------------------------------------------------------------
    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Exclusive lock over version allocation (processes and threads)."""
        self.versions_dir.mkdir(parents=True, exist_ok=True)
        with self._thread_lock, open(self.versions_dir / ".lock", "a+") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def create(self, models: dict[str, ModelEntry], *, as_of: str | None, training_data_hash: str,
               feature_spec: dict[str, dict[str, Any]] | None = None, metrics: dict[str, Any] | None = None,
               config: dict[str, Any] | None = None, description: str = "", report_inputs: Any = None) -> str:
        """Write a new bundle and return its version id (it is not promoted).

        Parameters
        ----------
        models : dict
            Model kind (one of :data:`MODEL_KINDS`) -> :class:`ModelEntry`.
        as_of : str or None
            Training cut-off of the behaviour features (ISO date), recorded in the manifest.
        training_data_hash : str
            Hash of the training data (:func:`buyerscore.artifacts.data_hash`); never the rows.
        feature_spec : dict, optional
            Feature name -> {description, unit, ...} of every input feature.
        metrics : dict, optional
            Bundle-level metrics (per-model metrics go in each entry).
        config : dict, optional
            The configuration used to train (recorded verbatim).
        report_inputs : ReportInputs, optional
            Hold-out numbers for ``buyerscore report`` (:func:`buyerscore.explain.report.save_inputs`),
            written to ``report_inputs/`` of the bundle.
        """
        if not models:
            raise RegistryError("A bundle needs at least one model; none were given.")
        bad = [k for k in models if k not in MODEL_KINDS]
        if bad:
            raise RegistryError(f"Unknown model kind(s) {bad}; allowed: {list(MODEL_KINDS)}.")
        self.versions_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=self.versions_dir))
        try:
            model_meta: dict[str, Any] = {}
            for kind, e in models.items():
                save_model(e.model, staging / "models" / kind, kind=kind, features=list(e.features),
                           training_data_hash=e.training_data_hash or training_data_hash, params=e.params,
                           metrics=e.metrics, as_of=as_of, extra=e.extra)
                model_meta[kind] = {"path": f"models/{kind}", "class": type(e.model).__module__ + "." +
                                    type(e.model).__qualname__, "features": list(e.features),
                                    "metrics": json.loads(json.dumps(e.metrics, default=str))}
            if report_inputs is not None:
                from buyerscore.explain.report import save_inputs

                save_inputs(report_inputs, staging / "report_inputs")
            with self._locked():
                version = f"v{1 + max((int(v[1:]) for v in self.versions()), default=0)}"
                manifest = self._manifest(version, as_of, training_data_hash, description, feature_spec,
                                          model_meta, metrics, config)
                (staging / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, default=str), encoding="utf-8")
                os.rename(staging, self.versions_dir / version)
                _fsync_dir(self.versions_dir)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        logger.info("created bundle %s with models %s", version, sorted(models))
        return version

    @staticmethod
    def _manifest(version: str, as_of: str | None, training_data_hash: str, description: str,
                  feature_spec: dict[str, Any] | None, model_meta: dict[str, Any], metrics: dict[str, Any] | None,
                  config: dict[str, Any] | None) -> dict[str, Any]:
        return {
            "version": version,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "as_of": as_of,
            "training_data_hash": training_data_hash,
            "buyerscore_version": __version__,
            "description": description,
            "feature_spec": feature_spec or {},
            "models": model_meta,
            "metrics": metrics or {},
            "config": config or {},
        }

    def promote(self, version: str) -> None:
        """Make ``version`` the one served (atomic pointer replacement).

        Refused for a version that does not exist or whose bundle is damaged (a manifest that does not
        parse, a model folder without its files), which a running service could not load.
        """
        d = self._version_dir(version)
        manifest = self._manifest_of(version)
        broken = [k for k, info in (manifest.get("models") or {}).items()
                  if not all((d / str(info.get("path", "")) / f).is_file() for f in ("model.joblib", "metadata.json"))]
        if broken:
            raise RegistryError(f"Bundle {version} of registry {self.root} is damaged: the folder of model(s) {broken} "
                                "lacks model.joblib or metadata.json; it was not promoted. Train a new bundle.")
        atomic_write_text(self.pointer, version + "\n")
        logger.info("promoted bundle %s", version)

    # -- reading --------------------------------------------------------------------------------
    def versions(self) -> list[str]:
        """Version ids, oldest first."""
        if not self.versions_dir.exists():
            return []
        vs = [p.name for p in self.versions_dir.iterdir()
              if p.is_dir() and p.name.startswith("v") and p.name[1:].isdigit()]
        return sorted(vs, key=lambda v: int(v[1:]))

    def promoted(self) -> str | None:
        """The promoted version id, or None when nothing was promoted yet."""
        try:
            v = self.pointer.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        return v or None

    def show(self, version: str | None = None) -> dict[str, Any]:
        """The manifest of ``version`` (default: the promoted one), plus ``promoted: bool``."""
        version = version or self._require_promoted()
        self._version_dir(version)
        m = self._manifest_of(version)
        m["promoted"] = version == self.promoted()
        return m

    def list(self) -> list[dict[str, Any]]:
        """One summary row per bundle: version, created_at, as_of, models, promoted."""
        promoted = self.promoted()
        rows: list[dict[str, Any]] = []
        for v in self.versions():
            p = self.versions_dir / v / MANIFEST_FILE
            if not p.exists():  # being written
                continue
            try:
                m = self._manifest_of(v)
            except RegistryError as exc:  # one damaged bundle does not hide the others
                logger.warning("%s", exc)
                rows.append({"version": v, "created_at": None, "as_of": None, "models": [], "training_data_hash": "",
                             "promoted": v == promoted, "damaged": True})
                continue
            rows.append({"version": v, "created_at": m.get("created_at"), "as_of": m.get("as_of"),
                         "models": sorted(m.get("models", {})), "training_data_hash": m.get("training_data_hash", ""),
                         "promoted": v == promoted})
        return rows

    def _require_promoted(self) -> str:
        v = self.promoted()
        if v is None and not self.root.is_dir():
            raise RegistryError(f"Registry folder {self.root} does not exist; create it with 'buyerscore train "
                                f"--out {self.root} ...' or check the --registry path.")
        if v is None:
            raise RegistryError(f"No promoted bundle in registry {self.root}; promote one with "
                                "'buyerscore models promote VERSION --registry DIR' (see 'buyerscore models list').")
        return v

    def load(self, version: str | None = None) -> Bundle:
        """Load a bundle (default: the promoted one) with all its models."""
        version = version or self._require_promoted()
        d = self._version_dir(version)
        manifest = self._manifest_of(version)
        models = {kind: load_model(d / info["path"]) for kind, info in manifest.get("models", {}).items()}
        return Bundle(version=version, path=d, manifest=manifest, models=models)
