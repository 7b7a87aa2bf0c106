"""Point-in-time features and labels: golden example, no-leakage property, real-data check, errors."""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from buyerscore.events.schema import EVENT_COLUMNS
from buyerscore.events.store import EventStore
from buyerscore.exceptions import LeakageError, SchemaError
from buyerscore.features import (
    FEATURE_NAMES,
    FEATURES,
    build_features,
    build_labels,
    describe,
    feature_names,
    feature_sql,
    get,
    unit,
)
from buyerscore.features.build import round_significant
from buyerscore.features.sentiment import load_lexicon, score_text
from buyerscore.testing.strategies import WORDS, event_frames, records_to_frame, timestamps

GOLDEN = Path(__file__).parent / "golden" / "features" / "tiny.json"


def _con(events: pd.DataFrame) -> duckdb.DuckDBPyConnection:
    """An in-memory store holding exactly ``events`` (no validation: the frames are valid by construction)."""
    store = EventStore(":memory:")
    frame = events.reindex(columns=list(EVENT_COLUMNS))
    store.con.register("_ev", frame)
    cols = ", ".join(EVENT_COLUMNS)
    store.con.execute(f"INSERT INTO events ({cols}) SELECT {cols} FROM _ev")
    store.con.unregister("_ev")
    return store.con


def _golden() -> tuple[dict, duckdb.DuckDBPyConnection]:
    g = json.loads(GOLDEN.read_text(encoding="utf-8"))
    events = records_to_frame([{"platform": "shop", **e} for e in g["events"]])
    return g, _con(events)


# --- golden ----------------------------------------------------------------------------------------

def test_golden_tiny_features() -> None:
    g, con = _golden()
    f = build_features(con, as_of=g["as_of"], windows=g["windows"]).set_index("user_id")
    assert list(f.index) == sorted(g["expected"]), "users are those with >= 1 event at or before as_of"
    assert set(f.columns) - {"platform"} == set(g["expected"]["A"]), "golden file must list every feature"
    for user, expected in g["expected"].items():
        for name, want in expected.items():
            got = f.loc[user, name]
            if want is None:
                assert pd.isna(got), f"{user}.{name}: expected undefined, got {got}"
            else:
                # features keep 12 significant digits (round_features): relative error <= 5e-12
                assert got == pytest.approx(want, rel=1e-11, abs=1e-12), f"{user}.{name}"


@pytest.mark.parametrize("horizon", ["30", "3"])
def test_golden_tiny_labels(horizon: str) -> None:
    g, con = _golden()
    lab = build_labels(con, as_of=g["as_of"], horizon_days=int(horizon)).set_index("user_id")
    assert list(lab.index) == ["A", "B"]
    for user, expected in g["expected_labels"][horizon].items():
        for name, want in expected.items():
            assert lab.loc[user, name] == pytest.approx(want), f"{user}.{name}"


# --- no leakage ------------------------------------------------------------------------------------

CUTOFF = datetime(2024, 2, 1, 12, 0, 0)
END = datetime(2024, 3, 1)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    base=event_frames(max_size=25, ts=timestamps(also=[CUTOFF, CUTOFF + timedelta(seconds=1)])),
    future=event_frames(max_size=12, ts=timestamps(CUTOFF + timedelta(seconds=1), END), id_prefix="f"),
)
def test_events_after_cutoff_never_change_features(base: pd.DataFrame, future: pd.DataFrame) -> None:
    """Adding, deleting or changing any event after the cut-off leaves every feature unchanged."""
    past = base[base["ts"] <= CUTOFF]
    reference = build_features(_con(base), as_of=CUTOFF, windows=(7, 30))
    for variant in (past, pd.concat([base, future], ignore_index=True), pd.concat([past, future], ignore_index=True)):
        got = build_features(_con(variant), as_of=CUTOFF, windows=(7, 30))
        pd.testing.assert_frame_equal(got, reference, check_dtype=False)
    # and the rows are exactly the users with an event at or before the cut-off
    assert sorted(reference["user_id"]) == sorted(past["user_id"].unique())
    # spend ignores unknown amounts but a user whose purchases are all unpriced has unknown spend
    for uid, grp in past.groupby("user_id"):
        pur = grp[grp["event_type"] == "purchase"]
        got = reference.set_index("user_id").loc[uid, "monetary_sum"]
        if len(pur) == 0:
            assert got == 0
        elif pur["amount"].notna().any():
            assert got == pytest.approx(pur["amount"].sum())
        else:
            assert math.isnan(got)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(base=event_frames(max_size=25, ts=timestamps(also=[CUTOFF, CUTOFF + timedelta(days=10)])),
       horizon=st.integers(1, 20))
def test_labels_use_only_the_horizon(base: pd.DataFrame, horizon: int) -> None:
    lab = build_labels(_con(base), as_of=CUTOFF, horizon_days=horizon, warn_censored=False).set_index("user_id")
    end = CUTOFF + timedelta(days=horizon)
    inside = base[(base["ts"] > CUTOFF) & (base["ts"] <= end)]
    assert sorted(lab.index) == sorted(base.loc[base["ts"] <= CUTOFF, "user_id"].unique())
    for uid in lab.index:
        pur = inside[(inside["user_id"] == uid) & (inside["event_type"] == "purchase")]
        ref = inside[(inside["user_id"] == uid) & (inside["event_type"] == "refund")]
        assert lab.loc[uid, "future_spend"] == pytest.approx(pur["amount"].sum())
        assert lab.loc[uid, "future_net_spend"] == pytest.approx(pur["amount"].sum() - ref["amount"].sum())
        assert lab.loc[uid, "future_purchase"] == int(len(pur) > 0)


def test_event_at_cutoff_is_a_feature_and_not_a_label() -> None:
    ev = records_to_frame([
        {"user_id": "u", "platform": "p", "ts": "2024-01-01 00:00:00", "event_type": "purchase", "amount": 5.0},
        {"user_id": "u", "platform": "p", "ts": "2024-01-10 00:00:00", "event_type": "purchase", "amount": 7.0},
        {"user_id": "u", "platform": "p", "ts": "2024-01-20 00:00:00", "event_type": "purchase", "amount": 11.0},
        {"user_id": "u", "platform": "p", "ts": "2024-01-20 00:00:01", "event_type": "purchase", "amount": 13.0},
    ])
    con = _con(ev)
    f = build_features(con, as_of="2024-01-10", windows=(7,))
    assert f.loc[0, "monetary_sum"] == 12.0
    lab = build_labels(con, as_of="2024-01-10", horizon_days=10)
    assert lab.loc[0, "future_spend"] == 11.0  # (01-10, 01-20]: the event at 01-20 00:00:00 is in, 00:00:01 is out


@pytest.mark.parametrize("horizon", [0, -1, float("nan"), float("inf"), "soon", None])
def test_inconsistent_label_window_raises(horizon: object) -> None:
    _, con = _golden()
    with pytest.raises(LeakageError, match="horizon_days"):
        build_labels(con, as_of="2024-03-31", horizon_days=horizon)  # type: ignore[arg-type]


@pytest.mark.parametrize(("kwargs", "exc", "match"), [
    ({"as_of": None}, TypeError, "as_of is required"),
    ({"as_of": "not a date"}, ValueError, "not a date or timestamp"),
    ({"as_of": "2024-03-31", "windows": ()}, ValueError, "'windows' parameter of build_features"),
    ({"as_of": "2024-03-31", "windows": (0, 7)}, ValueError, "'windows' parameter"),
    ({"as_of": "2024-03-31", "windows": (7, 7)}, ValueError, "'windows' parameter"),
    ({"as_of": "2024-03-31", "windows": (1.5,)}, ValueError, "'windows' parameter"),
    ({"as_of": "2024-03-31", "table": "nope"}, SchemaError, "No table 'nope'"),
])
def test_invalid_arguments(kwargs: dict, exc: type[Exception], match: str) -> None:
    _, con = _golden()
    with pytest.raises(exc, match=match):
        build_features(con, **kwargs)


def test_as_of_is_required_keyword() -> None:
    _, con = _golden()
    with pytest.raises(TypeError):
        build_features(con)  # type: ignore[call-arg]


def test_platform_filter_and_timezone_aware_cutoff() -> None:
    g, con = _golden()
    con.execute("UPDATE events SET platform = 'other' WHERE user_id = 'B'")
    only = build_features(con, as_of=g["as_of"], windows=(7,), platforms="shop")
    assert list(only["user_id"]) == ["A"]
    aware = build_features(con, as_of=pd.Timestamp("2024-03-31 08:00", tz="Asia/Shanghai"), windows=(7,))
    pd.testing.assert_frame_equal(aware, build_features(con, as_of=g["as_of"], windows=(7,)))


def test_empty_result_has_all_columns() -> None:
    _, con = _golden()
    f = build_features(con, as_of="2000-01-01", windows=(7,))
    assert len(f) == 0 and list(f.columns) == ["platform", "user_id", *feature_names((7,))]


# --- registry, sentiment, SQL ----------------------------------------------------------------------

def test_every_feature_is_registered_with_text_unit_and_chinese() -> None:
    for name in feature_names((7, 14, 30, 90, 365)):
        spec = get(name)
        assert spec is not None, name
        assert spec.description and spec.unit and spec.description_zh, name
        assert "{w}" not in spec.description + spec.description_zh
    assert describe("spend_14d") == "Purchase amount in the last 14 days"
    assert describe("spend_14d", lang="zh") == "近14天购买金额"
    assert unit("recency_days") == "days"
    assert len(FEATURE_NAMES) == len(set(FEATURE_NAMES)) == len(FEATURES) - 5 + 5 * 4


@pytest.mark.parametrize(("text", "score"), [
    ("Produto excelente, chegou rápido. Recomendo!", (1.0 + 0.6 + 0.9) / 3),
    ("PÉSSIMO, não recebi", (-1.0 - 0.3) / 2),
    ("great!!! but late", (0.9 - 0.6) / 2),
    ("nothing to see here 123", 0.0),
    ("", 0.0),
])
def test_sentiment_known_answers(text: str, score: float) -> None:
    assert score_text(text) == pytest.approx(score)


@settings(max_examples=15, deadline=None)
@given(texts=st.lists(st.lists(st.sampled_from([*WORDS, "Ótimo!", "RUIM.", "não,", "x1y"]), max_size=6)
                      .map(" ".join), min_size=1, max_size=4))
def test_sql_sentiment_matches_python(texts: list[str]) -> None:
    ev = records_to_frame([{"user_id": "u", "platform": "p", "ts": "2024-01-01", "event_type": "review", "text": t}
                           for t in texts])
    f = build_features(_con(ev), as_of="2024-02-01", windows=(7,))
    assert f.loc[0, "review_sentiment_mean"] == pytest.approx(np.mean([score_text(t) for t in texts]), abs=1e-9)


def test_lexicon_ships_english_and_portuguese() -> None:
    lex = load_lexicon()
    assert lex["excellent"] > 0 and lex["excelente"] > 0 and lex["péssimo"] < 0 and lex["terrible"] < 0
    assert all(-1 <= v <= 1 for v in lex.values())


def test_sql_is_generated_for_spark_too() -> None:
    q = feature_sql(as_of="2024-01-31", windows=(7, 30), dialect="spark")
    assert "unix_micros(CAST(ts AS TIMESTAMP))" in q and "unix_timestamp(" not in q and "explode(split(lower(text)" in q and "epoch(" not in q
    assert q.count("FROM events") == 1, "events are read once, through the ts <= as_of filter"


def _pandas_reference():  # the benchmark's independent pandas implementation
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "features.py"
    spec = importlib.util.spec_from_file_location("bench_features_ref", path)
    mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod.pandas_features


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ev=event_frames(min_size=1, max_size=30, platforms=("p1", "p2"),
                       ts=timestamps(also=[CUTOFF - timedelta(days=7), CUTOFF])))
def test_sql_matches_independent_pandas_implementation(ev: pd.DataFrame) -> None:
    windows = (7, 30)
    got = build_features(_con(ev), as_of=CUTOFF, windows=windows)
    ref = _pandas_reference()(ev, as_of=str(CUTOFF), windows=windows)
    assert list(got["user_id"]) == list(ref["user_id"]) and list(got["platform"]) == list(ref["platform"])
    for c in got.columns[2:]:
        np.testing.assert_allclose(got[c].to_numpy(float), ref[c].to_numpy(float), rtol=1e-9, atol=1e-9,
                                   equal_nan=True, err_msg=c)


# --- 12 significant digits ---------------------------------------------------------------------------
_finite = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e200, max_value=1e200)


@given(st.lists(_finite, min_size=2, max_size=20))
def test_rounding_keeps_order_is_idempotent_and_close(xs) -> None:
    """Rounding features to 12 digits keeps their order (so a tree's ordering of users is kept, ties aside),
    changes nothing a second time, and moves a value by at most 5e-12 of itself."""
    x = np.sort(np.array(xs))
    r = round_significant(x)
    assert np.all(np.diff(r) >= 0)
    np.testing.assert_array_equal(round_significant(r), r)
    big = np.abs(x) > 1e-290
    assert np.all(np.abs(r - x)[big] <= 5.000001e-12 * np.abs(x)[big])


@given(st.floats(min_value=1e-6, max_value=1e9))
def test_neighbouring_doubles_round_together(x) -> None:
    """A sum taken in another order lands a few units in the last place away; both give one feature value
    (unless the value sits on a rounding boundary of the 12th digit, a chance of about 1e-4)."""
    n = np.nextafter(np.nextafter(x, np.inf), np.inf)
    r, rn = round_significant([x, n])
    digits = abs(x) * 10.0 ** (11 - np.floor(np.log10(abs(x))))
    if abs(digits - np.floor(digits) - 0.5) > 1e-3:
        assert r == rn
