"""Checks of request events beyond row validation: amount and quantity bounds, no timestamps in the future.

Row validation (:func:`buyerscore.events.validate.validate_events`, shared with file ingestion) rejects
single rows that cannot be stored.  The service refuses, in addition, a whole request (field-level 422)
whose events it could store but should not: an ``amount`` or ``quantity`` above the server's limit (three
amounts of 1e308 summed to infinity in the features), a non-zero ``amount`` too small to be money, or a
``ts`` later than the server's clock plus a tolerance.  Values that are not numbers or timestamps at all
are left to row validation (they become row rejects with a reason code, as before).
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from buyerscore.events.schema import MIN_NONZERO_AMOUNT
from buyerscore.events.validate import parse_timestamps
from buyerscore.serving.api.settings import ServeSettings

MAX_REPORTED = 20
"""At most this many events are named in one 422 (the last entry counts the rest)."""


def duration_text(seconds: float) -> str:
    """A tolerance in words: ``86400 -> '1 day (86400 s)'``, ``90 -> '90 s'``.

    >>> duration_text(86400), duration_text(7200), duration_text(0)
    ('1 day (86400 s)', '2 h (7200 s)', '0 s')
    """
    s = float(seconds)
    whole = f"{s:g} s"
    if s >= 86_400 and s % 86_400 == 0:
        d = int(s // 86_400)
        return f"{d} day{'s' if d != 1 else ''} ({whole})"
    if s >= 3_600 and s % 3_600 == 0:
        return f"{int(s // 3_600)} h ({whole})"
    return whole


def _shown(v: Any, n: int = 40) -> str:
    text = str(v)
    return text if len(text) <= n else text[:n] + "..."


_ISO = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?)?(?:Z|[+-]\d{2}:\d{2})?")
"""The common ISO 8601 forms, read by ``datetime.fromisoformat`` (1 us instead of pandas' milliseconds)."""


def _numbers(col: pd.Series) -> np.ndarray:
    """The column read as numbers the way row validation reads it (strings stripped, junk -> NaN).

    JSON numbers are taken as they are; only strings go through pandas (as in row validation).

    >>> _numbers(pd.Series([5, 2.5, " 1e3 ", "x", None, True], dtype=object)).tolist()
    [5.0, 2.5, 1000.0, nan, nan, nan]
    """
    out = np.full(len(col), np.nan)
    values = col.to_numpy(dtype=object)
    text: list[int] = []
    for i, v in enumerate(values):
        if isinstance(v, bool) or v is None:
            continue
        if isinstance(v, int | float):
            try:
                out[i] = float(v)
            except OverflowError:  # an integer beyond float range
                out[i] = math.inf if v > 0 else -math.inf
        elif isinstance(v, str):
            text.append(i)
    if text:
        sub = pd.Series(values[text], dtype="string").str.strip()
        out[text] = pd.to_numeric(sub, errors="coerce").astype("float64").to_numpy(na_value=np.nan)
    return out


def _times(col: pd.Series) -> pd.Series:
    """The column read as naive UTC timestamps exactly as row validation reads them (NaT when it cannot).

    Common ISO 8601 strings are read directly; everything else (Unix times, other formats) goes through
    :func:`buyerscore.events.validate.parse_timestamps`.

    >>> _times(pd.Series(["2024-01-01T10:00:00+02:00", 1704096000, "20240101", "soon"], dtype=object)).tolist()
    [Timestamp('2024-01-01 08:00:00'), Timestamp('2024-01-01 08:00:00'), Timestamp('2024-01-01 00:00:00'), NaT]
    """
    out = pd.Series(pd.NaT, index=col.index, dtype="datetime64[us]")
    values = col.to_numpy(dtype=object)
    quick: dict[int, datetime] = {}
    rest: list[int] = []
    for i, v in enumerate(values):
        if isinstance(v, str) and _ISO.fullmatch(v.strip()):
            try:
                d = datetime.fromisoformat(v.strip())
            except ValueError:  # 2024-13-45: let the full parser say so
                rest.append(i)
                continue
            if d.tzinfo is not None:
                d = d.astimezone(UTC).replace(tzinfo=None)
            quick[i] = d
        elif v is not None:
            rest.append(i)
    if quick:
        out.iloc[list(quick)] = pd.to_datetime(list(quick.values())).astype("datetime64[us]")
    if rest:
        out.iloc[rest] = parse_timestamps(pd.Series(values[rest], dtype=object)).to_numpy()
    return out


def limit_errors(raw: pd.DataFrame, settings: ServeSettings, now: datetime,
                 loc: tuple[str, ...] = ("body", "events")) -> list[dict[str, Any]]:
    """Field-level errors (FastAPI's ``{"loc", "msg", "type"}``) for the events of ``raw`` (canonical
    columns, values as sent) that break the server's limits; empty when all are within them.

    ``now`` is the server's clock (naive UTC).  Ids are never quoted, only the offending values.
    """
    found: list[tuple[int, int, dict[str, Any]]] = []  # (event index, field order, error)
    with np.errstate(invalid="ignore"):
        for order, (col, limit) in enumerate((("amount", settings.max_amount), ("quantity", settings.max_quantity))):
            if col not in raw.columns:
                continue
            v = _numbers(raw[col])
            for i in np.flatnonzero(v > limit):
                found.append((int(i), order, {
                    "loc": [*loc, int(i), col], "type": "less_than_equal",
                    "msg": f"events[{i}].{col}: {_shown(raw[col].iloc[i])} is above the limit of {limit:g} per event "
                           f"(the server's max_{col}); check the unit (cents instead of units?) or split the "
                           "event."}))
            if col == "amount":
                for i in np.flatnonzero((v > 0) & (v < MIN_NONZERO_AMOUNT)):
                    found.append((int(i), order, {
                        "loc": [*loc, int(i), col], "type": "greater_than_equal",
                        "msg": f"events[{i}].amount: {_shown(raw[col].iloc[i])} is neither 0 nor at least "
                               f"{MIN_NONZERO_AMOUNT:g}; send 0 or the amount in currency units."}))
    if "ts" in raw.columns and len(raw):
        ts = _times(raw["ts"])
        cut = pd.Timestamp(now) + pd.Timedelta(seconds=settings.future_tolerance_s)
        late = np.asarray((ts > cut).fillna(False), dtype=bool)
        tol = duration_text(settings.future_tolerance_s)
        for i in np.flatnonzero(late):
            found.append((int(i), 2, {
                "loc": [*loc, int(i), "ts"], "type": "timestamp_in_future",
                "msg": f"events[{i}].ts: {_shown(raw['ts'].iloc[i])} ({ts.iloc[i].isoformat()} UTC) is later than "
                       f"the server's clock ({pd.Timestamp(now).isoformat(timespec='seconds')} UTC) plus the "
                       f"allowed tolerance of {tol}; send events that have happened (naive times are UTC: "
                       "convert local times, or add their offset, e.g. +08:00)."}))
    found.sort(key=lambda t: (t[0], t[1]))
    errs = [e for _, _, e in found[:MAX_REPORTED]]
    if len(found) > MAX_REPORTED:
        n_events = len({i for i, _, _ in found})
        errs.append({"loc": list(loc), "type": "value_error",
                     "msg": f"{len(found)} values of {n_events} event(s) break the limits; the first "
                            f"{MAX_REPORTED} are listed. Nothing was stored."})
    return errs
