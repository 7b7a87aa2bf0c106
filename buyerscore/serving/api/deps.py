"""Application state and the dependencies routes declare (``PipelineDep``, ``StateDep``, ``ApiKeyDep``)."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd
from fastapi import Depends, HTTPException, Request, Security, status
from fastapi.security import APIKeyHeader

from buyerscore.events.store import EventStore
from buyerscore.features.registry import describe
from buyerscore.pipeline import ScoringPipeline, categorical_features, model_frame
from buyerscore.registry import Bundle, ModelRegistry
from buyerscore.serving.api.metrics import Metrics
from buyerscore.serving.api.settings import ServeSettings, key_matches
from buyerscore.serving.online import OnlineFeatures, utc_now

logger = logging.getLogger(__name__)

DEFAULT_WINDOWS: tuple[int, ...] = (7, 30, 90, 365)


def bundle_windows(bundle: Bundle) -> tuple[int, ...]:
    """Feature windows a bundle was trained with (manifest ``windows`` or ``config.features.windows``)."""
    m = bundle.manifest
    w = m.get("windows") or ((m.get("config") or {}).get("features") or {}).get("windows") or DEFAULT_WINDOWS
    return tuple(int(x) for x in w)


class PipelineHolder:
    """Serves the promoted bundle and swaps in a newly promoted one without a restart.

    The pointer file is checked at most every ``interval_s`` seconds, on request; loading
    happens once (under a lock) and the swap is a single reference assignment, so requests in
    flight finish on the old pipeline.
    """

    def __init__(self, root: Path, *, interval_s: float, reason_k: int, metrics: Metrics) -> None:
        self.registry = ModelRegistry(root)
        self.interval_s = interval_s
        self.reason_k = reason_k
        self.metrics = metrics
        self._lock = threading.Lock()
        self._checked = 0.0
        self.bundle = self.registry.load()
        self.pipeline = ScoringPipeline.from_bundle(self.bundle, reason_k=reason_k)
        self._publish()
        self.listeners: list[Any] = []

    def _publish(self) -> None:
        self.metrics.set("buyerscore_model_info", 1.0, help="Served model bundle.", version=self.bundle.version)

    def current(self) -> tuple[ScoringPipeline, Bundle]:
        now = time.monotonic()
        if now - self._checked >= self.interval_s:
            self.maybe_reload(now)
        return self.pipeline, self.bundle

    def maybe_reload(self, now: float | None = None) -> bool:
        with self._lock:
            self._checked = now if now is not None else time.monotonic()
            v = self.registry.promoted()
            if v is None or v == self.bundle.version:
                return False
            try:
                bundle = self.registry.load(v)
                pipe = ScoringPipeline.from_bundle(bundle, reason_k=self.reason_k)
            except Exception:  # keep serving the old bundle
                logger.exception("could not load promoted bundle %s; still serving %s", v, self.bundle.version)
                self.metrics.inc("buyerscore_model_reload_failures_total", help="Failed hot reloads.")
                return False
            old = self.bundle.version
            self.metrics.set("buyerscore_model_info", 0.0, version=old)
            self.bundle, self.pipeline = bundle, pipe
            self._publish()
            self.metrics.inc("buyerscore_model_reloads_total", help="Hot reloads of a promoted bundle.")
            for fn in self.listeners:
                fn(bundle)
            logger.warning("hot-reloaded model bundle %s -> %s", old, v)
            return True


@dataclass
class AppState:
    settings: ServeSettings
    holder: PipelineHolder
    store: EventStore
    store_lock: threading.Lock
    online: OnlineFeatures
    metrics: Metrics
    started: float = field(default_factory=time.monotonic)
    clock: Callable[[], datetime] = utc_now
    """The server's clock (naive UTC): the default cut-off of ``POST /v1/score`` and the reference of the
    future-timestamp check.  Tests replace it to be independent of the wall clock."""
    _applicants: dict[str, pd.DataFrame] = field(default_factory=dict)

    @classmethod
    def build(cls, settings: ServeSettings) -> AppState:
        metrics = Metrics()
        holder = PipelineHolder(settings.registry, interval_s=settings.reload_interval_s, reason_k=settings.reason_k,
                                metrics=metrics)
        store = EventStore(settings.db)
        lock = threading.Lock()
        online = OnlineFeatures(store, windows=bundle_windows(holder.bundle), store_lock=lock,
                                max_staleness_s=max(settings.feature_staleness_s, 2 * settings.warm_interval_s))

        def _on_reload(bundle: Bundle) -> None:
            w = bundle_windows(bundle)
            if w != online.windows:
                online.windows = w
                online.clear()

        holder.listeners.append(_on_reload)
        state = cls(settings=settings, holder=holder, store=store, store_lock=lock, online=online, metrics=metrics)
        if settings.warm_interval_s > 0:
            state.start_warmer()
        return state

    def start_warmer(self) -> None:
        """Re-build every user's features (and scores) in the background every ``warm_interval_s`` seconds."""
        self._stop = threading.Event()
        self._wake = threading.Event()
        self.holder.listeners.append(lambda _bundle: self._wake.set())  # re-score everyone with a new bundle

        def loop() -> None:
            while not self._stop.is_set():
                try:
                    ds = self.credit_dataset()
                    if ds:
                        self.applicant_row(ds, "")  # load the applicant table once
                    n = self.online.warm(self.holder.current()[0], max_users=self.settings.warm_max_users)
                    self.metrics.set("buyerscore_online_warm_users", n, help="Users in the last bulk warm-up.")
                    self.metrics.set("buyerscore_online_warm_seconds", self.online.bulk_seconds or 0.0,
                                     help="Duration of the last bulk warm-up.")
                except Exception:  # never kill the service; per-user builds still work
                    logger.exception("bulk warm-up of online features failed")
                self._wake.wait(self.settings.warm_interval_s)
                self._wake.clear()

        self._warmer = threading.Thread(target=loop, name="buyerscore-warmer", daemon=True)
        self._warmer.start()

    def close(self) -> None:
        stop = getattr(self, "_stop", None)
        if stop is not None:
            stop.set()
            self._wake.set()
            self._warmer.join(timeout=30)
        with self.store_lock:
            self.store.close()

    def credit_dataset(self) -> str | None:
        """Applicant table the served credit model was trained on (``params.dataset``), if any."""
        m = self.holder.bundle.models.get("credit")
        return None if m is None else (m[1].params or {}).get("dataset")

    def applicants_loaded(self, dataset: str | None) -> bool:
        return dataset is not None and dataset in self._applicants

    def applicant_row(self, dataset: str, user_id: str, as_of: Any = None) -> pd.DataFrame | None:
        """Latest applicant record of ``user_id`` in ``applicants_<dataset>`` dated at or before ``as_of``
        (default: the latest of all), predictors only; None when there is none.  A record dated after the
        cut-off is never used for a score as of the cut-off (no leakage).

        The table is read once (applicant tables are small and never written by the API) and indexed by id.
        """
        frame = self._applicants.get(dataset)
        if frame is None:
            table = f"applicants_{dataset}"
            with self.store_lock:
                if table in self.store.applicant_tables():
                    df = self.store.con.sql(f'SELECT * FROM "{table}"').df()
                else:
                    df = pd.DataFrame({"user_id": pd.Series(dtype="string")})
            if "as_of" not in df.columns:
                df["as_of"] = pd.NaT
            df = df.sort_values("as_of", kind="stable", na_position="first")
            df = df.astype({"user_id": "string"}).set_index("user_id")
            frame = df.drop(columns=[c for c in ("label", "dataset") if c in df.columns])
            self._applicants[dataset] = frame
        if user_id not in frame.index:
            return None
        rec = frame.loc[[user_id]]
        if as_of is not None:  # undated records (NaT) count as known at any cut-off
            dated = pd.to_datetime(rec["as_of"])
            rec = rec[dated.isna() | (dated <= pd.Timestamp(as_of))]
        if rec.empty:
            return None
        return rec.iloc[[-1]].drop(columns=["as_of"]).reset_index(drop=True)


async def get_state(request: Request) -> AppState:
    return request.app.state.buyerscore  # type: ignore[no-any-return]


StateDep = Annotated[AppState, Depends(get_state)]


async def get_pipeline(state: StateDep) -> ScoringPipeline:
    return state.holder.current()[0]


PipelineDep = Annotated[ScoringPipeline, Depends(get_pipeline)]

_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="API key (stored hashed on the server).")


async def require_api_key(state: StateDep, key: Annotated[str | None, Security(_api_key_header)] = None) -> None:
    """401 unless the request carries an accepted key (or the server allows anonymous use)."""
    if state.settings.allow_anonymous:
        return
    if not key_matches(key, state.settings.api_key_hashes):
        state.metrics.inc("buyerscore_auth_failures_total", help="Requests rejected for a missing or bad key.")
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail="missing or invalid API key (header X-API-Key)",
                            headers={"WWW-Authenticate": "APIKey"})


ApiKeyDep = Depends(require_api_key)


# -- turning pipeline output into response sections --------------------------------------------------
def _f(v: Any) -> float | None:
    if v is None:
        return None
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


_VERB = {"en": {"power": "lowers the expected spend", "credit": "lowers the score", "anomaly": "is unusual"},
         "zh": {"power": "拉低了预期消费", "credit": "拉低了评分", "anomaly": "异常"}}


def _value(v: Any) -> float | str | None:
    if isinstance(v, str):
        return v
    return _f(v)


def _reasons(scored: Mapping[str, Any], X: Mapping[str, Any], section: str, k: int,
             lang: str) -> list[dict[str, Any]]:
    out = []
    verb = _VERB["zh" if lang == "zh" else "en"][section]
    for i in range(1, k + 1):
        name = scored.get(f"{section}_reason_{i}")
        if name is None or pd.isna(name):
            continue
        c = float(scored[f"{section}_reason_{i}_contribution"])
        v = _value(X.get(name))
        vtxt = "missing" if v is None else v if isinstance(v, str) else f"{v:,.4g}"
        if lang == "zh":
            text = f"{describe(name, 'zh')}（值 {vtxt}）{verb}"
        else:
            text = f"{describe(name)} ({vtxt}) {verb}"
        out.append({"feature": str(name), "contribution": c, "value": v, "text": text})
    return out


def _listed(items: list[str], n: int = 8) -> str:
    shown = ", ".join(items[:n])
    return shown + (f", ... ({len(items)} in all)" if len(items) > n else "")


def input_warnings(pipeline: ScoringPipeline, X: pd.DataFrame, kind: str) -> list[dict[str, Any]]:
    """Inputs of the first row of ``X`` that the ``kind`` model never saw in training: a category not in
    its training data, or a number below / above the training range (``unseen_inputs``, as
    ``buyerscore credit score`` warns).  The row is still scored; models without a training profile
    (``input_profile_``) give none.  Never raises: a failed check only loses the warnings.
    """
    model = pipeline.models.get(kind)
    check = getattr(model, "unseen_inputs", None)
    if not callable(check) or not getattr(model, "input_profile_", None):
        return []
    try:
        Xf = model_frame(X.iloc[:1], pipeline.features[kind], categorical_features(model))  # what the model is given
        unseen = check(Xf)
    except Exception:  # the model scored this input; a missing warning must not fail the request
        logger.debug("unseen_inputs failed for %s", kind, exc_info=True)
        return []
    profile = getattr(model, "input_profile_", {})
    out = []
    for feat, rows in unseen.items():
        if 0 not in rows or feat not in Xf.columns:
            continue
        value = _value(Xf[feat].iloc[0])
        info = profile.get(feat) or {}
        if "categories" in info:
            issue = "unseen_category"
            msg = (f"{feat} = {value!r} is a category the {kind} model never saw in training (known: "
                   f"{_listed([str(c) for c in info['categories']])}); it was scored like an unknown category. "
                   "Check the value (a typo, another coding?).")
        elif isinstance(value, float) and "min" in info and value < info["min"]:
            issue = "below_training_range"
            msg = (f"{feat} = {value:g} is below the smallest value seen in training ({info['min']:g}); it was "
                   "scored like the smallest values. Check the value and its unit.")
        elif isinstance(value, float) and "max" in info:
            issue = "above_training_range"
            msg = (f"{feat} = {value:g} is above the largest value seen in training ({info['max']:g}); it was "
                   "scored like the largest values. Check the value and its unit.")
        else:
            continue
        out.append({"model": kind, "feature": str(feat), "value": value, "issue": issue, "message": msg})
    return out


def sections(pipeline: ScoringPipeline, X: pd.DataFrame | None, *, lang: str = "en",
             scored: Mapping[str, Any] | None = None, row: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Score a one-row frame and shape the response sections (power, credit, anomaly, unavailable).

    With ``scored`` and ``row`` (the pipeline's output and the feature values of one user, as
    precomputed by the bulk warm-up) nothing is scored again and ``X`` is not needed.  Each section
    lists in ``warnings`` the inputs its models never saw in training.
    """
    if scored is None or row is None:
        assert X is not None
        scored = pipeline.score_frame(X).iloc[0].to_dict()  # plain dicts: cheaper than Series look-ups
        row = X.iloc[0].to_dict()
    k = pipeline.reason_k
    values = row

    def warn(kind: str) -> list[dict[str, Any]]:
        model = pipeline.models.get(kind)
        if not getattr(model, "input_profile_", None):  # most models: nothing to compare with, no cost
            return []
        frame = X if X is not None else pd.DataFrame([{f: values.get(f) for f in pipeline.features[kind]}])
        return input_warnings(pipeline, frame, kind)

    res: dict[str, Any] = {"model_version": pipeline.version, "unavailable": {}}
    missing = pipeline.missing_features(tuple(row))
    power_kinds = [kd for kd in ("power_spend", "power_tier") if kd in pipeline.models]
    if power_kinds:
        if all(missing[kd] for kd in power_kinds):
            m = missing[power_kinds[0]]
            res["unavailable"]["power"] = f"missing {len(m)} feature(s), e.g. {m[:3]}"
        else:
            probs = None
            if "power_p_high" in scored:
                probs = {t: float(scored[f"power_p_{t}"]) for t in ("high", "mid", "low")}
            tier = scored.get("power_tier")
            res["power"] = {"expected_spend": _f(scored.get("power_expected_spend")),
                            "tier": None if tier is None or pd.isna(tier) else str(tier),
                            "probabilities": probs,
                            "reasons": _reasons(scored, row, "power", k, lang),
                            "warnings": [w for kd in power_kinds if not missing[kd] for w in warn(kd)]}
    if "credit" in pipeline.models:
        if missing["credit"]:
            m = missing["credit"]
            res["unavailable"]["credit"] = f"missing {len(m)} feature(s), e.g. {m[:3]}"
        else:
            g = scored.get("credit_grade")
            res["credit"] = {"pd": _f(scored["credit_pd"]), "score": _f(scored["credit_score"]),
                             "grade": None if g is None or (isinstance(g, float) and np.isnan(g)) else str(g),
                             "reasons": _reasons(scored, row, "credit", k, lang),
                             "warnings": warn("credit")}
    if "anomaly" in pipeline.models:
        if missing["anomaly"]:
            m = missing["anomaly"]
            res["unavailable"]["anomaly"] = f"missing {len(m)} feature(s), e.g. {m[:3]}"
        else:
            res["anomaly"] = {"score": _f(scored["anomaly_score"]), "flag": bool(scored["anomaly_flag"]),
                              "reasons": _reasons(scored, row, "anomaly", k, lang),
                              "warnings": warn("anomaly")}
    return res


def as_iso(ts: datetime | None) -> str | None:
    return None if ts is None else ts.isoformat()
