"""Operations endpoints: health and Prometheus metrics (no key needed, no user data)."""

from __future__ import annotations

import time

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

from buyerscore.serving.api.deps import StateDep
from buyerscore.serving.api.schemas import HealthOut

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=HealthOut, summary="Liveness and the served model version")
def healthz(state: StateDep) -> HealthOut:
    pipe, bundle = state.holder.current()
    return HealthOut(status="ok", model_version=bundle.version, models=pipe.kinds,
                     uptime_s=round(time.monotonic() - state.started, 3))


@router.get("/metrics", response_class=PlainTextResponse, summary="Prometheus metrics (text format 0.0.4)")
def metrics(state: StateDep) -> PlainTextResponse:
    m = state.metrics
    m.set("buyerscore_online_cache_hits", state.online.hits, help="Online feature cache hits since start.")
    m.set("buyerscore_online_cache_misses", state.online.misses, help="Online feature builds since start.")
    return PlainTextResponse(m.render(), media_type="text/plain; version=0.0.4")
