"""Public hypothesis strategies for canonical behaviour events.

Use them to property-test anything that consumes events (features, validation, scoring)::

    from hypothesis import given
    from buyerscore.testing.strategies import event_frames

    @given(event_frames(max_size=20))
    def test_something(events): ...

Rows are *valid* canonical events (they pass :func:`buyerscore.events.validate.validate_events`):
money events carry an amount, ratings lie in 1..5, amounts and quantities are non-negative;
purchases may lack an amount (a clickstream without prices).  Timestamps are naive UTC with
second resolution.  ``hypothesis`` is a test dependency (extra ``[dev]``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
from hypothesis import strategies as st

from buyerscore.events.schema import EVENT_COLUMNS, EVENT_TYPES

DEFAULT_START = datetime(2024, 1, 1)
DEFAULT_END = datetime(2024, 3, 1)
WORDS = ("good", "great", "bad", "terrible", "ok", "produto", "ótimo", "ruim", "não", "chegou", "rápido",
         "broken", "recomendo", "item", "the", "de")


def timestamps(start: datetime = DEFAULT_START, end: datetime = DEFAULT_END,
               also: Sequence[datetime] = ()) -> st.SearchStrategy[datetime]:
    """Naive UTC datetimes at whole seconds in ``[start, end]``; ``also`` adds values to hit often
    (e.g. a cut-off, to test the ``ts <= as_of`` boundary)."""
    span = int((end - start).total_seconds())
    base = st.integers(0, span).map(lambda s: start + timedelta(seconds=s))
    return st.one_of(base, st.sampled_from(list(also))) if also else base


@st.composite
def event_records(
    draw: Any, *, users: Sequence[str] = ("u1", "u2", "u3"), platforms: Sequence[str] = ("shop",),
    ts: st.SearchStrategy[datetime] | None = None, event_types: Sequence[str] = EVENT_TYPES,
) -> dict[str, Any]:
    """One valid canonical event as a dict (no ``event_id``: :func:`event_frames` numbers them)."""
    et = draw(st.sampled_from(list(event_types)))
    money = st.floats(0, 500, allow_nan=False).map(lambda x: round(x, 2))
    rec: dict[str, Any] = {
        "user_id": draw(st.sampled_from(list(users))),
        "ts": draw(ts if ts is not None else timestamps()),
        "event_type": et,
        "platform": draw(st.sampled_from(list(platforms))),
        "item_id": draw(st.one_of(st.none(), st.sampled_from(["i1", "i2", "i3", "i4"]))),
        "category": draw(st.one_of(st.none(), st.sampled_from(["c1", "c2"]))),
        "quantity": draw(st.one_of(st.none(), st.integers(0, 5).map(float))),
        "amount": None, "currency": None, "order_id": draw(st.one_of(st.none(), st.sampled_from(["o1", "o2", "o3"]))),
        "rating": None, "text": None, "installments": None,
    }
    if et in ("refund", "payment", "repayment"):
        rec["amount"] = draw(money)
    elif et == "purchase":
        rec["amount"] = draw(st.one_of(st.none(), money))
    if rec["amount"] is not None:
        rec["currency"] = "USD"
    if et == "review":
        rec["rating"] = draw(st.one_of(st.none(), st.integers(1, 5)))
        rec["text"] = draw(st.one_of(st.none(), st.lists(st.sampled_from(WORDS), max_size=6).map(" ".join)))
    if et == "payment":
        rec["installments"] = draw(st.one_of(st.none(), st.integers(0, 12)))
    return rec


def records_to_frame(records: Sequence[dict[str, Any]], *, id_prefix: str = "e") -> pd.DataFrame:
    """Canonical event frame (columns of ``EVENT_COLUMNS``, typed) from records; ``event_id`` is assigned
    as ``<id_prefix><row>`` where absent."""
    df = pd.DataFrame(list(records), columns=list(EVENT_COLUMNS))
    if df["event_id"].isna().any():
        df["event_id"] = [eid if isinstance(eid, str) else f"{id_prefix}{i}" for i, eid in enumerate(df["event_id"])]
    df["ts"] = pd.to_datetime(df["ts"]).astype("datetime64[us]")
    for c in ("quantity", "amount"):
        df[c] = pd.to_numeric(df[c]).astype("float64")
    for c in ("rating", "installments"):
        df[c] = pd.array(df[c].tolist(), dtype="Int64")
    for c in ("event_id", "user_id", "event_type", "platform", "item_id", "category", "currency", "order_id", "text"):
        df[c] = df[c].astype(object).where(df[c].notna(), None)
    return df


def event_frames(
    *, min_size: int = 0, max_size: int = 30, users: Sequence[str] = ("u1", "u2", "u3"),
    platforms: Sequence[str] = ("shop",), ts: st.SearchStrategy[datetime] | None = None,
    event_types: Sequence[str] = EVENT_TYPES, id_prefix: str = "e",
) -> st.SearchStrategy[pd.DataFrame]:
    """Frames of valid canonical events (see :func:`event_records`), ``event_id`` unique within a frame."""
    rec = event_records(users=users, platforms=platforms, ts=ts, event_types=event_types)
    return st.lists(rec, min_size=min_size, max_size=max_size).map(
        lambda rs: records_to_frame(rs, id_prefix=id_prefix))
