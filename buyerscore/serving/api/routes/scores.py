"""Scores: ``GET /v1/users/{user_id}/score`` (stored events) and ``POST /v1/score`` (payload only)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal

import pandas as pd
from fastapi import APIRouter, HTTPException, Path, Query, Response, status
from fastapi.concurrency import run_in_threadpool

from buyerscore.events.validate import validate_events
from buyerscore.exceptions import ModelInputError
from buyerscore.pipeline import ScoringPipeline
from buyerscore.serving.api.deps import ApiKeyDep, AppState, PipelineDep, StateDep, sections
from buyerscore.serving.api.limits import limit_errors
from buyerscore.serving.api.routes.events import BODY_RESPONSES, JSON_BODY, events_frame
from buyerscore.serving.api.schemas import ScoreRequest, ScoreResponse
from buyerscore.serving.online import AmbiguousUserError, _Entry, to_naive_utc

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/v1", tags=["scores"], dependencies=[ApiKeyDep])

Lang = Annotated[Literal["en", "zh"], Query(description="Language of reason texts.")]


def _422(loc: list[str], msg: str, typ: str = "value_error") -> HTTPException:
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=[{"loc": loc, "msg": msg, "type": typ}])


@router.get("/users/{user_id}/score", response_model=ScoreResponse, response_model_exclude_none=False,
            summary="Score a user from their stored events",
            responses={401: {"description": "Missing or invalid API key"},
                       404: {"description": "No event of this user at or before the cut-off (and no applicant record)"}})
async def user_score(
    state: StateDep, pipeline: PipelineDep,
    user_id: Annotated[str, Path(min_length=1, max_length=200)],
    platform: Annotated[str | None, Query(min_length=1, max_length=100)] = None,
    as_of: Annotated[datetime | None, Query(description="Feature cut-off (default: now, UTC).")] = None,
    lang: Lang = "en",
) -> Response:
    """Purchasing power, credit and anomaly scores of one user, with reason codes and the model version.

    Features are the offline definitions evaluated on the user's stored events up to ``as_of``;
    they are cached and recomputed after new events for this user arrive.
    """
    cut = to_naive_utc(as_of) if as_of is not None else None
    entry = state.online.peek(user_id, platform, cut)  # no database access: safe on the event loop
    if entry is not None and entry.has_features:
        key = f"{pipeline.version}:{lang}"
        cached = entry.scores.get(key)
        if cached is not None:
            return Response(cached, media_type="application/json")
        dataset = state.credit_dataset()
        cols = tuple(entry.values) if entry.values is not None else tuple(entry.row.columns)
        needs_applicant = bool(dataset and "credit" in pipeline.models and pipeline.missing_features(cols)["credit"])
        if not needs_applicant or state.applicants_loaded(dataset):
            plat = entry.values["platform"] if entry.values is not None else entry.row["platform"].iloc[0]
            return _score_entry(state, pipeline, user_id, str(plat), entry, lang)
    return await run_in_threadpool(_user_score_sync, state, pipeline, user_id, platform, cut, lang)


def _score_entry(state: AppState, pipeline: ScoringPipeline, user_id: str, plat: str | None, entry: _Entry | None,
                 lang: str, cut: datetime | None = None) -> Response:
    key = f"{pipeline.version}:{lang}"
    pre: Mapping[str, Any] | None = None
    row: Mapping[str, Any] | None = None
    X: pd.DataFrame | None = None
    has = entry is not None and entry.has_features
    if (entry is not None and has and entry.values is not None and entry.scored is not None
            and entry.scored_version == pipeline.version):
        pre, row = entry.scored, entry.values  # bulk-scored: row views, no pandas
        cols = tuple(row)
    else:
        X = entry.row.reset_index(drop=True) if entry is not None and has else pd.DataFrame({"user_id": [user_id]})
        cols = tuple(X.columns)
    dataset = state.credit_dataset()
    if dataset and "credit" in pipeline.models and pipeline.missing_features(cols)["credit"]:
        # credit predictors of an applicant with this id, known at the features' cut-off
        app = state.applicant_row(dataset, user_id, entry.as_of if entry is not None else cut)
        if app is not None:
            if X is None:
                assert entry is not None
                X = entry.row.reset_index(drop=True)
            X = pd.concat([X, app.drop(columns=[c for c in app.columns if c in X.columns]).reset_index(drop=True)],
                          axis=1)
            pre = row = None
    if X is not None and len(X.columns) == 1:
        raise HTTPException(status.HTTP_404_NOT_FOUND,
                            detail="no events for this user at or before the cut-off, and no applicant record")
    try:
        res = sections(pipeline, X, lang=lang, scored=pre, row=row)
    except (ModelInputError, ValueError, TypeError) as exc:
        raise _422(["path", "user_id"], str(exc)) from None
    res.update(user_id=user_id, platform=plat, as_of=entry.as_of if entry is not None else None)
    body = ScoreResponse.model_validate(res).model_dump_json().encode()
    if entry is not None and has:
        entry.scores[key] = body  # served as is until the user's events or the model change
    return Response(body, media_type="application/json")


def _user_score_sync(state: AppState, pipeline: ScoringPipeline, user_id: str, platform: str | None,
                     cut: datetime | None, lang: str) -> Response:
    try:
        plat = state.online.resolve_platform(user_id, platform)
    except AmbiguousUserError as exc:
        raise _422(["query", "platform"], str(exc), "missing") from None
    entry = state.online.entry(user_id, plat, cut) if plat is not None else None
    if entry is not None and entry.has_features:
        cached = entry.scores.get(f"{pipeline.version}:{lang}")
        if cached is not None:
            return Response(cached, media_type="application/json")
    return _score_entry(state, pipeline, user_id, plat, entry, lang, cut)


@router.post("/score", response_model=ScoreResponse, summary="Score a payload of features or raw events",
             dependencies=JSON_BODY, responses=BODY_RESPONSES)
def score_payload(body: ScoreRequest, state: StateDep, pipeline: PipelineDep, lang: Lang = "en") -> dict:
    """Score features given directly, or features built from raw events of one user; nothing is stored.

    Each section's ``warnings`` lists inputs its model never saw in training (a category not in the
    training data, a number outside the training range); the section is still scored.  Events obey
    the limits of ``POST /v1/events`` (amount, quantity, no timestamp in the future).
    """
    if (body.features is None) == (body.events is None):
        raise _422(["body"], "give exactly one of 'features' or 'events'")
    as_of = None
    if body.features is not None:
        X = pd.DataFrame([{k: (float("nan") if v is None else v) for k, v in body.features.items()}])
        user_id, platform = body.user_id, body.platform
        missing = pipeline.missing_features(X.columns)
        if all(missing.values()):  # no model could score: say which features each one needs
            known = set(pipeline.input_features)
            odd = [c for c in X.columns if c not in known]
            hint = f"; not features of any model: {odd[:5]}" if odd else ""
            raise _422(["body", "features"], "no model of bundle " + pipeline.version + " can score these features: "
                       + "; ".join(f"{k} lacks {v[:5]}" for k, v in missing.items()) + hint)
    else:
        assert body.events is not None
        if len(body.events) > state.settings.max_events_per_request:
            raise _422(["body", "events"], f"at most {state.settings.max_events_per_request} events", "too_long")
        raw = events_frame(body.events)
        errs = limit_errors(raw, state.settings, state.clock())
        if errs:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=errs)
        res = validate_events(raw, source="request", default_platform=body.platform or "default",
                              max_amount=state.settings.max_amount, max_quantity=state.settings.max_quantity)
        if len(res.rejects):
            first = res.rejects.iloc[0]
            raise _422(["body", "events", str(int(first["row_number"]) - 1)],
                       f"{len(res.rejects)} event(s) rejected; first: {first['reason']} ({first['detail']})")
        acc = res.accepted
        keys = acc[["platform", "user_id"]].drop_duplicates()
        if len(keys) != 1:
            raise _422(["body", "events"], f"events must belong to one user; got {len(keys)} (platform, user_id) pairs")
        platform, user_id = str(keys.iloc[0, 0]), str(keys.iloc[0, 1])
        as_of = to_naive_utc(body.as_of) if body.as_of is not None else state.clock()
        X = state.online.sandbox.build(acc, None, as_of=as_of, windows=state.online.windows)
        if X.empty:
            raise _422(["body", "as_of"], "no event at or before as_of")
    try:
        out = sections(pipeline, X, lang=lang)
    except (ModelInputError, ValueError, TypeError) as exc:
        raise _422(["body", "features"], str(exc)) from None
    out.update(user_id=user_id, platform=platform, as_of=as_of)
    return out
