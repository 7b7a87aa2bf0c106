"""Online features: the offline feature definitions evaluated for one user, with a cache.

There is exactly one definition of every feature, :func:`buyerscore.features.build_features`
(DuckDB SQL).  For one user we copy that user's events (a few hundred rows at most, read with
an index-free filter on the store) into a small in-memory DuckDB database with the same
schema and run the same function on it, so online and offline features are equal by
construction (tested on real data in ``tests/test_serving_online.py``).

Results are cached per ``(platform, user_id)``.  Ingesting events for a user invalidates that
user's entry only ("incremental" update: other users are untouched, and the affected user is
recomputed from their own events at the next request).  An entry built for the default cut-off
"now" is reused for ``max_staleness_s`` seconds; an explicit ``as_of`` is cached exactly.
"""

from __future__ import annotations

import gc
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import duckdb
import pandas as pd

from buyerscore.events.store import DDL, EventStore

logger = logging.getLogger(__name__)

_BASE_TABLES = ("events", "rejects", "ingest_batches", "users")


def _build_features(con: duckdb.DuckDBPyConnection, *, as_of: datetime, windows: Sequence[int]) -> pd.DataFrame:
    from buyerscore.features import build_features  # the one offline definition
    return build_features(con, as_of=as_of, windows=tuple(windows))


def utc_now() -> datetime:
    """Current time as a naive UTC datetime (the store's convention), to the microsecond."""
    return datetime.now(UTC).replace(tzinfo=None)


def to_naive_utc(ts: datetime | str | pd.Timestamp) -> datetime:
    """Parse a cut-off to a naive UTC datetime (aware values are converted, naive ones taken as UTC)."""
    t = pd.Timestamp(ts)
    if t.tzinfo is not None:
        t = t.tz_convert("UTC").tz_localize(None)
    return t.to_pydatetime()


def _py(v: Any) -> Any:
    """numpy scalar -> Python value (NaN and NA become None)."""
    if v is None or v is pd.NA:
        return None
    item = getattr(v, "item", None)
    if item is not None:
        v = item()
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


class RowView(Mapping[str, Any]):
    """Read-only view of one row of column arrays (no per-user objects are created until read)."""

    __slots__ = ("_arrays", "_pos")

    def __init__(self, arrays: dict[str, Any], pos: int) -> None:
        self._arrays = arrays
        self._pos = pos

    def __getitem__(self, key: str) -> Any:
        return _py(self._arrays[key][self._pos])

    def __iter__(self) -> Iterator[str]:
        return iter(self._arrays)

    def __len__(self) -> int:
        return len(self._arrays)

    def __contains__(self, key: object) -> bool:
        return key in self._arrays


class AmbiguousUserError(LookupError):
    """A user id exists on several platforms and no platform was given."""

    def __init__(self, platforms: list[str]) -> None:
        super().__init__(f"user exists on {len(platforms)} platforms {platforms[:5]}; pass ?platform=NAME")
        self.platforms = platforms


@dataclass
class _Entry:
    as_of: datetime
    explicit: bool
    built_at: float
    _row: pd.DataFrame | None  # one row (platform, user_id, features...) or empty; lazy for bulk entries
    scores: dict[str, Any]  # model version -> cached response payload
    scored: Mapping[str, Any] | None = None  # pipeline output row precomputed by a bulk warm-up
    scored_version: str | None = None
    bulk: bool = False
    values: Mapping[str, Any] | None = None  # the row as a mapping (bulk entries; no pandas on the hot path)
    _src: tuple[pd.DataFrame, int] | None = None

    @property
    def row(self) -> pd.DataFrame:
        if self._row is None:
            assert self._src is not None
            frame, pos = self._src
            self._row = frame.iloc[[pos]].reset_index(drop=True)
        return self._row

    @property
    def has_features(self) -> bool:
        return self.values is not None or not self.row.empty


@dataclass
class _Bulk:
    """Features (and scores) of every user from one offline build, as of one cut-off."""

    as_of: datetime
    frame: pd.DataFrame
    pos: dict[tuple[str, str], int]
    arrays: dict[str, Any]  # column -> numpy array of frame
    scored_arrays: dict[str, Any] | None
    seq: int  # invalidation sequence number when the build started
    built_at: float
    scored: pd.DataFrame | None
    version: str | None


class FeatureSandbox:
    """A private in-memory DuckDB with the store's schema, used to build features of a few events.

    Side tables of the store (anything but events/rejects/batches/users/applicants) are copied once,
    so feature families that join them see the same data as offline.
    """

    def __init__(self, store: EventStore | None = None) -> None:
        self.con = duckdb.connect(":memory:")
        self.con.execute("SET TimeZone = 'UTC'")
        self.con.execute("SET threads = 1")
        self.con.execute(DDL)
        self.lock = threading.Lock()
        if store is not None:
            tables = [r[0] for r in store.con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'").fetchall()]
            for t in tables:
                if t in _BASE_TABLES or t.startswith("applicants_"):
                    continue
                df = store.con.sql(f'SELECT * FROM "{t}"').to_arrow_table()
                self.con.register("_side", df)
                self.con.execute(f'CREATE OR REPLACE TABLE "{t}" AS SELECT * FROM _side')
                self.con.unregister("_side")

    def build(self, events: Any, users: Any | None, *, as_of: datetime, windows: Sequence[int]) -> pd.DataFrame:
        """Features of the given canonical events (arrow table or frame with the events columns)."""
        with self.lock:
            con = self.con
            con.execute("DELETE FROM events")
            con.execute("DELETE FROM users")
            con.register("_ev", events)
            try:
                con.execute("INSERT INTO events BY NAME SELECT * FROM _ev")
            finally:
                con.unregister("_ev")
            if users is not None:
                con.register("_us", users)
                try:
                    con.execute("INSERT INTO users BY NAME SELECT * FROM _us")
                finally:
                    con.unregister("_us")
            return _build_features(con, as_of=as_of, windows=windows)


class OnlineFeatures:
    """Per-user features from an :class:`~buyerscore.events.store.EventStore`, cached and invalidated.

    Parameters
    ----------
    store : EventStore
        The live store (shared with ingestion; access is serialised by ``store_lock``).
    windows : sequence of int
        Feature windows in days, as in the model bundle.
    store_lock : threading.Lock, optional
        Lock guarding ``store.con`` (the API shares it with ingestion).
    max_staleness_s : float
        How long features built for "now" are reused.
    max_entries : int
        Cache size (least recently used entries are dropped).
    """

    def __init__(self, store: EventStore, *, windows: Sequence[int], store_lock: threading.Lock | None = None,
                 max_staleness_s: float = 60.0, max_entries: int = 100_000) -> None:
        self.store = store
        self.windows = tuple(windows)
        self.store_lock = store_lock or threading.Lock()
        self.max_staleness_s = max_staleness_s
        self.max_entries = max_entries
        self._cache: OrderedDict[tuple[str, str], _Entry] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._platforms: OrderedDict[str, list[str]] = OrderedDict()
        with self.store_lock:
            self.sandbox = FeatureSandbox(store)
        self.hits = 0
        self.misses = 0
        self._seq = 0
        self._inval: dict[tuple[str, str], int] = {}
        self._bulk: _Bulk | None = None
        self.bulk_seconds: float | None = None

    # -- cache ----------------------------------------------------------------------------------
    def invalidate(self, keys: Iterable[tuple[str, str]]) -> int:
        """Drop cached entries of these ``(platform, user_id)`` keys; returns how many were dropped."""
        n = 0
        with self._cache_lock:
            self._seq += 1
            for k in keys:
                self._inval[k] = self._seq
                self._platforms.pop(k[1], None)
                if self._cache.pop(k, None) is not None:
                    n += 1
        return n

    def clear(self) -> None:
        with self._cache_lock:
            self._cache.clear()
            self._platforms.clear()
            self._bulk = None

    def _get(self, key: tuple[str, str], as_of: datetime | None) -> _Entry | None:
        with self._cache_lock:
            e = self._cache.get(key)
            if e is None:
                return None
            if as_of is None:
                ok = not e.explicit and (time.monotonic() - e.built_at) <= self.max_staleness_s
            else:
                ok = e.explicit and e.as_of == as_of
            if ok:
                self._cache.move_to_end(key)
                return e
            return None

    def _put(self, key: tuple[str, str], entry: _Entry, *, unless_invalidated_after: int | None = None) -> None:
        """Cache ``entry``; with ``unless_invalidated_after=seq`` only when the key was not invalidated
        since ``seq`` (events posted while the entry was built: it may predate them, so it answers this
        request but is not kept for the next)."""
        with self._cache_lock:
            if unless_invalidated_after is not None and self._inval.get(key, 0) > unless_invalidated_after:
                return
            self._cache[key] = entry
            self._cache.move_to_end(key)
            while len(self._cache) > self.max_entries:
                self._cache.popitem(last=False)

    # -- lookups --------------------------------------------------------------------------------
    def resolve_platform(self, user_id: str, platform: str | None) -> str | None:
        """The user's platform (None if the user has no events); raises AmbiguousUserError."""
        if platform is not None:
            return platform
        with self._cache_lock:
            plats = self._platforms.get(user_id)
        if plats is None:
            with self.store_lock:
                rows = self.store.con.sql(
                    "SELECT DISTINCT platform FROM events WHERE user_id = $1 ORDER BY 1", params=[user_id]).fetchall()
            plats = [r[0] for r in rows]
            if plats:
                with self._cache_lock:
                    self._platforms[user_id] = plats
                    while len(self._platforms) > self.max_entries:
                        self._platforms.popitem(last=False)
        if not plats:
            return None
        if len(plats) > 1:
            raise AmbiguousUserError(plats)
        return plats[0]

    def entry(self, user_id: str, platform: str, as_of: datetime | None = None) -> _Entry:
        """The cache entry (features row + cached scores) of one user, building it when needed."""
        key = (platform, user_id)
        e = self._get(key, as_of)
        if e is not None:
            self.hits += 1
            return e
        if as_of is None:
            e = self._from_bulk(key)
            if e is not None:
                self.hits += 1
                return e
        self.misses += 1
        cut = as_of or utc_now()
        with self._cache_lock:
            seq0 = self._seq  # invalidations after this may concern events the read below does not see
        with self.store_lock:
            ev = self.store.con.sql("SELECT * EXCLUDE (batch_id) FROM events WHERE user_id = $1 AND platform = $2",
                                    params=[user_id, platform]).to_arrow_table()
            us = self.store.con.sql("SELECT * FROM users WHERE user_id = $1 AND platform = $2",
                                    params=[user_id, platform]).to_arrow_table()
        row = self.sandbox.build(ev, us, as_of=cut, windows=self.windows)
        e = _Entry(as_of=cut, explicit=as_of is not None, built_at=time.monotonic(), _row=row.reset_index(drop=True),
                   scores={})
        self._put(key, e, unless_invalidated_after=seq0)
        return e

    def peek(self, user_id: str, platform: str | None, as_of: datetime | None = None) -> _Entry | None:
        """The user's entry if it can be had without touching the database (cache or bulk build), else None."""
        if platform is None:
            with self._cache_lock:
                plats = self._platforms.get(user_id)
            if not plats or len(plats) != 1:
                return None
            platform = plats[0]
        key = (platform, user_id)
        e = self._get(key, as_of)
        if e is None and as_of is None:
            e = self._from_bulk(key)
        if e is not None:
            self.hits += 1
        return e

    def _from_bulk(self, key: tuple[str, str]) -> _Entry | None:
        b = self._bulk
        if b is None or time.monotonic() - b.built_at > self.max_staleness_s:
            return None
        with self._cache_lock:
            if self._inval.get(key, 0) > b.seq:  # new events since the bulk build started
                return None
        pos = b.pos.get(key)
        if pos is None:
            return None
        values = RowView(b.arrays, pos)
        scored = None if b.scored_arrays is None else RowView(b.scored_arrays, pos)
        e = _Entry(as_of=b.as_of, explicit=False, built_at=b.built_at, _row=None, scores={}, scored=scored,
                   scored_version=b.version, bulk=True, values=values, _src=(b.frame, pos))
        self._put(key, e)
        return e

    def warm(self, pipeline: Any | None = None, *, max_users: int = 200_000) -> int:
        """Build features of every user as of now with one offline query (and score them with ``pipeline``).

        Requests for "now" are then served from this build until it is ``max_staleness_s`` old, except for
        users whose events changed since it started (they are rebuilt individually).  Runs on its own
        DuckDB cursor, so ingestion is not blocked.  Returns the number of users (0 = skipped: more than
        ``max_users`` users).
        """
        from buyerscore.features import build_features
        t0 = time.perf_counter()
        cur = self.store.con.cursor()
        try:
            n = cur.sql("SELECT count(*) FROM (SELECT DISTINCT platform, user_id FROM events)").fetchall()[0][0]
            if n > max_users:
                logger.info("not warming online features: %d users > %d", n, max_users)
                return 0
            with self._cache_lock:
                seq = self._seq
            cut = utc_now()
            frame = build_features(cur, as_of=cut, windows=self.windows).reset_index(drop=True)
        finally:
            cur.close()
        scored = pipeline.score_frame(frame) if pipeline is not None and len(frame) else None
        pos = {(p, u): i for i, (p, u) in enumerate(zip(frame["platform"], frame["user_id"], strict=True))}
        arrays = {c: frame[c].to_numpy() for c in frame.columns}
        scored_arrays = None if scored is None else {c: scored[c].to_numpy() for c in scored.columns}
        self._bulk = _Bulk(as_of=cut, frame=frame, pos=pos, arrays=arrays, scored_arrays=scored_arrays, seq=seq,
                           built_at=time.monotonic(), scored=scored, version=getattr(pipeline, "version", None))
        with self._cache_lock:  # entries of the previous build give way to the new one
            for k in [k for k, e in self._cache.items() if e.bulk]:
                del self._cache[k]
            self._inval = {k: v for k, v in self._inval.items() if v > seq}
        self.bulk_seconds = time.perf_counter() - t0
        gc.collect()
        gc.freeze()  # the bulk arrays and models are long-lived: keep them out of future GC passes
        logger.info("warmed online features of %d users in %.2fs", len(frame), self.bulk_seconds)
        return len(frame)

    def features(self, user_id: str, platform: str, as_of: datetime | None = None) -> pd.DataFrame:
        """One-row frame of the user's features (empty if no event at or before the cut-off)."""
        return self.entry(user_id, platform, as_of).row
