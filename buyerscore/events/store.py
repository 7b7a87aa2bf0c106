"""The event store: an embedded DuckDB file holding events, rejects, users and applicants.

Every ingest is one transaction: the accepted events, the rejects and the batch record
are committed together, so an interrupted ingest (even ``kill -9``) leaves the store as it
was before that batch or after it, never half-written.  A batch is identified by the hash
of its content (plus mapping); re-ingesting it is a no-op, and events whose ``event_id`` is
already stored are never inserted twice.
"""

from __future__ import annotations

import hashlib
import json
import logging
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

import duckdb
import numpy as np
import pandas as pd

from buyerscore._validation import check_param
from buyerscore.events.io import (
    ColumnMapping,
    RaggedInput,
    RawInput,
    check_input,
    file_digest,
    iter_input,
    read_input,
)
from buyerscore.events.schema import (
    APPLICANT_FIELDS,
    EVENT_COLUMNS,
    EVENT_FIELDS,
    MAX_AMOUNT,
    MAX_QUANTITY,
    USER_FIELDS,
)
from buyerscore.events.validate import _raw_json, empty_rejects, kept_raw_columns, validate_events
from buyerscore.exceptions import SchemaError, StrictModeError, UnreadableInputError

logger = logging.getLogger(__name__)

_EVENTS_DDL = ", ".join(f'"{f.name}" {f.dtype}' for f in EVENT_FIELDS)
_USERS_DDL = ", ".join(f'"{f.name}" {f.dtype}' for f in USER_FIELDS)
DDL = f"""
CREATE TABLE IF NOT EXISTS events ({_EVENTS_DDL}, batch_id VARCHAR);
CREATE TABLE IF NOT EXISTS rejects (batch_id VARCHAR, source VARCHAR, row_number BIGINT, reason VARCHAR,
                                    detail VARCHAR, raw VARCHAR);
CREATE TABLE IF NOT EXISTS ingest_batches (batch_id VARCHAR, source VARCHAR, ingested_at TIMESTAMP,
                                           summary VARCHAR);
CREATE TABLE IF NOT EXISTS users ({_USERS_DDL});
"""
INDEX_DDL = "CREATE INDEX IF NOT EXISTS events_event_id ON events (event_id);"
"""ART index on ``events.event_id``: a small batch's duplicate check (the API's ``POST /v1/events``) looks
its ids up instead of scanning every stored event.  Created when a store is opened for writing."""
_CMP_A = ", ".join(f'a."{f.name}"' for f in EVENT_FIELDS if f.name != "event_id")
_CMP_E = ", ".join(f'e."{f.name}"' for f in EVENT_FIELDS if f.name != "event_id")
DEFAULT_CHUNK_ROWS = 500_000
"""Rows read and validated at a time by :meth:`EventStore.ingest_file` (all chunks are one transaction)."""
REJECT_TABLE_COLUMNS = ("batch_id", "source", "row_number", "reason", "detail", "raw")


@dataclass
class IngestSummary:
    """Counts of one ingest; ``read == accepted + rejected`` always.

    Attributes
    ----------
    source, batch_id : str
        The file (or frame name) and the batch's id.
    read, accepted, rejected : int
        Data rows read; valid rows; rows quarantined in ``rejects`` (``by_reason`` counts them per code).
    inserted, already_present : int
        Accepted rows that were new to the store / whose ``event_id`` was stored already (``accepted`` in all).
    conflicts : int
        Of ``already_present``, rows whose stored event has other values (the stored version is kept).
    already_ingested : bool
        The same batch was committed before; nothing was done.
    stored : bool
        False when ``strict`` refused the batch.
    """

    source: str
    batch_id: str
    read: int
    accepted: int
    rejected: int
    inserted: int
    already_present: int
    by_reason: dict[str, int] = field(default_factory=dict)
    already_ingested: bool = False
    stored: bool = True
    conflicts: int = 0

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def frame_digest(df: pd.DataFrame) -> str:
    """Content hash of a frame (column names and values)."""
    h = hashlib.sha1(repr(list(df.columns)).encode())
    h.update(pd.util.hash_pandas_object(df.astype("string"), index=False).to_numpy().tobytes())
    return h.hexdigest()


class EventStore:
    """A DuckDB-backed store of canonical tables.

    Parameters
    ----------
    path : str or Path
        DuckDB file; created if absent.  ``":memory:"`` gives a throw-away store.
    read_only : bool
        Open without write access (several readers may share a file).

    Examples
    --------
    >>> import pandas as pd
    >>> store = EventStore(":memory:")
    >>> s = store.ingest_frame(pd.DataFrame({"user_id": ["u1"], "ts": ["2024-01-01"],
    ...                                      "event_type": ["view"]}), source="example")
    >>> (s.read, s.accepted, s.rejected)
    (1, 1, 0)
    """

    def __init__(self, path: str | Path = "buyerscore.duckdb", *, read_only: bool = False) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            p = Path(self.path)
            if p.is_dir():
                raise UnreadableInputError(f"Store {p} is a folder; pass a file name such as {p / 'store.duckdb'}.")
            if read_only and not p.exists():
                raise UnreadableInputError(f"Store {p} does not exist; create it with 'buyerscore ingest' or "
                                           "'buyerscore datasets load'.")
            p.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.con = duckdb.connect(self.path, read_only=read_only)
        except duckdb.Error as exc:
            first = str(exc).splitlines()[0]
            hint = ("another process has it open for writing; wait for it or use another --db"
                    if "lock" in first.lower() else
                    "this process already has it open in another mode; close that connection first"
                    if "different configuration" in first else
                    "it is not a DuckDB file or is damaged; pass another --db")
            raise UnreadableInputError(f"Cannot open store {self.path}: {hint} ({first}).") from exc
        self._tx_depth = 0
        self.con.execute("SET TimeZone = 'UTC'")
        if not read_only:
            self.con.execute(DDL)
            has_index = self.con.execute(
                "SELECT count(*) FROM duckdb_indexes() WHERE index_name = 'events_event_id'").fetchone()[0]  # type: ignore[index]
            if not has_index:
                n = self.con.execute("SELECT count(*) FROM events").fetchone()[0]  # type: ignore[index]
                if n:
                    logger.info("indexing event_id of %s stored events (once per store)", f"{n:,}")
                self.con.execute(INDEX_DDL)

    # -- context manager -------------------------------------------------------------------------
    def close(self) -> None:
        """Close the connection (committed data is on disk)."""
        self.con.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """One atomic unit of work: everything inside commits together or not at all.

        Nested uses join the outermost transaction, so a dataset load (events, users, applicants,
        side tables) is one unit.

        Examples
        --------
        >>> store = EventStore(":memory:")
        >>> with store.transaction() as con:
        ...     _ = con.execute("CREATE TABLE t AS SELECT 1 AS x")
        >>> store.con.execute("SELECT x FROM t").fetchone()
        (1,)
        """
        if self._tx_depth:
            self._tx_depth += 1
            try:
                yield self.con
            finally:
                self._tx_depth -= 1
            return
        self.con.execute("BEGIN TRANSACTION")
        self._tx_depth = 1
        try:
            yield self.con
        except BaseException:
            self._tx_depth = 0
            self.con.execute("ROLLBACK")
            raise
        self._tx_depth = 0
        self.con.execute("COMMIT")

    # -- ingestion -------------------------------------------------------------------------------
    def ingest_file(
        self, path: str | Path, *, fmt: str | None = None, mapping: ColumnMapping | None = None,
        default_platform: str = "default", strict: bool = False, on_step: Callable[[str], None] | None = None,
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
    ) -> IngestSummary:
        """Read, map, validate and store one file as one atomic batch.

        Parameters
        ----------
        path : str or Path
            CSV (``.gz`` allowed), Parquet or JSON-lines file.
        fmt : {"csv", "parquet", "jsonl"}, optional
            Default: from the file name.
        mapping : ColumnMapping, optional
            Renames, constants, recodes and timestamp settings (see :mod:`buyerscore.events.io`).
        default_platform : str
            Platform of rows without one.
        strict : bool
            If any row is rejected, store nothing and raise :class:`StrictModeError`.
        on_step : callable, optional
            Called with a short description as each step starts (for progress displays).
        chunk_rows : int
            Rows read and validated at a time (memory use is about 1 GB per million rows); all chunks
            are written in one transaction, so the batch stays atomic and the result is the same as
            with one chunk.  A file with malformed lines is read line by line in one piece.

        Returns
        -------
        IngestSummary
            ``read == accepted + rejected``; ``inserted`` counts events new to the store.
        """
        check_param("EventStore.ingest_file", "chunk_rows", chunk_rows, lambda v: int(v) == v and v >= 1,
                    "an integer >= 1")
        step = on_step or (lambda _msg: None)
        mapping = mapping or ColumnMapping()
        check_input(path, fmt)
        batch_id = hashlib.sha1((file_digest(path) + mapping.digest() + default_platform).encode()).hexdigest()
        prior = self._prior(batch_id, str(path), strict=strict)
        if prior is not None:  # the same bytes with the same mapping: nothing to read
            return prior
        kw = {"source": str(path), "batch_id": batch_id, "default_platform": default_platform, "strict": strict,
              "step": step, "mapping": mapping}
        step(f"reading {Path(path).name}")
        try:
            return self._ingest(iter_input(path, fmt, chunk_rows), **kw)  # type: ignore[arg-type]
        except RaggedInput:  # rolled back; read line by line, keeping malformed lines as rejects
            logger.info("%s has malformed lines; reading it line by line", path)
            step(f"reading {Path(path).name} line by line")
            return self._ingest(iter([read_input(path, fmt)]), **kw)  # type: ignore[arg-type]

    def ingest_frame(
        self, raw: pd.DataFrame, *, source: str, batch_id: str | None = None, default_platform: str = "default",
        strict: bool = False, on_step: Callable[[str], None] | None = None, max_amount: float = MAX_AMOUNT,
        max_quantity: float = MAX_QUANTITY,
    ) -> IngestSummary:
        """Validate a frame with canonical column names and store it as one atomic batch.

        ``batch_id`` defaults to a hash of the frame's content and ``default_platform``, so
        ingesting the same frame twice changes nothing the second time.  ``max_amount`` /
        ``max_quantity`` bound one event's values (see :func:`~buyerscore.events.validate.validate_events`).
        """
        batch_id = batch_id or hashlib.sha1((frame_digest(raw) + default_platform).encode()).hexdigest()
        prior = self._prior(batch_id, source, strict=strict)
        if prior is not None:
            return prior
        inp = RawInput(raw.reset_index(drop=True), np.arange(1, len(raw) + 1, dtype="int64"), empty_rejects())
        return self._ingest(iter([inp]), source=source, batch_id=batch_id, default_platform=default_platform,
                            strict=strict, step=on_step or (lambda _msg: None), mapping=None,
                            limits={"max_amount": max_amount, "max_quantity": max_quantity})

    def _prior(self, batch_id: str, source: str, *, strict: bool = False) -> IngestSummary | None:
        row = self.con.execute("SELECT summary FROM ingest_batches WHERE batch_id = ?", [batch_id]).fetchone()
        if row is None:
            return None
        s = IngestSummary(**json.loads(row[0]))
        s.already_ingested, s.inserted, s.already_present = True, 0, s.accepted
        logger.info("batch %s from %s was ingested before; nothing to do", batch_id[:12], source)
        if strict and s.rejected:  # the strict promise (no batch with bad rows) cannot hold: say so
            reasons = ", ".join(f"{k}: {v:,}" for k, v in s.by_reason.items())
            err = StrictModeError(
                f"{source} was ingested before without --strict (batch {batch_id[:12]}): its {s.accepted:,} "
                f"accepted rows are stored and {s.rejected:,} rows are in the rejects table ({reasons}). Nothing "
                "changed now. Fix the rejected rows (see the rejects table) and ingest the fixed file as a new batch.")
            err.summary = s  # type: ignore[attr-defined]
            raise err
        return s

    def _ingest(
        self, chunks: Iterator[RawInput], *, source: str, batch_id: str, default_platform: str, strict: bool,
        step: Callable[[str], None], mapping: ColumnMapping | None, limits: dict[str, Any] | None = None,
    ) -> IngestSummary:
        """Validate and write chunks in one transaction; ids repeated across chunks are DUPLICATE_EVENT."""
        read = accepted = inserted = conflicts = 0
        by_reason: Counter[str] = Counter()
        examples: list[str] = []
        # ids accepted in earlier chunks go to a temporary table only once a later chunk exists to check
        # against them: a one-chunk batch (every API call) needs neither the table nor the inserts
        pending: pd.DataFrame | None = None
        with self.transaction() as con:
            try:
                for k, inp in enumerate(chunks):
                    if k == 1:
                        con.execute("CREATE OR REPLACE TEMP TABLE _batch_ids (event_id VARCHAR)")
                    if pending is not None and len(pending):
                        con.register("_prev_ids", pending)
                        try:
                            con.execute("INSERT INTO _batch_ids SELECT event_id FROM _prev_ids")
                        finally:
                            con.unregister("_prev_ids")
                    original = mapping.protect(inp.frame) if mapping is not None else inp.frame
                    raw = mapping.apply(original, source=source) if mapping is not None else original
                    read_cols = None if mapping is None else {*EVENT_COLUMNS, *mapping.columns.values()}
                    if k == 0:
                        dropped = [str(c) for c in original.columns if c not in (read_cols or EVENT_COLUMNS)]
                        if dropped:
                            logger.info("%s: column(s) %s are not read (no field is mapped from them) and are left "
                                        "out of the events and of the rejects' raw rows", source, dropped[:20])
                    if len(inp.row_numbers):
                        step(f"validating rows {inp.row_numbers[0]:,}..{inp.row_numbers[-1]:,}" if k else
                             f"validating {len(raw):,} rows")
                    res = validate_events(
                        raw, source=source, default_platform=default_platform,
                        original=original if mapping is not None else None, row_numbers=inp.row_numbers,
                        ts_format=mapping.timestamp_format if mapping else None,
                        timezone=mapping.timezone if mapping else "UTC", raw_columns=read_cols, **(limits or {}))
                    acc, rejects = res.accepted, res.rejects
                    if k and len(acc):  # an id accepted in an earlier chunk of this batch
                        con.register("_ids", acc[["event_id"]])
                        try:
                            seen = set(con.execute("SELECT i.event_id FROM _ids i SEMI JOIN _batch_ids b "
                                                   "ON b.event_id = i.event_id").fetchnumpy()["event_id"].tolist())
                        finally:
                            con.unregister("_ids")
                        if seen:
                            dup = acc["event_id"].isin(seen).to_numpy()
                            pos = res.accepted_positions[dup]
                            rejects = pd.concat([rejects, pd.DataFrame({
                                "row_number": inp.row_numbers[pos], "reason": "DUPLICATE_EVENT",
                                "detail": ("event_id=" + acc.loc[dup, "event_id"].astype(str)).to_numpy(),
                                "raw": _raw_json(kept_raw_columns(original, read_cols).iloc[pos])})],
                                ignore_index=True)
                            acc = acc.loc[~dup].reset_index(drop=True)
                    if len(inp.malformed):
                        rejects = pd.concat([inp.malformed, rejects], ignore_index=True)
                    read += res.read + len(inp.malformed)
                    accepted += len(acc)
                    if len(rejects):
                        rejects = rejects.sort_values("row_number", kind="stable")
                        by_reason.update(rejects["reason"].tolist())
                        examples += [f"row {r.row_number}: {r.reason} ({r.detail})"
                                     for r in rejects.head(3 - len(examples)).itertuples()] if len(examples) < 3 else []
                        rejects = rejects.assign(batch_id=batch_id, source=source)
                    step(f"storing {len(acc):,} events and {len(rejects):,} rejects")
                    c, i = self._write_chunk(con, acc.assign(batch_id=batch_id), rejects)
                    conflicts, inserted = conflicts + c, inserted + i
                    pending = acc[["event_id"]]
                rejected = sum(by_reason.values())
                reasons = dict(sorted(by_reason.items()))
                if strict and rejected:  # raising rolls back every chunk written so far
                    summary = IngestSummary(source=source, batch_id=batch_id, read=read, accepted=accepted,
                                            rejected=rejected, inserted=0, already_present=0, by_reason=reasons,
                                            stored=False)
                    err = StrictModeError(
                        f"{source}: {rejected:,} of {read:,} rows rejected ({reasons}); e.g. {'; '.join(examples)}. "
                        "Nothing was stored (--strict). Fix the rows or ingest without --strict to keep them in "
                        "the rejects table.")
                    err.summary = summary  # type: ignore[attr-defined]
                    raise err
                summary = IngestSummary(source=source, batch_id=batch_id, read=read, accepted=accepted,
                                        rejected=rejected, inserted=inserted, already_present=accepted - inserted,
                                        by_reason=reasons, conflicts=conflicts)
                con.execute("INSERT INTO ingest_batches VALUES (?, ?, ?, ?)",
                            [batch_id, source, datetime.now(UTC).replace(tzinfo=None), json.dumps(summary.to_dict())])
            finally:
                con.execute("DROP TABLE IF EXISTS _batch_ids")
        if summary.conflicts:
            logger.warning("%s: %d event(s) have an event_id already stored with other values; the stored "
                           "versions were kept", source, summary.conflicts)
        logger.info("ingested batch %s from %s: read=%d accepted=%d rejected=%d inserted=%d", batch_id[:12], source,
                    summary.read, summary.accepted, summary.rejected, summary.inserted)
        return summary

    @staticmethod
    def _write_chunk(con: duckdb.DuckDBPyConnection, acc: pd.DataFrame, rej: pd.DataFrame) -> tuple[int, int]:
        """Insert one chunk's new events and rejects; returns (conflicts, inserted).

        An event whose ``event_id`` is stored already is not inserted again; it is a conflict when any
        of its other fields differ from the stored version (which is kept).
        """
        conflicts = inserted = 0
        if len(acc):
            con.register("_acc", acc)
            try:
                # one join finds the chunk's ids that are stored already (an index lookup for small chunks)
                hit = con.execute(f"""
                    SELECT a.event_id, ({_CMP_A}) IS DISTINCT FROM ({_CMP_E}) AS changed
                    FROM _acc a JOIN events e ON e.event_id = a.event_id""").fetchnumpy()
                conflicts = int(np.asarray(hit["changed"], dtype=bool).sum())
                if len(hit["event_id"]) == 0:  # the usual case: every event is new
                    con.execute("INSERT INTO events SELECT * FROM _acc")
                    inserted = len(acc)
            finally:
                con.unregister("_acc")
            if len(hit["event_id"]):
                new = acc.loc[~acc["event_id"].isin(np.asarray(hit["event_id"], dtype=object))]
                if len(new):
                    con.register("_new", new)
                    try:
                        con.execute("INSERT INTO events SELECT * FROM _new")
                    finally:
                        con.unregister("_new")
                inserted = len(new)
        if len(rej):
            con.register("_rej", rej[list(REJECT_TABLE_COLUMNS)])
            try:
                con.execute("INSERT INTO rejects SELECT * FROM _rej")
            finally:
                con.unregister("_rej")
        return conflicts, inserted

    # -- other canonical tables ------------------------------------------------------------------
    def write_users(self, users: pd.DataFrame) -> int:
        """Upsert user attributes (keyed on ``platform, user_id``)."""
        cols = [f.name for f in USER_FIELDS]
        missing = [c for c in ("user_id", "platform") if c not in users.columns]
        if missing:
            raise SchemaError(f"users frame lacks column(s) {missing}; it needs user_id and platform.")
        df = users.reindex(columns=cols).astype("string").drop_duplicates(["platform", "user_id"], keep="last")
        with self.transaction() as con:
            con.register("_users", df)
            try:
                con.execute("DELETE FROM users WHERE (platform, user_id) IN (SELECT platform, user_id FROM _users)")
                con.execute("INSERT INTO users SELECT * FROM _users")
            finally:
                con.unregister("_users")
        return len(df)

    def write_applicants(self, name: str, table: pd.DataFrame) -> str:
        """Replace the applicant table ``applicants_<name>`` (fixed columns first, predictors after).

        The fixed columns are checked: ``user_id`` present, ``as_of`` a date, ``label`` 0 or 1, and
        ``(user_id, as_of)`` unique.  A table that fails is not written (:class:`SchemaError` says how
        many rows fail and shows up to three).

        Examples
        --------
        >>> store = EventStore(":memory:")
        >>> t = pd.DataFrame({"user_id": ["a", "b"], "as_of": ["2024-01-01"] * 2, "label": [0, 1],
        ...                   "dataset": "mine", "income": [1200.0, 800.0]})
        >>> store.write_applicants("mine", t)
        'applicants_mine'
        >>> store.read_applicants("mine")["label"].tolist()
        [0, 1]
        """
        fixed = [f.name for f in APPLICANT_FIELDS]
        missing = [c for c in fixed if c not in table.columns]
        if missing:
            raise SchemaError(f"applicant table {name!r} lacks column(s) {missing}; required: {fixed}.")
        if not name.replace("_", "").isalnum():
            raise SchemaError(f"applicant table name {name!r} must be letters, digits and underscores.")
        df = table[fixed + [c for c in table.columns if c not in fixed]].copy()
        label = pd.to_numeric(df["label"], errors="coerce")
        with warnings.catch_warnings():  # mixed formats are parsed value by value, which pandas warns about
            warnings.simplefilter("ignore", UserWarning)
            as_of = pd.to_datetime(df["as_of"], errors="coerce")
        uid = df["user_id"].astype("string").str.strip()

        def raw(col: str, i: int) -> str:
            v = df[col].iloc[i]
            return repr(v.item() if isinstance(v, np.generic) else v)

        problems = {  # what, failing rows, the value shown for row i, the fix
            "label is not 0 or 1": (~label.isin([0, 1]), lambda i: f"label={raw('label', i)}",
                                    "use 1 for bad and 0 for good"),
            "as_of is not a date": (as_of.isna(), lambda i: f"as_of={raw('as_of', i)}", "write dates such as 2024-01-31"),
            "user_id is empty": (uid.isna() | (uid == ""), lambda i: f"user_id={raw('user_id', i)}", "give every row an id"),
            "(user_id, as_of) is repeated": (pd.DataFrame({"u": uid, "a": as_of}).duplicated(keep="first"),
                                             lambda i: f"user_id={raw('user_id', i)}, as_of={str(as_of.iloc[i])!r}",
                                             "keep one row per applicant and date"),
        }
        for what, (mask, show, fix) in problems.items():
            if mask.any():
                idx = np.flatnonzero(mask.to_numpy())[:3]
                raise SchemaError(f"applicant table {name!r}: {what} in {int(mask.sum()):,} row(s), e.g. rows "
                                  f"{[int(i) + 1 for i in idx]} ({'; '.join(show(i) for i in idx)}); {fix}, then "
                                  "write it again.")
        df["user_id"], df["as_of"], df["label"] = uid, as_of.astype("datetime64[us]"), label.astype("int32")
        tname = f"applicants_{name}"
        with self.transaction() as con:
            con.register("_app", df)
            try:
                con.execute(f'CREATE OR REPLACE TABLE "{tname}" AS SELECT * FROM _app')
            finally:
                con.unregister("_app")
        return tname

    # -- reading ---------------------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        q = "SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM rejects), (SELECT count(*) FROM users)"
        e, r, u = self.con.execute(q).fetchone()  # type: ignore[misc]
        return {"events": int(e), "rejects": int(r), "users": int(u)}

    def applicant_tables(self) -> list[str]:
        rows = self.con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_name LIKE 'applicants_%' ORDER BY 1"
        ).fetchall()
        return [r[0] for r in rows]

    def read_applicants(self, name: str) -> pd.DataFrame:
        tname = name if name.startswith("applicants_") else f"applicants_{name}"
        if tname not in self.applicant_tables():
            raise SchemaError(f"No applicant table {tname!r} in {self.path}; load it with "
                              f"'buyerscore datasets load {name.removeprefix('applicants_')}'.")
        return self.con.execute(f'SELECT * FROM "{tname}"').df()

    def tables(self) -> list[str]:
        """Names of the tables in the store."""
        return [r[0] for r in self.con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' ORDER BY 1").fetchall()]

    def export_parquet(
        self, out_dir: str | Path, tables: tuple[str, ...] | None = ("events", "rejects", "users"), *,
        on_step: Callable[[str], None] | None = None,
    ) -> dict[str, tuple[Path, int]]:
        """Write tables to ``out_dir/<table>.parquet`` (zstd); ``tables=None`` exports every table.

        Returns ``{table: (path, rows)}``.  Each file is written to a temporary name and renamed,
        so a crash never leaves a half-written Parquet file under the final name.

        Examples
        --------
        >>> import tempfile
        >>> store = EventStore(":memory:")
        >>> d = tempfile.mkdtemp()
        >>> {t: n for t, (p, n) in store.export_parquet(d, ("events",)).items()}
        {'events': 0}
        """
        have = self.tables()
        names = tuple(have) if tables is None else tables
        unknown = [t for t in names if t not in have]
        if unknown:
            raise SchemaError(f"No table(s) {unknown} in store {self.path}; tables present: {have}.")
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        written: dict[str, tuple[Path, int]] = {}
        for t in names:
            if on_step:
                on_step(f"exporting {t}")
            p = out / f"{t}.parquet"
            tmp = out / f".{t}.parquet.tmp"
            target = tmp.as_posix().replace("'", "''")
            self.con.execute(f'COPY (SELECT * FROM "{t}") TO \'{target}\' (FORMAT PARQUET, COMPRESSION ZSTD)')
            tmp.replace(p)
            n = self.con.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0]  # type: ignore[index]
            written[t] = (p, int(n))
        return written
