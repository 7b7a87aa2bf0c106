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
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pandas as pd

from buyerscore.events.io import ColumnMapping, file_digest, read_raw
from buyerscore.events.schema import APPLICANT_FIELDS, EVENT_FIELDS, USER_FIELDS
from buyerscore.events.validate import validate_events
from buyerscore.exceptions import SchemaError

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


@dataclass
class IngestSummary:
    """Counts of one ingest; ``read == accepted + rejected`` always."""

    source: str
    batch_id: str
    read: int
    accepted: int
    rejected: int
    inserted: int
    already_present: int
    by_reason: dict[str, int] = field(default_factory=dict)
    already_ingested: bool = False

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
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self.con = duckdb.connect(self.path, read_only=read_only)
        self.con.execute("SET TimeZone = 'UTC'")
        if not read_only:
            self.con.execute(DDL)

    # -- context manager -------------------------------------------------------------------------
    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> EventStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- ingestion -------------------------------------------------------------------------------
    def ingest_file(
        self, path: str | Path, *, fmt: str | None = None, mapping: ColumnMapping | None = None,
        default_platform: str = "default",
    ) -> IngestSummary:
        """Read, map, validate and store one file as one batch."""
        mapping = mapping or ColumnMapping()
        raw = read_raw(path, fmt)
        batch_id = hashlib.sha1((file_digest(path) + mapping.digest() + default_platform).encode()).hexdigest()
        return self.ingest_frame(mapping.apply(raw, source=str(path)), source=str(path), batch_id=batch_id,
                                 default_platform=default_platform)

    def ingest_frame(
        self, raw: pd.DataFrame, *, source: str, batch_id: str | None = None, default_platform: str = "default",
    ) -> IngestSummary:
        """Validate a frame with canonical column names and store it as one atomic batch."""
        batch_id = batch_id or frame_digest(raw)
        prior = self.con.execute("SELECT summary FROM ingest_batches WHERE batch_id = ?", [batch_id]).fetchone()
        if prior is not None:
            s = IngestSummary(**json.loads(prior[0]))
            s.already_ingested, s.inserted, s.already_present = True, 0, s.accepted
            return s
        res = validate_events(raw, source=source, default_platform=default_platform)
        acc = res.accepted.assign(batch_id=batch_id)
        rej = res.rejects.assign(batch_id=batch_id, source=source)[
            ["batch_id", "source", "row_number", "reason", "detail", "raw"]]
        con = self.con
        con.execute("BEGIN TRANSACTION")
        try:
            con.register("_acc", acc)
            con.register("_rej", rej)
            before = con.execute("SELECT count(*) FROM events").fetchone()[0]  # type: ignore[index]
            con.execute("""
                INSERT INTO events SELECT a.* FROM _acc a
                WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.event_id = a.event_id)""")
            inserted = con.execute("SELECT count(*) FROM events").fetchone()[0] - before  # type: ignore[index]
            con.execute("INSERT INTO rejects SELECT * FROM _rej")
            summary = IngestSummary(source=source, batch_id=batch_id, read=res.read, accepted=len(acc),
                                    rejected=len(rej), inserted=int(inserted),
                                    already_present=len(acc) - int(inserted), by_reason=res.by_reason)
            con.execute("INSERT INTO ingest_batches VALUES (?, ?, ?, ?)",
                        [batch_id, source, datetime.now(UTC).replace(tzinfo=None), json.dumps(summary.to_dict())])
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        finally:
            con.unregister("_acc")
            con.unregister("_rej")
        logger.info("ingested batch %s: read=%d accepted=%d rejected=%d", batch_id[:8], summary.read,
                    summary.accepted, summary.rejected)
        return summary

    # -- other canonical tables ------------------------------------------------------------------
    def write_users(self, users: pd.DataFrame) -> int:
        """Upsert user attributes (keyed on ``platform, user_id``)."""
        cols = [f.name for f in USER_FIELDS]
        missing = [c for c in ("user_id", "platform") if c not in users.columns]
        if missing:
            raise SchemaError(f"users frame lacks column(s) {missing}; it needs user_id and platform.")
        df = users.reindex(columns=cols).astype("string").drop_duplicates(["platform", "user_id"], keep="last")
        self.con.execute("BEGIN TRANSACTION")
        try:
            self.con.register("_users", df)
            self.con.execute("""DELETE FROM users WHERE (platform, user_id) IN (SELECT platform, user_id FROM _users)""")
            self.con.execute("INSERT INTO users SELECT * FROM _users")
            self.con.execute("COMMIT")
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        finally:
            self.con.unregister("_users")
        return len(df)

    def write_applicants(self, name: str, table: pd.DataFrame) -> str:
        """Replace the applicant table ``applicants_<name>`` (fixed columns first, predictors after)."""
        fixed = [f.name for f in APPLICANT_FIELDS]
        missing = [c for c in fixed if c not in table.columns]
        if missing:
            raise SchemaError(f"applicant table {name!r} lacks column(s) {missing}; required: {fixed}.")
        if not name.replace("_", "").isalnum():
            raise SchemaError(f"applicant table name {name!r} must be letters, digits and underscores.")
        df = table[fixed + [c for c in table.columns if c not in fixed]]
        tname = f"applicants_{name}"
        self.con.execute("BEGIN TRANSACTION")
        try:
            self.con.register("_app", df)
            self.con.execute(f'CREATE OR REPLACE TABLE "{tname}" AS SELECT * FROM _app')
            self.con.execute("COMMIT")
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        finally:
            self.con.unregister("_app")
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

    def export_parquet(self, out_dir: str | Path, tables: tuple[str, ...] = ("events", "rejects", "users")) -> list[Path]:
        """Write tables to ``out_dir/<table>.parquet`` (zstd)."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        written = []
        for t in tables:
            p = out / f"{t}.parquet"
            self.con.execute(f"COPY (SELECT * FROM \"{t}\") TO '{p.as_posix()}' (FORMAT PARQUET, COMPRESSION ZSTD)")
            written.append(p)
        return written
