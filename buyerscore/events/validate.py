"""Row-level validation of behaviour events.

:func:`validate_events` never raises for a bad row: every row ends up either in the
accepted frame (typed, canonical columns) or in the rejects frame with exactly one
reason code from :data:`~buyerscore.events.schema.REJECT_REASONS`, its 1-based row
number in the source and the original values as JSON, so ``read == accepted + rejected``.
It raises :class:`~buyerscore.exceptions.SchemaError` only when the input as a whole is
unusable (a required column is missing).

The checks are vectorised (pandas / Arrow / DuckDB); validating one million rows takes a
few seconds on one core.
"""

from __future__ import annotations

import difflib
import logging
import re
import threading
import warnings
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

import duckdb
import numpy as np
import pandas as pd
from pandas.tseries.api import guess_datetime_format

from buyerscore.events.schema import (
    EVENT_COLUMNS,
    EVENT_TYPES,
    LIMIT_CEILING,
    MAX_AMOUNT,
    MAX_QUANTITY,
    MIN_NONZERO_AMOUNT,
    MONEY_EVENTS,
    REJECT_REASONS,
    REQUIRED_EVENT_COLUMNS,
    TS_MAX,
    TS_MIN,
)
from buyerscore.exceptions import SchemaError

logger = logging.getLogger(__name__)

REJECT_COLUMNS = ("row_number", "reason", "detail", "raw")
_SYNONYMS = {  # normalised (lower case, no '_', ' ', '-') column names suggested for a missing required column
    "user_id": ("customerid", "customer", "userid", "user", "uid", "clientid", "client", "memberid", "buyerid"),
    "ts": ("timestamp", "time", "datetime", "date", "eventtime", "createdat", "invoicedate", "transactiondt",
           "orderdate", "eventdate"),
    "event_type": ("eventtype", "event", "action", "behaviortype", "behaviourtype", "type", "eventname"),
}
_DATE_LIKE = r"\d+\D+\d+|(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?\s*\d"  # on lower-cased text
_SLASH = re.compile(r"\\\\|\\/")
ID_COLUMNS = ("event_id", "user_id", "item_id", "category", "order_id")
_STRING_COLUMNS = ("user_id", "platform", "item_id", "category", "currency", "order_id", "text", "event_id")
_NUMERIC_COLUMNS = ("quantity", "amount", "rating", "installments")


@dataclass
class ValidationResult:
    """Outcome of validating one batch.

    Attributes
    ----------
    accepted : DataFrame
        Valid rows in canonical columns and types (:data:`~buyerscore.events.schema.EVENT_COLUMNS`).
    rejects : DataFrame
        ``row_number`` (1-based, in the source), ``reason`` (one code), ``detail`` (the offending
        field and value) and ``raw`` (the original row as JSON).
    read : int
        Rows read; always ``len(accepted) + len(rejects)``.
    accepted_positions : ndarray
        0-based position in the input frame of each accepted row.
    """

    accepted: pd.DataFrame
    rejects: pd.DataFrame
    read: int
    accepted_positions: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype="int64"))

    @property
    def by_reason(self) -> dict[str, int]:
        """Number of rejected rows per reason code (codes with no rows are left out)."""
        return {str(k): int(v) for k, v in self.rejects["reason"].value_counts().sort_index().items()}

    def __post_init__(self) -> None:
        if self.read != len(self.accepted) + len(self.rejects):  # pragma: no cover - an internal bug
            raise RuntimeError(f"validation lost rows: read={self.read}, accepted={len(self.accepted)}, "
                               f"rejected={len(self.rejects)}")


@dataclass
class _Reasons:
    """The first reason (and its detail) that applies to each row."""

    n: int
    code: np.ndarray = field(init=False)
    detail: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.code = np.full(self.n, None, dtype=object)
        self.detail = np.full(self.n, None, dtype=object)

    @property
    def ok(self) -> np.ndarray:
        return np.asarray(pd.isna(self.code), dtype=bool)

    def flag(self, mask: np.ndarray | pd.Series, code: str, label: str, values: pd.Series | None = None,
             suffix: str = "") -> None:
        """Give ``code`` to the rows in ``mask`` that have no reason yet; detail is ``label=value`` + suffix."""
        assert code in REJECT_REASONS, code
        m = np.asarray(mask, dtype=bool) & self.ok
        if not m.any():
            return
        self.code[m] = code
        if values is None:
            self.detail[m] = label
        else:
            shown = values[m].astype(object).map(lambda v: "<empty>" if v is None or v is pd.NA else str(v)[:200])
            self.detail[m] = (label + "=" + shown + suffix).to_numpy()


def _blank(s: pd.Series) -> np.ndarray:
    """True where a value is missing or only whitespace."""
    if s.dtype == object or pd.api.types.is_string_dtype(s.dtype):
        st = s.astype("string")
        return np.asarray((st.isna() | (st.str.strip() == "")).fillna(True), dtype=bool)
    return np.asarray(s.isna(), dtype=bool)


_FLOAT_TEXT_ID = r"^(-?\d{1,15})\.0+$"


def _to_str(s: pd.Series, *, as_id: bool = False) -> pd.Series:
    """Stripped strings, empty -> NA.  Integral floats of id columns lose their '.0' (17850.0 -> '17850'),
    also when written as text ('17850.0' in a CSV, at most 15 digits)."""
    if as_id and pd.api.types.is_float_dtype(s.dtype):
        v = s.to_numpy(dtype="float64", na_value=np.nan)
        finite = np.isfinite(v)
        if np.all(v[finite] == np.round(v[finite])) and (np.abs(v[finite]) < 2**53).all():
            s = s.astype("Int64")
        # else each integral value still loses its '.0' below ('2.0' -> '2', '1.5' kept), as in a CSV
    elif as_id and s.dtype == object:  # JSON lines mixing numbers and text in one column: 17850.0 next to "a"
        def integral(x: Any) -> bool:
            return isinstance(x, float | np.floating) and bool(np.isfinite(x)) and x == round(x) and abs(float(x)) < 2**53

        is_f = s.map(integral)
        if is_f.any():
            s = s.where(~is_f.to_numpy(), s[is_f].map(lambda x: str(int(x))))
    out = s.astype("string").str.strip()
    if as_id:  # a CSV of ids that pandas wrote as floats ('17850.0', with NaNs in the column): the same id as
        # the number 17850.0 read from Parquet/JSON, so one event gets one id from every format
        dotted = out.str.contains(".", regex=False).fillna(False).to_numpy(dtype=bool)
        if dotted.any():
            out = out.where(~dotted, out[dotted].str.replace(_FLOAT_TEXT_ID, r"\1", regex=True))
    return out.mask(out == "", pd.NA)


def _localize(ts: pd.Series, timezone: str) -> pd.Series:
    """Naive -> taken in ``timezone`` -> naive UTC (microsecond precision)."""
    if ts.dt.tz is None:
        ts = ts.dt.tz_localize(timezone, ambiguous="NaT", nonexistent="NaT") if timezone != "UTC" else \
            ts.dt.tz_localize("UTC")
    return ts.dt.tz_convert("UTC").dt.tz_localize(None).astype("datetime64[us]")


def _parse_numbers_as_time(num: pd.Series) -> pd.Series:
    """Numbers -> UTC: 8-digit YYYYMMDD dates, else Unix seconds / ms / us / ns chosen by magnitude."""
    v = num.to_numpy(dtype="float64")
    out = pd.Series(pd.NaT, index=num.index, dtype="datetime64[us, UTC]")
    ymd = (v >= 19000101) & (v <= 21001231) & (v == np.round(v))
    if ymd.any():
        out[ymd] = pd.to_datetime(pd.Series(v[ymd].astype("int64").astype(str), index=num.index[ymd]),
                                  format="%Y%m%d", errors="coerce", utc=True)
    rest = ~ymd & np.isfinite(v)
    if rest.any():
        a = np.abs(v[rest])
        scale = np.select([a < 1e11, a < 1e14, a < 1e17], [1.0, 1e-3, 1e-6], 1e-9)
        secs = v[rest] * scale
        inside = np.abs(secs) < 1e10  # keeps to_datetime away from overflow; later range check rejects them
        us = np.where(inside, np.round(secs * 1e6), 0).astype("int64")
        conv = pd.Series(pd.to_datetime(us, unit="us", utc=True), index=num.index[rest])
        out[rest] = conv.where(inside)
    return out


def parse_timestamps(s: pd.Series, *, ts_format: str | None = None, timezone: str = "UTC") -> pd.Series:
    """Parse a column to naive UTC timestamps (``datetime64[us]``); unparseable values become NaT.

    Parameters
    ----------
    s : Series
        Strings, numbers or datetimes.
    ts_format : str, optional
        A ``strftime`` format for text timestamps (e.g. ``"%d/%m/%Y %H:%M"``).  Without it text is
        read as ISO 8601, then with the format pandas infers from the first value, then per value.
    timezone : str
        IANA zone of naive values (``"Europe/London"``); default UTC.  Values with an offset
        (``+02:00``, ``Z``) keep their own offset.

    Notes
    -----
    Numbers (or numeric strings) are Unix time: seconds below 1e11, milliseconds below 1e14,
    microseconds below 1e17, else nanoseconds.  Eight-digit integers from 19000101 to 21001231 are
    calendar dates ``YYYYMMDD`` (as Unix seconds they would fall in August 1970).

    Examples
    --------
    >>> parse_timestamps(pd.Series(["2024-01-01T10:00:00+02:00", "1704096000", "20240101"])).tolist()
    [Timestamp('2024-01-01 08:00:00'), Timestamp('2024-01-01 08:00:00'), Timestamp('2024-01-01 00:00:00')]
    """
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        return _localize(pd.Series(s), timezone)
    if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
        return _localize(_parse_numbers_as_time(pd.Series(s, dtype="float64")), "UTC")
    present = ~_blank(s)
    result = pd.Series(pd.NaT, index=s.index, dtype="datetime64[us, UTC]")
    txt = s[present].astype("string").str.strip()
    if ts_format is None:
        num = pd.to_numeric(txt.where(txt.str.fullmatch(r"[+-]?\d+(\.\d*)?").fillna(False)), errors="coerce")
        is_num = num.notna().to_numpy()
        if is_num.any():
            result[txt.index[is_num]] = _parse_numbers_as_time(num[is_num])
        txt = txt[~is_num]
    if len(txt):
        parsed = _parse_text_times(txt, ts_format, timezone)
        result[txt.index] = parsed
    return result.dt.tz_localize(None).astype("datetime64[us]")


_OFFSET = r"\d:\d{2}(?::\d{2}(?:\.\d+)?)?\s*(?:Z|[+-]\d{2}(?::?\d{2})?)$"
"""A time followed by a UTC offset (``10:00Z``, ``10:00:00+02:00``): such a value says its own zone."""


def _to_utc(txt: pd.Series, timezone: str, **kw: object) -> pd.Series:
    """to_datetime keeping naive values naive so that they can be put in ``timezone``."""
    if timezone == "UTC":
        return pd.to_datetime(txt, utc=True, errors="coerce", **kw)  # type: ignore[call-overload]
    try:
        parsed = pd.to_datetime(txt, errors="coerce", **kw)  # type: ignore[call-overload]
    except ValueError:  # pandas refuses naive values next to values with an offset ("Mixed timezones")
        parsed = None
    if parsed is None or parsed.dtype == object:  # mixed: values with an offset keep it, naive ones are in the zone
        own = txt.astype("string").str.strip().str.contains(_OFFSET, regex=True).fillna(False).to_numpy()
        if own.all() or not own.any():  # mixed offsets only (or no recognisable offset): all to UTC
            return pd.to_datetime(txt, utc=True, errors="coerce", **kw)  # type: ignore[call-overload]
        parts = [pd.to_datetime(txt[own], utc=True, errors="coerce", **kw),  # type: ignore[call-overload]
                 _to_utc(txt[~own], timezone, **kw)]
        return pd.concat([p.astype("datetime64[us, UTC]") for p in parts]).reindex(txt.index)
    if isinstance(parsed.dtype, pd.DatetimeTZDtype):
        return parsed.dt.tz_convert("UTC")
    return parsed.dt.tz_localize(timezone, ambiguous="NaT", nonexistent="NaT").dt.tz_convert("UTC")


def _clock_changes(raw: pd.Series, failed: np.ndarray, ts_format: str | None,
                   timezone: str) -> tuple[np.ndarray, np.ndarray]:
    """Masks of the ``failed`` values that are valid wall-clock times but do not exist in ``timezone``
    (the hour skipped in spring) or exist twice (the hour repeated in autumn)."""
    gap, fold = np.zeros(len(raw), dtype=bool), np.zeros(len(raw), dtype=bool)
    idx = np.flatnonzero(failed)
    txt = raw.iloc[idx]
    if not len(idx) or pd.api.types.is_datetime64_any_dtype(txt.dtype):
        return gap, fold
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        naive = pd.to_datetime(txt.astype("string").str.strip(), errors="coerce", format=ts_format or "mixed")
    if isinstance(naive.dtype, pd.DatetimeTZDtype) or naive.dtype == object:
        return gap, fold
    both = naive.dt.tz_localize(timezone, ambiguous="NaT", nonexistent="NaT").isna().to_numpy()
    twice = naive.dt.tz_localize(timezone, ambiguous="NaT", nonexistent="shift_forward").isna().to_numpy()
    ok = naive.notna().to_numpy()
    gap[idx] = ok & both & ~twice
    fold[idx] = ok & twice
    return gap, fold


def _parse_text_times(txt: pd.Series, ts_format: str | None, timezone: str) -> pd.Series:
    if ts_format is not None:
        return _to_utc(txt, timezone, format=ts_format)
    parsed = _to_utc(txt, timezone, format="ISO8601")
    # slower guesses only for text that can be a date at all (two digit groups, or a month name and a digit)
    failed = parsed.isna().to_numpy().copy()
    if timezone != "UTC" and failed.any():  # wall-clock times the zone skips or repeats: not a format problem
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                naive = pd.to_datetime(txt[failed], errors="coerce", format="ISO8601")
            except ValueError:  # mixed with offsets: those failed for another reason
                naive = pd.Series(pd.NaT, index=txt[failed].index)
        if not isinstance(naive.dtype, pd.DatetimeTZDtype):
            failed[np.flatnonzero(failed)[naive.notna().to_numpy()]] = False
    cand = np.zeros(len(txt), dtype=bool)
    if failed.any():
        cand[failed] = txt[failed].str.lower().str.contains(_DATE_LIKE, regex=True).fillna(False).to_numpy()
    if cand.any():
        with warnings.catch_warnings():  # "could not infer format" warnings: we fall back per value anyway
            warnings.simplefilter("ignore")
            vals = txt[cand]
            fmt = guess_datetime_format(str(vals.iloc[0]))  # the first value's format, tried on all at once
            again = _to_utc(vals, timezone, format=fmt) if fmt else pd.Series(pd.NaT, index=vals.index,
                                                                               dtype="datetime64[us, UTC]")
            alt = _swap_day_month(fmt)
            if alt and again.isna().any():  # 02/01/2024 guessed month-first, but 13/01/2024 follows: day-first?
                swapped = _to_utc(vals, timezone, format=alt)
                if swapped.notna().sum() > again.notna().sum():
                    logger.info("timestamps read as %s: %d value(s) do not fit %s (guessed from %r)", alt,
                                int(again.isna().sum()), fmt, vals.iloc[0])
                    fmt, again = alt, swapped
            rest = vals[again.isna().to_numpy()]
            if alt and len(rest) and (len(rest) <= _PER_VALUE_LIMIT):
                logger.warning("%d timestamp(s) fit neither %s nor %s (e.g. %r) and are guessed one by one, so one "
                               "file may be read two ways; set timestamp_format in the mapping.", len(rest), fmt,
                               _swap_day_month(fmt), rest.iloc[0])
            if len(rest) > _PER_VALUE_LIMIT:
                # value-by-value parsing costs ~50 us a value: try a sample first, give up if none parses
                sample = _to_utc(rest.iloc[:1000], timezone, format="mixed")
                if sample.notna().sum() == 0:
                    logger.warning("%d timestamps match no format (e.g. %r); they are rejected as BAD_TIMESTAMP. "
                                   "Set timestamp_format in the mapping.", len(rest), rest.iloc[0])
                    rest = rest.iloc[:0]
            if len(rest):
                again[rest.index] = _to_utc(rest, timezone, format="mixed")
        parsed.loc[again.index] = again
    return parsed


def _swap_day_month(fmt: str | None) -> str | None:
    """The format with ``%d`` and ``%m`` swapped (``%m/%d/%Y`` -> ``%d/%m/%Y``), or None without both."""
    if not fmt or "%d" not in fmt or "%m" not in fmt:
        return None
    return fmt.replace("%d", "\0").replace("%m", "%d").replace("\0", "%m")


_PER_VALUE_LIMIT = 50_000
"""Above this many timestamps needing value-by-value parsing, a sample of 1,000 decides whether to try."""

_HASH_DB: list[duckdb.DuckDBPyConnection] = []
_HASH_LOCK = threading.Lock()


def _hash_connection() -> duckdb.DuckDBPyConnection:
    """A fresh cursor on one shared in-memory DuckDB (opening a new database per call costs ~25 ms)."""
    with _HASH_LOCK:
        if not _HASH_DB:
            _HASH_DB.append(duckdb.connect(":memory:"))
        return _HASH_DB[0].cursor()


def derive_event_ids(df: pd.DataFrame) -> pd.Series:
    """Deterministic event ids: SHA-1 of the canonical fields of each row, first 20 hex digits.

    The fields (every canonical column except ``event_id``, in schema order) are cast to text as
    DuckDB does (``5.0``, ``2024-01-01 08:00:00``), missing values as the empty string, joined with
    the unit separator ``\\x1f``.  Identical events therefore get identical ids, whatever file
    format they came from.

    Examples
    --------
    >>> import hashlib
    >>> df = pd.DataFrame({"user_id": ["u1"], "ts": [pd.Timestamp("2024-01-01 08:00")], "amount": [5.0]})
    >>> derive_event_ids(df).iloc[0] == hashlib.sha1("u1\\x1f2024-01-01 08:00:00\\x1f5.0".encode()).hexdigest()[:20]
    True
    """
    cols = [c for c in EVENT_COLUMNS if c != "event_id" and c in df.columns]
    if len(df) == 0:
        return pd.Series([], index=df.index, dtype="string")
    expr = " || chr(31) || ".join(f"coalesce(CAST(\"{c}\" AS VARCHAR), '')" for c in cols)
    con = _hash_connection()
    try:
        con.register("_d", df[cols].reset_index(drop=True))
        # insertion order is preserved by DuckDB for a plain projection (preserve_insertion_order)
        ids = con.execute(f"SELECT left(sha1({expr}), 20) AS id FROM _d").fetchnumpy()["id"]
    finally:
        con.close()
    return pd.Series(np.asarray(ids, dtype=object), index=df.index, dtype="string")


def kept_raw_columns(frame: pd.DataFrame, raw_columns: Collection[str] | None = None) -> pd.DataFrame:
    """The columns of ``frame`` that rejects keep in ``raw`` (``raw_columns``, default the canonical ones),
    in the frame's order; see :func:`validate_events`.

    Examples
    --------
    >>> f = pd.DataFrame({"user_id": ["u1"], "email": ["a@example.com"], "ts": ["x"]})
    >>> list(kept_raw_columns(f).columns)
    ['user_id', 'ts']
    """
    keep = set(EVENT_COLUMNS if raw_columns is None else raw_columns)
    cols = [c for c in frame.columns if c in keep]
    return frame if len(cols) == frame.shape[1] else frame[cols]


_EMAIL = r"[^@\s<>\"',;]+@[^@\s<>\"',;]+\.[A-Za-z]{2,}"
_EMAIL_ANY = re.compile(_EMAIL)
EMAIL_REMOVED = "<e-mail removed>"


def scrub_emails(text: str) -> str:
    """``text`` with every e-mail address replaced by ``<e-mail removed>`` (for rejects' raw rows).

    >>> scrub_emails('u1,ann.lee@example.com,2024-01-01')
    'u1,<e-mail removed>,2024-01-01'
    """
    return _EMAIL_ANY.sub(EMAIL_REMOVED, text) if "@" in text else text


def looks_like_email(s: pd.Series) -> np.ndarray:
    """True where a value is an e-mail address (an id that is personal data, not a pseudonym)."""
    text = s.astype("string").str.strip()
    at = text.str.contains("@", regex=False).fillna(False).to_numpy(dtype=bool)
    out = np.zeros(len(s), dtype=bool)
    if at.any():
        out[at] = text[at].str.fullmatch(_EMAIL).fillna(False).to_numpy(dtype=bool)
    return out


def _raw_json(frame: pd.DataFrame) -> list[str]:
    """One JSON object per row, original column names and values (missing -> null; e-mail addresses
    replaced by ``<e-mail removed>``)."""
    if len(frame) == 0:
        return []
    text = frame.to_json(orient="records", lines=True, force_ascii=False, date_format="iso", date_unit="us",
                         default_handler=str)
    text = scrub_emails(text)  # an e-mail address in a kept column is not copied into the rejects table
    if "\\/" in text:  # pandas escapes every '/'; undo that (keeping escaped backslashes as they are)
        text = _SLASH.sub(lambda m: "/" if m.group(0) == "\\/" else m.group(0), text)
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def validate_events(
    raw: pd.DataFrame,
    *,
    row_offset: int = 0,
    default_platform: str = "default",
    source: str = "<frame>",
    original: pd.DataFrame | None = None,
    row_numbers: np.ndarray | None = None,
    ts_format: str | None = None,
    timezone: str = "UTC",
    max_amount: float = MAX_AMOUNT,
    max_quantity: float = MAX_QUANTITY,
    raw_columns: Collection[str] | None = None,
) -> ValidationResult:
    """Validate a frame of raw events already renamed to canonical column names.

    Checks, in this order (a row gets the first reason that applies): required fields present,
    timestamp parses and lies in 1970..2100, event type known, numbers numeric and finite,
    money events carry an amount, amount and quantity not negative and not above ``max_amount`` /
    ``max_quantity`` (a non-zero amount not below 1e-8), rating an integer 1..5,
    installments a non-negative integer, currency three letters, event_id not repeated in the batch.

    Parameters
    ----------
    raw : DataFrame
        Columns named as in :data:`~buyerscore.events.schema.EVENT_COLUMNS`; extra columns are ignored,
        optional ones may be absent.
    row_offset : int
        Number of data rows before this frame in its source (row numbers in rejects are
        ``row_offset + position + 1``).
    default_platform : str
        Platform given to rows without one.
    source : str
        Name of the input, used in error messages.
    original : DataFrame, optional
        The rows as they were before any renaming or recoding (same length and order as ``raw``);
        rejects keep these values.  Default: ``raw`` itself.
    row_numbers : array of int, optional
        Explicit 1-based source row numbers (overrides ``row_offset``), e.g. when malformed lines
        were taken out before.
    ts_format, timezone : str
        How to read text timestamps; see :func:`parse_timestamps`.
    max_amount, max_quantity : float
        Largest ``amount`` / ``quantity`` of one event (defaults
        :data:`~buyerscore.events.schema.MAX_AMOUNT` = 1e12 and ``MAX_QUANTITY`` = 1e6, at most 1e18):
        larger values are rejected, so that sums over a user's events stay finite.
    raw_columns : collection of str, optional
        Columns of ``original`` (or ``raw``) that rejects keep in ``raw``: the columns that were read
        (default: the canonical ones).  Other columns, such as an e-mail or address column that no
        field is mapped from, cannot cause a reject and are left out, so that personal data the
        events never hold is not copied into the rejects table either.

    Returns
    -------
    ValidationResult

    Raises
    ------
    SchemaError
        If a required column (user_id, ts, event_type) is missing altogether.

    Examples
    --------
    >>> raw = pd.DataFrame({"user_id": ["u1", "u2"], "ts": ["2024-01-01", "not a date"],
    ...                     "event_type": ["purchase", "view"], "amount": ["9.5", None]})
    >>> res = validate_events(raw)
    >>> len(res.accepted), res.by_reason
    (1, {'BAD_TIMESTAMP': 1})
    """
    for name, limit in (("max_amount", max_amount), ("max_quantity", max_quantity)):
        if not MIN_NONZERO_AMOUNT <= float(limit) <= LIMIT_CEILING:
            raise ValueError(f"The {name!r} parameter of validate_events must be a float in [{MIN_NONZERO_AMOUNT:g}, "
                             f"{LIMIT_CEILING:g}]. Got {limit!r} instead.")
    missing = [c for c in REQUIRED_EVENT_COLUMNS if c not in raw.columns]
    if missing:
        present = list(map(str, raw.columns))
        norm = {c.lower().replace("_", "").replace(" ", "").replace("-", ""): c for c in present}
        hints = {}
        for m in missing:
            names = (m.replace("_", ""), *_SYNONYMS.get(m, ()))
            found = next((norm[n] for n in names if n in norm), None)
            hints[m] = found or next(iter(difflib.get_close_matches(m, present, n=1)), None)
        hint = ", ".join(f"{m}: {h}" for m, h in hints.items() if h)
        raise SchemaError(
            f"{source}: required column(s) {missing} not found; columns present: {present[:20]}. "
            "Rename them in the file or pass a mapping (--mapping cols.yaml with e.g. 'user_id: CustomerID')"
            + (f"; perhaps 'columns: {{{hint}}}'." if hint else ".")
        )
    dup_cols = sorted({str(c) for c in raw.columns[raw.columns.duplicated()]})
    if dup_cols:
        raise SchemaError(f"{source}: column(s) {dup_cols} appear more than once (after mapping); "
                          "map each canonical field from one column only.")
    n = len(raw)
    raw = raw.reset_index(drop=True)
    if original is not None and len(original) != n:
        raise ValueError(f"original has {len(original)} rows but raw has {n}; they must match row for row.")
    r = _Reasons(n)
    cols: dict[str, pd.Series] = {}  # the accepted frame is built once, after every column is known

    for c in REQUIRED_EVENT_COLUMNS:
        r.flag(_blank(raw[c]), "MISSING_REQUIRED", f"{c} is empty")
    r.flag(looks_like_email(raw["user_id"]), "PERSONAL_ID",
           "user_id is an e-mail address (not shown); ids must be pseudonymous: add 'pseudonymize: [user_id]' to "
           "the mapping file (a keyed hash, key in $BUYERSCORE_ID_SALT), or hash the ids before ingesting")

    ts = parse_timestamps(raw["ts"], ts_format=ts_format, timezone=timezone)
    if timezone != "UTC" and ts.isna().any():
        gap, fold = _clock_changes(raw["ts"], ts.isna().to_numpy(), ts_format, timezone)
        r.flag(gap, "BAD_TIMESTAMP", "ts", raw["ts"], f" (does not exist in {timezone}: the clocks skip it at the "
               "daylight-saving change; add a UTC offset or fix the time)")
        r.flag(fold, "BAD_TIMESTAMP", "ts", raw["ts"], f" (occurs twice in {timezone}, at the daylight-saving "
               "change; add a UTC offset such as +01:00 to say which)")
    r.flag(ts.isna().to_numpy(), "BAD_TIMESTAMP", "ts", raw["ts"])
    r.flag(((ts <= TS_MIN) | (ts >= TS_MAX)).fillna(False).to_numpy(), "BAD_TIMESTAMP", "ts", raw["ts"],
           f" (outside {TS_MIN.date()} .. {TS_MAX.date()})")
    cols["ts"] = ts

    et = _to_str(raw["event_type"]).str.lower()
    r.flag(~et.isin(EVENT_TYPES).fillna(False).to_numpy(), "UNKNOWN_EVENT_TYPE", "event_type", raw["event_type"])
    cols["event_type"] = et

    nums: dict[str, pd.Series] = {}
    for c in _NUMERIC_COLUMNS:
        if c in raw.columns:
            col = raw[c]
            if pd.api.types.is_bool_dtype(col.dtype):
                col = col.astype("string")
            v = pd.to_numeric(col.astype("string").str.strip() if not pd.api.types.is_numeric_dtype(col.dtype)
                              else col, errors="coerce").astype("float64")
            bad = (v.isna().to_numpy() & ~_blank(raw[c])) | np.isinf(v.to_numpy())
            r.flag(bad, "BAD_NUMBER", c, raw[c])
            nums[c] = v.where(np.isfinite(v))
        else:
            nums[c] = pd.Series(np.nan, index=raw.index, dtype="float64")

    def given(c: str) -> pd.Series:  # the value as written, for details
        return raw[c] if c in raw.columns else nums[c]

    money = et.isin(list(MONEY_EVENTS)).fillna(False).to_numpy()
    r.flag(money & nums["amount"].isna().to_numpy(), "MISSING_AMOUNT", "event_type", et, " without amount")
    r.flag((nums["amount"] < 0).to_numpy(), "NEGATIVE_AMOUNT", "amount", given("amount"))
    r.flag((nums["quantity"] < 0).to_numpy(), "NEGATIVE_QUANTITY", "quantity", given("quantity"))
    amt = nums["amount"]
    r.flag(((amt > max_amount) | ((amt > 0) & (amt < MIN_NONZERO_AMOUNT))).to_numpy(), "AMOUNT_OUT_OF_RANGE",
           "amount", given("amount"), f" (allowed: 0 or {MIN_NONZERO_AMOUNT:g} .. {max_amount:g})")
    r.flag((nums["quantity"] > max_quantity).to_numpy(), "QUANTITY_OUT_OF_RANGE", "quantity", given("quantity"),
           f" (allowed: up to {max_quantity:g})")
    rt = nums["rating"]
    r.flag((rt.notna() & ((rt < 1) | (rt > 5) | (rt != rt.round()))).to_numpy(), "RATING_OUT_OF_RANGE", "rating",
           given("rating"))
    ins = nums["installments"]
    r.flag((ins.notna() & ((ins < 0) | (ins != ins.round()) | (ins > 2**31 - 1))).to_numpy(), "BAD_INSTALLMENTS",
           "installments", given("installments"))

    for c in _STRING_COLUMNS:
        cols[c] = _to_str(raw[c], as_id=c in ID_COLUMNS) if c in raw.columns else \
            pd.Series(pd.NA, index=raw.index, dtype="string")
    cols["platform"] = cols["platform"].fillna(default_platform)
    cur = cols["currency"] = cols["currency"].str.upper()
    r.flag((cur.notna() & ~cur.str.fullmatch(r"[A-Z]{3}").fillna(False)).to_numpy(), "BAD_CURRENCY", "currency",
           raw["currency"] if "currency" in raw.columns else cur)
    cols["quantity"] = nums["quantity"]
    cols["amount"] = nums["amount"]
    ok = r.ok
    cols["rating"] = nums["rating"].where(ok).astype("Int32")
    cols["installments"] = nums["installments"].where(ok).astype("Int32")
    out = pd.DataFrame(cols, index=raw.index)

    need_id = out["event_id"].isna().to_numpy() & ok
    if need_id.any():
        out.loc[need_id, "event_id"] = derive_event_ids(out.loc[need_id])
    dup = out["event_id"].where(ok).duplicated(keep="first").to_numpy() & ok
    r.flag(dup, "DUPLICATE_EVENT", "event_id", out["event_id"])

    bad = ~r.ok
    numbers = (np.asarray(row_numbers, dtype="int64") if row_numbers is not None
               else np.arange(1, n + 1, dtype="int64") + row_offset)
    if len(numbers) != n:
        raise ValueError(f"row_numbers has {len(numbers)} entries for {n} rows.")
    if bad.any():
        src = kept_raw_columns(original.reset_index(drop=True) if original is not None else raw,
                               raw_columns).loc[bad]
        rejects = pd.DataFrame({
            "row_number": numbers[bad],
            "reason": r.code[bad].astype(str),
            "detail": r.detail[bad].astype(str),
            "raw": _raw_json(src),
        })
    else:
        rejects = empty_rejects()
    accepted = out.loc[~bad, list(EVENT_COLUMNS)].reset_index(drop=True)
    return ValidationResult(accepted=accepted, rejects=rejects, read=n, accepted_positions=np.flatnonzero(~bad))


_EMPTY_REJECTS = pd.DataFrame({"row_number": pd.Series(dtype="int64"), "reason": pd.Series(dtype="object"),
                               "detail": pd.Series(dtype="object"), "raw": pd.Series(dtype="object")})


def empty_rejects() -> pd.DataFrame:
    """A rejects frame with no rows and the right columns (a copy: callers may add columns)."""
    return _EMPTY_REJECTS.copy()
