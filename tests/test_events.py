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


@pytest.mark.parametrize(("values", "kwargs", "expected"), [
    (["20240301", 20240301], {}, ["2024-03-01", "2024-03-01"]),                       # YYYYMMDD text or number
    ([1709287200, 1709287200_000, 1709287200_000_000, 1709287200_000_000_000], {}, ["2024-03-01 10:00"] * 4),
    (["2024-03-01T10:00:00Z", "2024-03-01T11:00:00+01:00", "2024-03-01 05:00:00-05:00"], {}, ["2024-03-01 10:00"] * 3),
    (["01/03/2024 10:00"], {"ts_format": "%d/%m/%Y %H:%M"}, ["2024-03-01 10:00"]),
    (["2024-07-01 13:00", "2024-01-15 13:00"], {"timezone": "Europe/London"}, ["2024-07-01 12:00", "2024-01-15 13:00"]),
    (["2024-03-31 01:30"], {"timezone": "Europe/London"}, [None]),                    # does not exist (DST gap)
    (["", "  ", None, "yesterday", "SKU-1-2"], {}, [None] * 5),
    (["March 3, 2024", "3 Mar 2024 10:00"], {}, ["2024-03-03", "2024-03-03 10:00"]),
])
def test_parse_timestamps_known_answers(values, kwargs, expected):
    got = parse_timestamps(pd.Series(values, dtype=object), **kwargs)
    want = [pd.Timestamp(e) if e else pd.NaT for e in expected]
    assert got.tolist() == want or all((g == w) or (pd.isna(g) and pd.isna(w)) for g, w in zip(got, want))
    assert str(got.dtype) == "datetime64[us]"


def test_datetime_columns_keep_their_zone():
    aware = pd.Series(pd.to_datetime(["2024-03-01 12:00"]).tz_localize("Europe/Berlin"))
    assert parse_timestamps(aware)[0] == pd.Timestamp("2024-03-01 11:00")
    naive = pd.Series(pd.to_datetime(["2024-03-01 12:00"]))
    assert parse_timestamps(naive)[0] == pd.Timestamp("2024-03-01 12:00")
    assert parse_timestamps(naive, timezone="Asia/Taipei")[0] == pd.Timestamp("2024-03-01 04:00")


def test_float_ids_from_typed_files_lose_the_trailing_zero():
    raw = pd.DataFrame({"user_id": [17850.0, 13047.0, None], "ts": ["2024-01-01"] * 3, "event_type": ["view"] * 3,
                        "item_id": [1.5, 2.0, 3.0]})
    res = validate_events(raw)
    assert res.accepted["user_id"].tolist() == ["17850", "13047"]
    # per value, as the same column read from a CSV: 2.0 is '2' whatever its neighbours
    assert res.accepted["item_id"].tolist() == ["1.5", "2"]
    assert res.by_reason == {"MISSING_REQUIRED": 1}


def test_short_csv_lines_are_padded_and_long_ones_quarantined(store, tmp_path):
    f = tmp_path / "e.csv"
    f.write_text("user_id,ts,event_type,amount\nu1,2024-01-01,purchase,5\nu2,2024-01-01\n\nu3,2024-01-01,view,,x\n"
                 "u4,2024-01-02,view,\n")
    s = store.ingest_file(f)
    assert (s.read, s.accepted, s.by_reason) == (4, 2, {"MALFORMED_ROW": 1, "MISSING_REQUIRED": 1})
    rows = store.con.execute("SELECT row_number, reason FROM rejects ORDER BY 1").fetchall()
    assert rows == [(2, "MISSING_REQUIRED"), (3, "MALFORMED_ROW")]  # blank lines are not counted


def test_strict_frame_raises_and_stores_nothing(store):
    from buyerscore.exceptions import StrictModeError

    raw = pd.DataFrame({"user_id": ["u1", "u2"], "ts": ["2024-01-01", "bad"], "event_type": ["view", "view"]})
    with pytest.raises(StrictModeError, match=r"row 2: BAD_TIMESTAMP \(ts=bad\).*Nothing was stored") as err:
        store.ingest_frame(raw, source="f", strict=True)
    assert err.value.summary.rejected == 1 and not err.value.summary.stored
    assert store.counts() == {"events": 0, "rejects": 0, "users": 0}


def test_failed_dataset_load_leaves_store_unchanged(store, data_dir, monkeypatch):
    from buyerscore.datasets import load_dataset

    def boom(*_a, **_k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(store, "write_users", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        load_dataset("olist", store, data_dir)  # events are ingested first, then users fail
    assert store.counts() == {"events": 0, "rejects": 0, "users": 0}
    assert "order_payments" not in store.tables()
    assert store.con.execute("SELECT count(*) FROM ingest_batches").fetchone() == (0,)


def test_transactions_nest_and_roll_back_together(store):
    with pytest.raises(ZeroDivisionError), store.transaction():
        store.ingest_frame(pd.DataFrame({"user_id": ["u"], "ts": ["2024-01-01"], "event_type": ["view"]}), source="a")
        with store.transaction() as con:
            con.execute("CREATE TABLE t AS SELECT 1 AS x")
        raise ZeroDivisionError
    assert store.counts()["events"] == 0 and "t" not in store.tables()


@pytest.mark.parametrize(("change", "match"), [
    ({"label": [0, 2]}, r"label is not 0 or 1 in 1 row\(s\), e.g. rows \[2\]"),
    ({"label": [0, 2]}, r"rows \[2\] \(label=2\); use 1 for bad and 0 for good"),
    ({"as_of": ["2024-01-01", "soon"]}, r"rows \[2\] \(as_of='soon'\); write dates such as 2024-01-31"),
    ({"user_id": ["a", " "]}, r"rows \[2\] \(user_id=' '\); give every row an id"),
    ({"user_id": ["a", "a"]}, r"rows \[2\] \(user_id='a', as_of='2024-01-01 00:00:00'\); keep one row per applicant"),
    ({"label": [0, None]}, "label is not 0 or 1"),
    ({"as_of": ["2024-01-01", "soon"]}, "as_of is not a date"),
    ({"user_id": ["a", " "]}, "user_id is empty"),
    ({"user_id": ["a", "a"]}, r"\(user_id, as_of\) is repeated"),
])
def test_bad_applicant_tables_are_refused(store, change, match):
    t = pd.DataFrame({"user_id": ["a", "b"], "as_of": ["2024-01-01", "2024-01-01"], "label": [0, 1], "dataset": "x"})
    with pytest.raises(SchemaError, match=match):
        store.write_applicants("x", t.assign(**change))
    assert store.applicant_tables() == []


def test_day_first_file_is_read_day_first_throughout() -> None:
    """02/01/2024 alone is read month-first (documented), but when a later value (13/01/2024) only fits
    day-first, the whole column is read day-first: one file is never read two ways silently."""
    from buyerscore.events.validate import parse_timestamps

    got = parse_timestamps(pd.Series(["02/01/2024 10:00", "13/01/2024 11:00", "05/02/2024 09:00"])).tolist()
    assert got == [pd.Timestamp("2024-01-02 10:00"), pd.Timestamp("2024-01-13 11:00"), pd.Timestamp("2024-02-05 09:00")]
    assert parse_timestamps(pd.Series(["02/01/2024 10:00", "03/01/2024 11:00"])).tolist() == [
        pd.Timestamp("2024-02-01 10:00"), pd.Timestamp("2024-03-01 11:00")]


def test_column_read_two_ways_warns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="buyerscore.events.validate"):
        got = parse_timestamps(pd.Series(["01/02/2024 10:00", "01/31/2024 10:00", "13/01/2024 10:00"]))
    assert got.notna().all()
    assert any("timestamp_format" in r.getMessage() and "13/01/2024" in r.getMessage() for r in caplog.records)


def test_amounts_and_quantities_out_of_range_are_rejects_and_sums_stay_finite(store):
    """File ingestion bounds one event's amount and quantity (the API's 422 limits, as row rejects):
    three amounts of 1e308 used to be stored and summed to infinity in monetary_sum."""
    import numpy as np

    from buyerscore.features import build_features

    raw = pd.DataFrame({
        "user_id": ["a", "a", "a", "b", "c", "d", "e", "f"],
        "ts": [f"2024-01-0{d}" for d in (1, 2, 3, 4, 5, 6, 7, 8)],
        "event_type": ["purchase"] * 8,
        "amount": ["1e308", "1e12", "1e12", "2e12", "1e-9", "0", "12.5", "3"],
        "quantity": [1, 1, 1, 1, 1, 1, 1, "2000000"],
    })
    res = validate_events(raw)
    assert res.rejects["reason"].tolist() == ["AMOUNT_OUT_OF_RANGE"] * 3 + ["QUANTITY_OUT_OF_RANGE"]
    assert res.rejects["row_number"].tolist() == [1, 4, 5, 8]
    assert "amount=1e308 (allowed: 0 or 1e-08 .. 1e+12)" in res.rejects["detail"].tolist()
    assert res.accepted["amount"].tolist() == [1e12, 1e12, 0.0, 12.5]
    # a larger limit lets the 2e12 order in; more than 1e18 cannot be configured
    assert validate_events(raw, max_amount=1e13).by_reason == {"AMOUNT_OUT_OF_RANGE": 2, "QUANTITY_OUT_OF_RANGE": 1}
    with pytest.raises(ValueError, match=r"'max_amount' parameter of validate_events must be a float in"):
        validate_events(raw, max_amount=1e300)
    s = store.ingest_frame(raw, source="t")
    assert (s.accepted, s.rejected) == (4, 4)
    F = build_features(store.con, as_of="2024-02-01")
    num = F.select_dtypes("number").to_numpy(dtype=float)
    assert np.isfinite(num[~np.isnan(num)]).all()
    assert F.loc[F["user_id"] == "a", "monetary_sum"].item() == 2e12


def test_zone_local_times_next_to_offsets_and_clock_changes(caplog):
    """timezone=Europe/London: naive times are London time even next to values with their own offset
    (pandas refused the mix with "Mixed timezones detected", a traceback), and the hour the clocks skip
    or repeat is a reject that says so, without a misleading "fit neither format" warning."""
    raw = pd.DataFrame({
        "user_id": list("abcdef"),
        "ts": ["2024-03-31 01:30", "2024-10-27 01:30", "2024-06-01 12:00", "2024-03-31T01:30:00+00:00",
               "2024-06-01T12:00:00Z", "junk"],
        "event_type": ["view"] * 6,
    })
    with caplog.at_level("WARNING", logger="buyerscore.events.validate"):
        res = validate_events(raw, timezone="Europe/London")
    assert "fit neither" not in caplog.text
    assert res.rejects["row_number"].tolist() == [1, 2, 6]
    detail = res.rejects["detail"].tolist()
    assert "does not exist in Europe/London" in detail[0] and "occurs twice in Europe/London" in detail[1]
    assert detail[2] == "ts=junk"
    got = dict(zip(res.accepted["user_id"], res.accepted["ts"].astype(str), strict=True))
    assert got == {"c": "2024-06-01 11:00:00", "d": "2024-03-31 01:30:00", "e": "2024-06-01 12:00:00"}
    # without the values that carry an offset: the same zone reading
    only_naive = validate_events(raw.iloc[[2]], timezone="Europe/London")
    assert only_naive.accepted["ts"].astype(str).tolist() == ["2024-06-01 11:00:00"]
