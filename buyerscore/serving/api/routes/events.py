"""``POST /v1/events``: validate like file ingestion, commit, invalidate the users' online features."""

from __future__ import annotations

import logging

import pandas as pd
from fastapi import APIRouter, Depends, HTTPException, status

from buyerscore.serving.api.deps import ApiKeyDep, StateDep
from buyerscore.serving.api.errors import require_json
from buyerscore.serving.api.limits import limit_errors
from buyerscore.serving.api.schemas import EventsRequest, EventsResponse, RejectOut

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/v1", tags=["events"], dependencies=[ApiKeyDep])


def events_frame(events: list) -> pd.DataFrame:
    """Request events -> a raw frame with canonical column names (values untouched)."""
    rows = [e.model_dump() for e in events]
    return pd.DataFrame.from_records(rows).astype(object)


def user_keys(raw: pd.DataFrame, default_platform: str) -> set[tuple[str, str]]:
    """(platform, user_id) pairs named in a raw frame, normalised like validation does."""
    uid = raw["user_id"].astype("string").str.strip()
    plat = raw["platform"].astype("string").str.strip()
    plat = plat.mask(plat == "", pd.NA).fillna(default_platform)
    return {(str(p), str(u)) for p, u in zip(plat, uid, strict=True) if not pd.isna(u)}


JSON_BODY = [Depends(require_json)]
BODY_RESPONSES: dict[int | str, dict] = {
    401: {"description": "Missing or invalid API key"},
    413: {"description": "Body larger than the server's limit"},
    415: {"description": "Body not sent as JSON (Content-Type other than application/json)"},
}


@router.post("/events", response_model=EventsResponse, summary="Store a batch of behaviour events",
             dependencies=JSON_BODY, responses=BODY_RESPONSES)
def post_events(body: EventsRequest, state: StateDep) -> EventsResponse:
    """Validate events exactly like file ingestion and commit the accepted ones in one transaction.

    A 2xx answer means every accepted event is committed to the store (it survives a crash of the
    server right after).  Rejected events are listed with their 0-based index and a reason code.
    Re-sending the same batch is a no-op (same ``batch_id``, ``already_present`` counts them).

    The whole request is refused (422, nothing stored) when an event breaks the server's limits: an
    ``amount`` above ``max_amount`` (default 1e12) or non-zero below 1e-8, a ``quantity`` above
    ``max_quantity`` (default 1e6), or a ``ts`` later than the server's clock plus
    ``future_tolerance_s`` (default one day).  Each error names the event's index, the value and the limit.
    """
    limit = state.settings.max_events_per_request
    if len(body.events) > limit:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=[{
            "loc": ["body", "events"], "type": "too_long",
            "msg": f"at most {limit} events per request; got {len(body.events)}. Split the batch."}])
    raw = events_frame(body.events)
    errs = limit_errors(raw, state.settings, state.clock())
    if errs:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=errs)
    with state.store_lock:
        summary = state.store.ingest_frame(raw, source="api", default_platform=body.platform,
                                           max_amount=state.settings.max_amount,
                                           max_quantity=state.settings.max_quantity)
        rej = state.store.con.execute(
            "SELECT row_number, reason, detail FROM rejects WHERE batch_id = ? AND source = 'api' ORDER BY row_number",
            [summary.batch_id]).fetchall() if summary.rejected else []
    state.online.invalidate(user_keys(raw, body.platform))
    m = state.metrics
    m.inc("buyerscore_events_accepted_total", summary.accepted, help="Events accepted by POST /v1/events.")
    m.inc("buyerscore_events_rejected_total", summary.rejected, help="Events rejected by POST /v1/events.")
    logger.info("events batch %s: read=%d accepted=%d rejected=%d", summary.batch_id[:8], summary.read,
                summary.accepted, summary.rejected)
    return EventsResponse(batch_id=summary.batch_id, read=summary.read, accepted=summary.accepted,
                          rejected=summary.rejected, inserted=summary.inserted, already_present=summary.already_present,
                          conflicts=summary.conflicts,
                          by_reason=summary.by_reason,
                          rejects=[RejectOut(index=int(r[0]) - 1, reason=r[1], detail=r[2]) for r in rej], durable=True)
