import json

import pandas as pd
import pytest

from buyerscore.events.io import ColumnMapping
from buyerscore.events.validate import parse_timestamps, validate_events
from buyerscore.exceptions import SchemaError


def test_each_bad_row_gets_its_reason():
    raw = pd.DataFrame({
        "user_id": ["u1", "u2", "", "u4", "u5", "u6", "u7", "u8", "u1"],
        "ts": ["2024-01-01", "31/31/2024", "2024-01-01", "2024-01-01", "2024-01-01", "2024-01-01", "2024-01-01",
               "2024-01-01", "2024-01-01"],
        "event_type": ["purchase", "view", "view", "teleport", "refund", "review", "payment", "purchase", "purchase"],
        "amount": ["9.5", None, None, None, None, None, "-3", "abc", "9.5"],
        "rating": [None, None, None, None, None, "6", None, None, None],
    })
    res = validate_events(raw)
    assert res.read == 9 and len(res.accepted) == 1 and len(res.rejects) == 8
    got = dict(zip(res.rejects["row_number"], res.rejects["reason"]))
    assert got == {2: "BAD_TIMESTAMP", 3: "MISSING_REQUIRED", 4: "UNKNOWN_EVENT_TYPE", 5: "MISSING_AMOUNT",
                   6: "RATING_OUT_OF_RANGE", 7: "NEGATIVE_AMOUNT", 8: "BAD_NUMBER", 9: "DUPLICATE_EVENT"}
    assert json.loads(res.rejects.iloc[0]["raw"])["ts"] == "31/31/2024"


def test_timestamps_are_utc():
    s = pd.Series(["2024-01-01T10:00:00+02:00", "2024-01-01 08:00:00", "1704096000", 1704096000000])
    got = parse_timestamps(s)
    assert (got == pd.Timestamp("2024-01-01 08:00:00")).all()


def test_missing_required_column_names_fix():
    with pytest.raises(SchemaError, match=r"\['ts'\].*--mapping"):
        validate_events(pd.DataFrame({"user_id": ["a"], "event_type": ["view"]}), source="f.csv")


def test_mapping_renames_and_recodes(tmp_path):
    p = tmp_path / "m.yaml"
    p.write_text("columns: {user_id: uid, ts: when, event_type: act}\nconstants: {platform: shop}\n"
                 "values: {event_type: {pv: view}}\n")
    m = ColumnMapping.from_yaml(p)
    df = m.apply(pd.DataFrame({"uid": ["a"], "when": ["2024-01-01"], "act": ["pv"]}))
    res = validate_events(df)
    assert res.accepted.loc[0, "event_type"] == "view" and res.accepted.loc[0, "platform"] == "shop"


def test_mapping_to_unknown_field_is_an_error(tmp_path):
    p = tmp_path / "m.yaml"
    p.write_text("columns: {userid: uid}\n")
    with pytest.raises(SchemaError, match="userid"):
        ColumnMapping.from_yaml(p)


def test_reingest_is_idempotent(store, tmp_path):
    f = tmp_path / "e.csv"
    f.write_text("user_id,ts,event_type,amount\nu1,2024-01-01,purchase,5\nu2,bad,view,\n")
    a = store.ingest_file(f)
    b = store.ingest_file(f)
    assert (a.read, a.accepted, a.rejected, a.inserted) == (2, 1, 1, 1)
    assert b.already_ingested and b.inserted == 0
    assert store.counts() == {"events": 1, "rejects": 1, "users": 0}
