"""Online features equal the offline build for the same events and cut-off (real Taobao and CDNOW users)."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
import pytest

from buyerscore.datasets import read_dataset
from buyerscore.events.store import EventStore
from buyerscore.features import build_features
from buyerscore.serving.online import OnlineFeatures

WINDOWS = (7, 30, 90, 365)
CASES = {  # dataset -> (users, cut-off, incremental split time)
    "taobao": (300, datetime(2017, 12, 1, 12, 0), pd.Timestamp("2017-11-29")),
    "cdnow_sample": (300, datetime(1997, 12, 31), pd.Timestamp("1997-06-30")),
}


def _events(data_dir, name: str) -> pd.DataFrame:
    n_users, _, _ = CASES[name]
    ev = read_dataset(name, data_dir).events
    users = ev["user_id"].drop_duplicates().head(n_users)
    return ev[ev["user_id"].isin(users)].reset_index(drop=True)


def _assert_same(online: pd.DataFrame, offline: pd.DataFrame) -> None:
    assert list(online.columns) == list(offline.columns)
    pd.testing.assert_frame_equal(online.reset_index(drop=True), offline.reset_index(drop=True),
                                  check_exact=False, rtol=1e-9, atol=1e-12, check_dtype=True)


def _online_rows(online: OnlineFeatures, keys: list[tuple[str, str]], as_of: datetime) -> pd.DataFrame:
    rows = [online.features(u, p, as_of) for p, u in keys]
    return pd.concat(rows, ignore_index=True)


@pytest.mark.parametrize("name", sorted(CASES))
def test_online_equals_offline_with_incremental_updates(data_dir, tmp_path, name: str) -> None:
    n_users, as_of, split = CASES[name]
    ev = _events(data_dir, name)
    ts = pd.to_datetime(pd.to_numeric(ev["ts"], errors="coerce"), unit="s") if name == "taobao" else \
        pd.to_datetime(ev["ts"])
    early, late = ev[ts <= split], ev[ts > split]
    with EventStore(tmp_path / "s.duckdb") as store:
        store.ingest_frame(early, source="early", default_platform=name)
        online = OnlineFeatures(store, windows=WINDOWS)
        rng = np.random.default_rng(0)
        offline = build_features(store.con, as_of=as_of, windows=WINDOWS)
        keys = [tuple(offline.loc[i, ["platform", "user_id"]]) for i in rng.choice(len(offline), 12, replace=False)]
        _assert_same(_online_rows(online, keys, as_of), offline.set_index(["platform", "user_id"]).loc[keys]
                     .reset_index())
        # new events arrive (as through POST /v1/events): ingest, invalidate the touched users only
        store.ingest_frame(late, source="late", default_platform=name)
        touched = {(name, str(u)) for u in late["user_id"].astype(str)}
        online.invalidate(touched)
        offline2 = build_features(store.con, as_of=as_of, windows=WINDOWS)
        assert len(offline2) == n_users
        keys2 = [tuple(offline2.loc[i, ["platform", "user_id"]]) for i in rng.choice(len(offline2), 12, replace=False)]
        keys2 += [k for k in keys if k in touched][:6]  # users cached before the update
        _assert_same(_online_rows(online, keys2, as_of),
                     offline2.set_index(["platform", "user_id"]).loc[keys2].reset_index())


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CASES))
def test_online_equals_offline_every_user(data_dir, tmp_path, name: str) -> None:
    _, as_of, _ = CASES[name]
    with EventStore(tmp_path / "s.duckdb") as store:
        store.ingest_frame(_events(data_dir, name), source="all", default_platform=name)
        offline = build_features(store.con, as_of=as_of, windows=WINDOWS)
        online = OnlineFeatures(store, windows=WINDOWS)
        keys = list(zip(offline["platform"], offline["user_id"], strict=True))
        _assert_same(_online_rows(online, keys, as_of), offline)


def test_cache_reuse_and_invalidation(data_dir, tmp_path) -> None:
    as_of = datetime(1997, 12, 31)
    with EventStore(tmp_path / "s.duckdb") as store:
        store.ingest_frame(_events(data_dir, "cdnow_sample").head(200), source="a", default_platform="cdnow_sample")
        online = OnlineFeatures(store, windows=WINDOWS)
        uid = store.con.execute("SELECT min(user_id) FROM events").fetchall()[0][0]
        a = online.features(uid, "cdnow_sample", as_of)
        assert online.features(uid, "cdnow_sample", as_of) is a and online.hits == 1
        store.ingest_frame(pd.DataFrame({"user_id": [uid], "ts": ["1997-12-30"], "event_type": ["purchase"],
                                         "amount": [123.0]}), source="b", default_platform="cdnow_sample")
        assert online.features(uid, "cdnow_sample", as_of) is a  # stale until invalidated ...
        assert online.invalidate([("cdnow_sample", uid)]) == 1
        b = online.features(uid, "cdnow_sample", as_of)
        assert b["monetary_sum"].iloc[0] == pytest.approx(a["monetary_sum"].iloc[0] + 123.0)
        assert online.resolve_platform(uid, None) == "cdnow_sample"
        assert online.resolve_platform("nobody", None) is None
        assert online.features("nobody", "cdnow_sample", as_of).empty


def test_entry_built_across_an_invalidation_is_not_cached(data_dir, tmp_path, monkeypatch) -> None:
    """Events posted while a user's entry is being built (invalidation in between): the entry answers the
    request that built it but is not cached, so the next request sees the new events (was: a stale entry
    put back after the invalidation, served until it aged out)."""
    with EventStore(tmp_path / "s.duckdb") as store:
        store.ingest_frame(_events(data_dir, "cdnow_sample").head(200), source="a", default_platform="cdnow_sample")
        online = OnlineFeatures(store, windows=WINDOWS)
        uid = store.con.execute("SELECT min(user_id) FROM events").fetchall()[0][0]
        build = online.sandbox.build

        def build_while_events_arrive(*args, **kwargs):  # type: ignore[no-untyped-def]
            row = build(*args, **kwargs)  # the events read before ...
            store.ingest_frame(pd.DataFrame({"user_id": [uid], "ts": ["1997-12-30"], "event_type": ["purchase"],
                                             "amount": [123.0]}), source="b", default_platform="cdnow_sample")
            online.invalidate([("cdnow_sample", uid)])  # ... a POST /v1/events lands now
            return row

        monkeypatch.setattr(online.sandbox, "build", build_while_events_arrive)
        a = online.entry(uid, "cdnow_sample")
        monkeypatch.setattr(online.sandbox, "build", build)
        b = online.entry(uid, "cdnow_sample")
        assert b is not a and online.misses == 2
        assert b.row["monetary_sum"].iloc[0] == pytest.approx(a.row["monetary_sum"].iloc[0] + 123.0)
        assert online.entry(uid, "cdnow_sample") is b  # no invalidation during this build: cached


def test_bulk_warm_equals_per_user_build_and_respects_new_events(data_dir, tmp_path) -> None:
    with EventStore(tmp_path / "s.duckdb") as store:
        store.ingest_frame(_events(data_dir, "taobao").head(3000), source="a", default_platform="taobao")
        online = OnlineFeatures(store, windows=WINDOWS, max_staleness_s=600)
        n = online.warm()
        keys = store.con.execute("SELECT DISTINCT platform, user_id FROM events ORDER BY 2 LIMIT 8").fetchall()
        assert n == store.con.execute("SELECT count(DISTINCT user_id) FROM events").fetchall()[0][0]
        for p, u in keys:
            bulk = online.entry(u, p)
            assert bulk.bulk
            _assert_same(bulk.row, online.features(u, p, bulk.as_of))  # the per-user path, same cut-off
        p, u = keys[0]
        before = online.entry(u, p).row["n_events"].iloc[0]
        store.ingest_frame(pd.DataFrame({"user_id": [u], "ts": ["2017-11-30"], "event_type": ["view"]}),
                           source="b", default_platform=p)
        online.invalidate([(p, u)])
        e = online.entry(u, p)
        assert not e.bulk and e.row["n_events"].iloc[0] == before + 1
        assert online.warm(max_users=1) == 0  # too many users: skipped, per-user builds still serve


def test_online_equals_offline_events_replayed_out_of_order(data_dir, tmp_path) -> None:
    """Online Retail users with refunds: events posted a few at a time in random order, some batches sent
    twice, and late events dated before a cut-off that was already scored (and cached). Every user's
    online features as of that cut-off, and of a user never seen, equal the offline build of the same events."""
    ev = read_dataset("online_retail", data_dir).events
    n = ev["user_id"].value_counts()
    ev = ev[ev["user_id"].isin(n.index[(n >= 5) & (n <= 60)])]  # small users: a fast replay
    refunders = ev.loc[ev["event_type"] == "refund", "user_id"].drop_duplicates().head(15)
    others = ev.loc[~ev["user_id"].isin(refunders), "user_id"].drop_duplicates().head(15)
    ev = ev[ev["user_id"].isin(pd.concat([refunders, others]))].reset_index(drop=True)
    as_of = datetime(2011, 9, 30)
    rng = np.random.default_rng(7)
    shuffled = ev.iloc[rng.permutation(len(ev))].reset_index(drop=True)
    with EventStore(tmp_path / "live.duckdb") as live, EventStore(tmp_path / "file.duckdb") as file:
        file.ingest_frame(ev, source="file", default_platform="online_retail")
        online = OnlineFeatures(live, windows=WINDOWS)
        keys = sorted({("online_retail", str(u)) for u in ev["user_id"]})
        sizes = rng.integers(20, 120, size=len(shuffled))
        i = 0
        while i < len(shuffled):
            batch = shuffled.iloc[i:i + int(sizes[i])]
            if i and rng.random() < 0.3:  # a retried batch: duplicates of stored events
                batch = pd.concat([batch, shuffled.iloc[max(0, i - 40):i]])
            live.ingest_frame(batch, source="api", default_platform="online_retail")
            online.invalidate({("online_retail", str(u)) for u in batch["user_id"].astype(str)})
            for p, u in keys[:4]:  # scored (and cached) as of the cut-off while events still arrive
                online.features(u, p, as_of)
            i += len(shuffled.iloc[i:i + int(sizes[i])])
        offline = build_features(file.con, as_of=as_of, windows=WINDOWS)
        assert offline["refund_count"].gt(0).sum() >= 10
        got = pd.concat([online.features(u, p, as_of) for p, u in keys], ignore_index=True)
        want = offline.set_index(["platform", "user_id"]).reindex(got.set_index(["platform", "user_id"]).index)
        assert len(got) == len(offline)
        _assert_same(got, want.reset_index())
        assert online.features("never-seen", "online_retail", as_of).empty
