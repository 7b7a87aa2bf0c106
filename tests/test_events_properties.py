"""Hypothesis properties of validation: nothing is lost, one known reason per reject, accepted rows are clean."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from buyerscore.events.schema import EVENT_COLUMNS, EVENT_TYPES, MONEY_EVENTS, REJECT_REASONS
from buyerscore.events.store import EventStore
from buyerscore.events.validate import parse_timestamps, validate_events

good_ts = st.sampled_from(["2024-01-01", "2024-02-29T23:59:59", "2024-03-01T10:00:00+02:00", "1709287200",
                           "1709287200123", "20240301", "2023-12-31 08:00:00Z"])
bad_ts = st.sampled_from(["", "yesterday", "31/31/2024", "0", "2150-01-01", "2024-13-01", None])
good_type = st.sampled_from([*EVENT_TYPES, "PURCHASE", " view "])
bad_type = st.sampled_from(["", "teleport", "buy", None])
number = st.one_of(st.none(), st.sampled_from(["0", "1", "2.5", "19.99", "1e3"]))
bad_number = st.sampled_from(["-1", "abc", "inf", "-0.01", "NaN?"])
rating = st.one_of(st.none(), st.sampled_from(["1", "3", "5", "0", "6", "2.5", "x"]))
currency = st.one_of(st.none(), st.sampled_from(["USD", "gbp", "EURO", "1$"]))
event_id = st.one_of(st.none(), st.sampled_from(["a", "b", "c"]))
COLUMNS = ["event_id", "user_id", "ts", "event_type", "quantity", "amount", "currency", "rating", "installments", "text"]


@st.composite
def rows(draw: st.DrawFn) -> dict[str, str | None]:
    return {
        "event_id": draw(event_id),
        "user_id": draw(st.one_of(st.sampled_from(["u1", "u2", " u3 "]), st.sampled_from(["", "  ", None]))),
        "ts": draw(st.one_of(good_ts, bad_ts)),
        "event_type": draw(st.one_of(good_type, bad_type)),
        "quantity": draw(st.one_of(number, bad_number)),
        "amount": draw(st.one_of(number, bad_number)),
        "currency": draw(currency),
        "rating": draw(rating),
        "installments": draw(st.one_of(number, st.sampled_from(["-2", "1.5"]))),
        "text": draw(st.one_of(st.none(), st.text(max_size=20))),
    }


def _check_accepted(acc: pd.DataFrame) -> None:
    assert list(acc.columns) == list(EVENT_COLUMNS)
    assert acc["user_id"].notna().all() and (acc["user_id"].str.strip() == acc["user_id"]).all()
    assert acc["ts"].notna().all() and acc["event_type"].isin(EVENT_TYPES).all()
    assert acc["event_id"].notna().all() and acc["event_id"].is_unique
    assert ((acc["amount"] >= 0) | acc["amount"].isna()).all() and ((acc["quantity"] >= 0) | acc["quantity"].isna()).all()
    assert acc.loc[acc["event_type"].isin(list(MONEY_EVENTS)), "amount"].notna().all()
    assert acc["rating"].dropna().between(1, 5).all() and (acc["installments"].dropna() >= 0).all()
    assert acc["currency"].dropna().str.fullmatch("[A-Z]{3}").all()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(rows(), max_size=40))
def test_nothing_lost_and_one_known_reason_per_reject(records):
    raw = pd.DataFrame.from_records(records, columns=COLUMNS)
    res = validate_events(raw)
    assert res.read == len(records) == len(res.accepted) + len(res.rejects)
    assert res.rejects["reason"].isin(list(REJECT_REASONS)).all()
    assert sorted(res.rejects["row_number"].tolist()) == sorted(set(res.rejects["row_number"]))  # one reason each
    assert set(res.rejects["row_number"]).isdisjoint(set(range(1, len(records) + 1)) - set(res.rejects["row_number"]))
    assert sum(res.by_reason.values()) == len(res.rejects)
    for r in res.rejects.itertuples():  # the original row is kept, values untouched
        assert json.loads(r.raw) == records[r.row_number - 1]
    _check_accepted(res.accepted)
    # accepted rows are a fixed point: validating them again rejects nothing and changes nothing
    again = validate_events(res.accepted)
    assert len(again.rejects) == 0
    pd.testing.assert_frame_equal(again.accepted, res.accepted, check_dtype=False)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(rows(), min_size=1, max_size=30), st.integers(0, 29))
def test_store_counts_match_and_reingest_changes_nothing(records, cut):
    raw = pd.DataFrame.from_records(records, columns=COLUMNS)
    with EventStore(":memory:") as store:
        s = store.ingest_frame(raw, source="prop")
        assert s.read == s.accepted + s.rejected == len(records)
        assert store.counts()["events"] == s.inserted == s.accepted
        assert store.counts()["rejects"] == s.rejected
        # a second batch overlapping the first: only new event ids are inserted
        s2 = store.ingest_frame(raw.iloc[cut:], source="prop2")
        assert s2.inserted == 0 and s2.already_present == s2.accepted
        assert store.counts()["events"] == s.accepted


@settings(max_examples=40, deadline=None)
@given(st.datetimes(min_value=pd.Timestamp("1974-01-01").to_pydatetime(),  # ms values need > 1e11 (1973-03-03)
                    max_value=pd.Timestamp("2099-12-31").to_pydatetime()))
def test_timestamp_round_trips_through_every_encoding(dt):
    t = pd.Timestamp(dt).floor("ms")
    secs = t.value // 10**9
    enc = pd.Series([t.isoformat(), t.strftime("%Y-%m-%d %H:%M:%S.%f"), (t.tz_localize("UTC").tz_convert("Asia/Taipei")
                                                                        .isoformat()), str(t.value // 10**6)])
    got = parse_timestamps(enc)
    assert (got == t).all(), (enc.tolist(), got.tolist())
    assert parse_timestamps(pd.Series([secs]))[0] == t.floor("s")
    assert parse_timestamps(pd.Series([np.int64(t.value // 1000)]))[0] == t
