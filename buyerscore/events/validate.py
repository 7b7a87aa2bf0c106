"""Row-level validation of behaviour events.

:func:`validate_events` never raises for a bad row: every row ends up either in the
accepted frame (typed, canonical columns) or in the rejects frame with exactly one
reason code from :data:`~buyerscore.events.schema.REJECT_REASONS`, its 1-based row
number in the source and the original values as JSON, so ``read == accepted + rejected``.
It raises :class:`~buyerscore.exceptions.SchemaError` only when the input as a whole is
unusable (a required column is missing).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from buyerscore.events.schema import EVENT_COLUMNS, EVENT_TYPES, MONEY_EVENTS, REQUIRED_EVENT_COLUMNS
from buyerscore.exceptions import SchemaError

REJECT_COLUMNS = ("row_number", "reason", "detail", "raw")


@dataclass
class ValidationResult:
    """Outcome of validating one batch."""

    accepted: pd.DataFrame
    rejects: pd.DataFrame
    read: int

    @property
    def by_reason(self) -> dict[str, int]:
        return {str(k): int(v) for k, v in self.rejects["reason"].value_counts().sort_index().items()}

    def __post_init__(self) -> None:
        assert self.read == len(self.accepted) + len(self.rejects), "validation lost rows"


@dataclass
class _Reasons:
    n: int
    reason: np.ndarray = field(init=False)
    detail: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.reason = np.full(self.n, None, dtype=object)
        self.detail = np.full(self.n, None, dtype=object)

    def flag(self, mask: np.ndarray | pd.Series, code: str, detail: pd.Series | str) -> None:
        m = np.asarray(mask, dtype=bool) & (self.reason == None)  # noqa: E711  (object array)
        if not m.any():
            return
        self.reason[m] = code
        self.detail[m] = detail if isinstance(detail, str) else np.asarray(detail.astype(str))[m]


def _blank(s: pd.Series) -> np.ndarray:
    if s.dtype == object or pd.api.types.is_string_dtype(s.dtype):
        return np.asarray(s.isna() | (s.astype("string").str.strip() == ""), dtype=bool)
    return np.asarray(s.isna(), dtype=bool)


def _to_str(s: pd.Series) -> pd.Series:
    out = s.astype("string").str.strip()
    return out.mask(out == "", pd.NA)


def parse_timestamps(s: pd.Series) -> pd.Series:
    """Parse a column to naive UTC timestamps; unparseable values become NaT.

    Integers (or numeric strings) are Unix seconds, or milliseconds when larger than 1e11.
    Strings are ISO 8601 first, then any format pandas recognises; offsets are honoured and
    converted to UTC, naive values are taken as UTC.
    """
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        out = pd.to_datetime(s, utc=True)
        return out.dt.tz_convert("UTC").dt.tz_localize(None).astype("datetime64[us]")
    num = pd.to_numeric(s, errors="coerce")
    is_num = num.notna().to_numpy()
    result = pd.Series(pd.NaT, index=s.index, dtype="datetime64[us, UTC]")
    if is_num.any():
        vals = num[is_num].astype("float64")
        unit_ms = vals.abs() > 1e11
        secs = np.where(unit_ms, vals / 1000.0, vals)
        result.loc[is_num] = pd.to_datetime(secs, unit="s", utc=True, errors="coerce")
    rest = ~is_num & s.notna().to_numpy()
    if rest.any():
        txt = s[rest].astype(str).str.strip()
        parsed = pd.to_datetime(txt, utc=True, errors="coerce", format="ISO8601")
        bad = parsed.isna()
        if bad.any():
            parsed.loc[bad] = pd.to_datetime(txt[bad], utc=True, errors="coerce", format="mixed")
        result.loc[rest] = parsed
    return result.dt.tz_localize(None).astype("datetime64[us]")


def derive_event_ids(df: pd.DataFrame) -> pd.Series:
    """Deterministic event ids: SHA-1 over the canonical fields of each row (first 20 hex digits)."""
    parts = [df[c].astype("string").fillna("") for c in EVENT_COLUMNS if c != "event_id" and c in df.columns]
    joined = parts[0]
    for p in parts[1:]:
        joined = joined + "\x1f" + p
    return pd.Series(
        [hashlib.sha1(v.encode("utf-8")).hexdigest()[:20] for v in joined.tolist()], index=df.index, dtype="string"
    )


def validate_events(
    raw: pd.DataFrame, *, row_offset: int = 0, default_platform: str = "default", source: str = "<frame>"
) -> ValidationResult:
    """Validate a frame of raw events already renamed to canonical column names.

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

    Examples
    --------
    >>> import pandas as pd
    >>> raw = pd.DataFrame({"user_id": ["u1", "u2"], "ts": ["2024-01-01", "not a date"],
    ...                     "event_type": ["purchase", "view"], "amount": ["9.5", None]})
    >>> res = validate_events(raw)
    >>> len(res.accepted), res.by_reason
    (1, {'BAD_TIMESTAMP': 1})
    """
    missing = [c for c in REQUIRED_EVENT_COLUMNS if c not in raw.columns]
    if missing:
        raise SchemaError(
            f"{source}: required column(s) {missing} not found; columns present: {list(raw.columns)[:20]}. "
            "Rename them in the file or pass a mapping (--mapping cols.yaml with e.g. 'user_id: CustomerID')."
        )
    n = len(raw)
    raw = raw.reset_index(drop=True)
    r = _Reasons(n)
    out = pd.DataFrame(index=raw.index)

    for c in REQUIRED_EVENT_COLUMNS:
        r.flag(_blank(raw[c]), "MISSING_REQUIRED", f"{c} is empty")

    ts = parse_timestamps(raw["ts"])
    r.flag(ts.isna().to_numpy(), "BAD_TIMESTAMP", "ts=" + raw["ts"].astype(str))
    out["ts"] = ts

    et = _to_str(raw["event_type"]).str.lower()
    r.flag(~et.isin(EVENT_TYPES).fillna(False).to_numpy(), "UNKNOWN_EVENT_TYPE", "event_type=" + raw["event_type"].astype(str))
    out["event_type"] = et

    nums: dict[str, pd.Series] = {}
    for c in ("quantity", "amount", "rating", "installments"):
        if c in raw.columns:
            v = pd.to_numeric(raw[c], errors="coerce")
            r.flag((v.isna() & ~_blank(raw[c])).to_numpy(), "BAD_NUMBER", f"{c}=" + raw[c].astype(str))
            nums[c] = v.astype("float64")
        else:
            nums[c] = pd.Series(np.nan, index=raw.index, dtype="float64")

    money = et.isin(list(MONEY_EVENTS)).fillna(False).to_numpy()
    r.flag(money & nums["amount"].isna().to_numpy(), "MISSING_AMOUNT", "event_type=" + et.astype(str) + " without amount")
    r.flag((nums["amount"] < 0).to_numpy(), "NEGATIVE_AMOUNT", "amount=" + nums["amount"].astype(str))
    r.flag((nums["quantity"] < 0).to_numpy(), "NEGATIVE_QUANTITY", "quantity=" + nums["quantity"].astype(str))
    rt = nums["rating"]
    r.flag((rt.notna() & ((rt < 1) | (rt > 5) | (rt != rt.round()))).to_numpy(), "RATING_OUT_OF_RANGE",
           "rating=" + rt.astype(str))
    ins = nums["installments"]
    r.flag((ins.notna() & ((ins < 0) | (ins != ins.round()))).to_numpy(), "BAD_INSTALLMENTS",
           "installments=" + ins.astype(str))

    for c in ("user_id", "platform", "item_id", "category", "currency", "order_id", "text", "event_id"):
        out[c] = _to_str(raw[c]) if c in raw.columns else pd.Series(pd.NA, index=raw.index, dtype="string")
    out["platform"] = out["platform"].fillna(default_platform)
    out["currency"] = out["currency"].str.upper()
    cur = out["currency"]
    r.flag((cur.notna() & ~cur.str.fullmatch(r"[A-Z]{3}").fillna(False)).to_numpy(), "BAD_CURRENCY",
           "currency=" + cur.astype(str))
    out["quantity"] = nums["quantity"]
    out["amount"] = nums["amount"]
    out["rating"] = nums["rating"].astype("Int32")
    out["installments"] = nums["installments"].astype("Int32")

    need_id = out["event_id"].isna().to_numpy()
    if need_id.any():
        out.loc[need_id, "event_id"] = derive_event_ids(out.loc[need_id])
    still_ok = r.reason == None  # noqa: E711
    dup = out["event_id"].where(still_ok).duplicated(keep="first").to_numpy() & still_ok
    r.flag(dup, "DUPLICATE_EVENT", "event_id=" + out["event_id"].astype(str))

    bad = r.reason != None  # noqa: E711
    if bad.any():
        raw_bad = raw.loc[bad]
        rows = raw_bad.astype(object).where(raw_bad.notna(), None).to_dict(orient="records")
        rejects = pd.DataFrame({
            "row_number": (np.flatnonzero(bad) + row_offset + 1).astype("int64"),
            "reason": r.reason[bad].astype(str),
            "detail": r.detail[bad].astype(str),
            "raw": [json.dumps(x, default=str, ensure_ascii=False) for x in rows],
        })
    else:
        rejects = pd.DataFrame({c: pd.Series(dtype="int64" if c == "row_number" else "object") for c in REJECT_COLUMNS})
    accepted = out.loc[~bad, list(EVENT_COLUMNS)].reset_index(drop=True)
    return ValidationResult(accepted=accepted, rejects=rejects, read=n)
