"""Reading event files (CSV, Parquet, JSON lines) and applying a column mapping.

A mapping file (YAML) renames the user's columns to canonical ones, sets constants,
recodes values and says how to read timestamps::

    columns:            # canonical name: column in your file
      user_id: CustomerID
      ts: InvoiceDate
      event_type: action
    constants:          # canonical columns with one value for the whole file
      platform: myshop
      currency: GBP
    values:             # recode values of a canonical column
      event_type: {pv: view, buy: purchase, fav: favorite}
    timestamp_format: "%d/%m/%Y %H:%M"   # optional strftime format of ts
    timezone: Europe/London              # optional zone of naive timestamps (default UTC)

A flat mapping (``user_id: CustomerID`` at top level) is read as ``columns``.

CSV and JSON-lines files are read as text so that rejects keep the original values.  A CSV
line with more fields than the header, or a JSON line that is not an object, does not stop
the ingest: it becomes a reject with reason ``MALFORMED_ROW`` (CSV lines with fewer fields
are padded with empty values, as pandas does, and then usually fail ``MISSING_REQUIRED``).
"""

from __future__ import annotations

import csv
import difflib
import gzip
import hashlib
import hmac
import io
import json
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd
import yaml

from buyerscore.events.schema import EVENT_COLUMNS
from buyerscore.events.validate import _to_str, empty_rejects, scrub_emails
from buyerscore.exceptions import SchemaError, UnreadableInputError

Format = Literal["csv", "parquet", "jsonl"]
FORMATS: tuple[str, ...] = ("csv", "parquet", "jsonl")
_SECTIONS = frozenset({"columns", "constants", "values", "timestamp_format", "timezone", "pseudonymize"})
PSEUDONYMIZABLE = ("user_id", "order_id", "item_id")
"""Fields a mapping can pseudonymize (``pseudonymize: [user_id]``)."""
SALT_ENV = "BUYERSCORE_ID_SALT"
"""Environment variable holding the secret key of the mapping's ``pseudonymize`` (at least 16 characters)."""


def _field_list(v: object) -> tuple[str, ...]:
    if v is None:
        return ()
    if isinstance(v, str):
        return (v,)
    if isinstance(v, list | tuple) and all(isinstance(x, str) for x in v):
        return tuple(v)
    raise SchemaError("mapping: 'pseudonymize' must be a field name or a list such as [user_id].")


def _salt() -> bytes:
    key = os.environ.get(SALT_ENV, "")
    if len(key) < 16:
        raise SchemaError(
            f"mapping: 'pseudonymize' needs a secret key of at least 16 characters in the environment variable "
            f"{SALT_ENV} ({'it is unset' if not key else f'it has {len(key)}'}); e.g. "
            f"export {SALT_ENV}=$(python -c 'import secrets; print(secrets.token_hex(16))'). Keep it secret and the "
            "same for every file: the same key gives the same pseudonyms, so later files' events join the same users.")
    return key.encode()


def pseudonymize_values(s: pd.Series, key: bytes) -> pd.Series:
    """Keyed hashes (HMAC-SHA256, 24 hex digits) of the ids in ``s``, normalised as ingestion normalises ids
    (stripped; ``17850.0`` is ``17850``), so a file's id and the same id from another format get the same
    pseudonym; empty values stay empty.

    >>> p = pseudonymize_values(pd.Series(["ann@example.com", None, " ann@example.com"]), b"k" * 16)
    >>> bool(p[0] == p[2]), p[1] is pd.NA, len(p[0]), "ann" in p[0]
    (True, True, 24, False)
    """
    ids = _to_str(s, as_id=True)
    uniq = ids.dropna().unique()
    table = {v: hmac.new(key, str(v).encode("utf-8"), hashlib.sha256).hexdigest()[:24] for v in uniq}
    return ids.map(table).astype("string")


@dataclass(frozen=True)
class ColumnMapping:
    """Renames, constants and value recodes applied to a raw frame before validation.

    Attributes
    ----------
    columns : dict
        ``{canonical field: column in the file}``.
    constants : dict
        ``{canonical field: value}`` for the whole file (e.g. ``currency: GBP``).
    values : dict
        ``{canonical field: {value in the file: canonical value}}``; unlisted values are kept.
    timestamp_format : str, optional
        ``strftime`` format of the ``ts`` text (default: ISO 8601, then inferred).
    timezone : str
        IANA zone of naive timestamps; default ``"UTC"``.
    pseudonymize : tuple of str
        Fields (``user_id``, ``order_id``, ``item_id``) whose values are replaced, before validation, by a
        keyed hash (HMAC-SHA256 with the secret in ``$BUYERSCORE_ID_SALT``, 24 hex digits): for logs keyed by
        e-mail address or customer number.  The original values are stored nowhere, rejects included.

    Examples
    --------
    >>> m = ColumnMapping(columns={"user_id": "uid"}, values={"event_type": {"pv": "view"}})
    >>> m.apply(pd.DataFrame({"uid": ["a"], "event_type": ["pv"]})).to_dict("records")
    [{'user_id': 'a', 'event_type': 'view'}]
    """

    columns: dict[str, str] = field(default_factory=dict)
    constants: dict[str, str] = field(default_factory=dict)
    values: dict[str, dict[str, str]] = field(default_factory=dict)
    timestamp_format: str | None = None
    timezone: str = "UTC"
    pseudonymize: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "pseudonymize", tuple(self.pseudonymize))  # frozen: a list from YAML -> tuple
        odd = [f for f in self.pseudonymize if f not in PSEUDONYMIZABLE]
        if odd:
            raise SchemaError(f"mapping: pseudonymize {odd}: only {list(PSEUDONYMIZABLE)} can be pseudonymized.")
        if self.pseudonymize:
            _salt()  # fail before reading the file when the key is missing
        bad = [k for k in [*self.columns, *self.constants, *self.values] if k not in EVENT_COLUMNS]
        if bad:
            raise SchemaError(f"mapping: {bad} are not canonical event fields; allowed: {list(EVENT_COLUMNS)}.")
        both = sorted(set(self.columns) & set(self.constants))
        if both:
            raise SchemaError(f"mapping: {both} are under both 'columns' and 'constants'; keep one.")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise SchemaError(f"mapping: timezone {self.timezone!r} is not an IANA zone name; "
                              "use e.g. 'UTC', 'Europe/London', 'Asia/Taipei'.") from None

    @classmethod
    def from_yaml(cls, path: str | Path) -> ColumnMapping:
        """Read a mapping file (see the module docstring for the layout)."""
        p = Path(path)
        try:
            data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        except OSError as exc:
            raise UnreadableInputError(f"Mapping file {p} cannot be read ({exc.strerror or exc}); check the path.") \
                from exc
        except yaml.YAMLError as exc:
            raise SchemaError(f"Mapping file {p} is not valid YAML: {str(exc).splitlines()[0]}.") from exc
        if not isinstance(data, dict):
            raise SchemaError(f"Mapping file {p} must hold a YAML mapping, e.g. 'columns: {{user_id: CustomerID}}'.")
        if not (_SECTIONS & data.keys()):
            data = {"columns": data}
        unknown = set(data) - _SECTIONS
        if unknown:
            raise SchemaError(f"Mapping file {p}: unknown section(s) {sorted(unknown)}; use {sorted(_SECTIONS)}.")
        for sec in ("columns", "constants", "values"):
            if not isinstance(data.get(sec) or {}, dict):
                raise SchemaError(f"Mapping file {p}: section '{sec}' must be a mapping (name: value).")
        try:
            return cls(
                columns={str(k): str(v) for k, v in (data.get("columns") or {}).items()},
                constants={str(k): str(v) for k, v in (data.get("constants") or {}).items()},
                values={str(k): {str(a): str(b) for a, b in (v or {}).items()}
                        for k, v in (data.get("values") or {}).items()},
                timestamp_format=str(data["timestamp_format"]) if data.get("timestamp_format") else None,
                timezone=str(data.get("timezone") or "UTC"),
                pseudonymize=_field_list(data.get("pseudonymize")),
            )
        except SchemaError as exc:
            raise SchemaError(f"Mapping file {p}: {str(exc).removeprefix('mapping: ')}") from None
        except AttributeError:
            raise SchemaError(f"Mapping file {p}: each entry under 'values' must be a mapping "
                              "like 'event_type: {pv: view}'.") from None

    def protect(self, df: pd.DataFrame) -> pd.DataFrame:
        """The file's frame with the columns of the ``pseudonymize`` fields replaced by their keyed hashes
        (``df`` itself when there are none); run before :meth:`apply`, so that rejects see pseudonyms too."""
        if not self.pseudonymize:
            return df
        key, out = _salt(), df.copy()
        for f in self.pseudonymize:
            col = self.columns.get(f, f)
            if col in out.columns:
                out[col] = pseudonymize_values(out[col], key)
        return out

    def apply(self, df: pd.DataFrame, source: str = "<frame>") -> pd.DataFrame:
        """Rename, add constants and recode; returns a new frame (``df`` is not changed).

        A column of the file that already has a canonical name but is replaced by a mapped
        column or a constant is dropped from the validated frame (rejects still show it).
        """
        missing = [src for src in self.columns.values() if src not in df.columns]
        if missing:
            present = list(map(str, df.columns))
            folded = {c.casefold().strip(): c for c in present}
            near = {m: folded.get(m.casefold().strip()) or next(iter(difflib.get_close_matches(m, present, n=1)), None)
                    for m in missing}
            hint = ", ".join(f"{m!r} -> {c!r}" for m, c in near.items() if c)
            raise SchemaError(
                f"{source}: mapped column(s) {missing} not found in the file; columns present: "
                f"{present[:20]}. Fix the names under 'columns:' in the mapping file"
                + (f" (perhaps {hint})." if hint else ".")
            )
        replaced = [c for c in [*self.columns, *self.constants] if c in df.columns and self.columns.get(c) != c]
        out = df.drop(columns=replaced).rename(columns={src: dst for dst, src in self.columns.items()})
        for k, v in self.constants.items():
            out[k] = v
        for k, recode in self.values.items():
            if k in out.columns:
                s = out[k]
                as_text = s.astype("string").str.strip()
                mapped = as_text.map(recode)
                out[k] = mapped.where(mapped.notna(), s.astype(object)) if len(s) else s
        return out

    def digest(self) -> str:
        """Content hash of the mapping (part of a batch id)."""
        key = (sorted(self.columns.items()), sorted(self.constants.items()),
               sorted((k, sorted(v.items())) for k, v in self.values.items()))
        if self.timestamp_format or self.timezone != "UTC":
            key = (*key, self.timestamp_format, self.timezone)  # type: ignore[assignment]
        if self.pseudonymize:  # another key gives other ids: another batch
            mark = hmac.new(_salt(), b"buyerscore batch", hashlib.sha256).hexdigest()[:16]
            key = (*key, tuple(self.pseudonymize), mark)  # type: ignore[assignment]
        return hashlib.sha1(repr(key).encode()).hexdigest()


@dataclass
class RawInput:
    """A file read as raw values.

    Attributes
    ----------
    frame : DataFrame
        The well-formed rows, original column names, text values for CSV / JSON lines.
    row_numbers : ndarray
        1-based data-row number of each row of ``frame`` in the file (header and blank lines not counted).
    malformed : DataFrame
        Rejects (``row_number, reason, detail, raw``) for lines that could not be parsed at all.
    """

    frame: pd.DataFrame
    row_numbers: np.ndarray
    malformed: pd.DataFrame

    @property
    def read(self) -> int:
        return len(self.frame) + len(self.malformed)


def infer_format(path: str | Path) -> Format:
    """The format from the file name (``.csv``, ``.csv.gz``, ``.parquet``, ``.jsonl``, ``.ndjson``)."""
    name = str(path).lower().removesuffix(".gz")
    for ext, fmt in ((".csv", "csv"), (".tsv", "csv"), (".parquet", "parquet"), (".pq", "parquet"),
                     (".jsonl", "jsonl"), (".ndjson", "jsonl"), (".json", "jsonl")):
        if name.endswith(ext):
            return fmt  # type: ignore[return-value]
    raise SchemaError(f"Cannot tell the format of {path} from its name; pass --format with one of "
                      f"{', '.join(FORMATS)}.")


def _open_text(p: Path) -> IO[str]:
    if p.name.lower().endswith(".gz"):
        return io.TextIOWrapper(gzip.open(p, "rb"), encoding="utf-8-sig", newline="")
    return p.open("r", encoding="utf-8-sig", newline="")


def _malformed(numbers: list[int], lines: list[str], detail: str) -> pd.DataFrame:
    if not numbers:
        return empty_rejects()
    return pd.DataFrame({"row_number": np.asarray(numbers, dtype="int64"), "reason": "MALFORMED_ROW",
                         "detail": detail, "raw": [json.dumps({"_line": scrub_emails(ln[:10_000])}, ensure_ascii=False)
                                                   for ln in lines]})


_OTHER_SEPARATORS = (";", "\t", "|")


def csv_separator(path: str | Path) -> str:
    r"""The field separator of a CSV file: tab for ``.tsv``; else ``,`` unless the header line has no comma
    but a ``;``, a tab or a ``|`` (the most frequent of them): spreadsheets in many locales export
    ``;``-separated "CSV".

    Examples
    --------
    >>> import tempfile, os
    >>> f = os.path.join(tempfile.mkdtemp(), "e.csv")
    >>> _ = open(f, "w").write("user_id;ts;event_type\nu1;2024-01-01;view\n")
    >>> csv_separator(f)
    ';'
    """
    p = Path(path)
    if p.name.lower().removesuffix(".gz").endswith(".tsv"):
        return "\t"
    try:
        with _open_text(p) as fh:
            header = fh.readline(65_536)
    except (UnicodeDecodeError, OSError, EOFError):  # the read itself reports these
        return ","
    if "," in header:
        return ","
    counts = {s: header.count(s) for s in _OTHER_SEPARATORS}
    best = max(counts, key=lambda s: counts[s])
    return best if counts[best] else ","


def _read_csv_slow(p: Path, sep: str = ",") -> RawInput:
    """Line-by-line CSV reading used when pandas' fast parser refuses the file (ragged lines)."""
    with _open_text(p) as fh:
        reader = csv.reader(fh, delimiter=sep)
        header = next(reader, None)
        if header is None:
            raise UnreadableInputError(f"{p} is empty; a CSV file needs a header row naming its columns.")
        k = len(header)
        good: list[list[str | None]] = []
        numbers: list[int] = []
        bad_n: list[int] = []
        bad_lines: list[str] = []
        i = 0
        for rec in reader:
            if not rec or all(not f.strip() for f in rec) and len(rec) <= 1:
                continue  # blank line (pandas skips them too)
            i += 1
            if len(rec) > k:
                bad_n.append(i)
                bad_lines.append(sep.join(rec))
                continue
            good.append([v if v != "" else None for v in rec] + [None] * (k - len(rec)))
            numbers.append(i)
    frame = pd.DataFrame(good, columns=header, dtype="string") if good else pd.DataFrame(
        {c: pd.Series(dtype="string") for c in header})
    return RawInput(_strip_header(frame), np.asarray(numbers, dtype="int64"),
                    _malformed(bad_n, bad_lines, f"more fields than the {k} header columns"))


def _read_jsonl_slow(p: Path) -> RawInput:
    records: list[dict[str, object]] = []
    numbers: list[int] = []
    bad_n: list[int] = []
    bad_lines: list[str] = []
    i = 0
    with _open_text(p) as fh:
        for line in fh:
            if not line.strip():
                continue
            i += 1
            try:
                obj = json.loads(line)
            except ValueError:
                obj = None
            if isinstance(obj, dict):
                records.append(obj)
                numbers.append(i)
            else:
                bad_n.append(i)
                bad_lines.append(line.rstrip("\r\n"))
    frame = pd.DataFrame.from_records(records) if records else pd.DataFrame()
    frame = frame.astype(object).where(frame.notna(), None) if len(frame) else frame
    return RawInput(frame, np.asarray(numbers, dtype="int64"),
                    _malformed(bad_n, bad_lines, "not a JSON object"))


def check_input(path: str | Path, fmt: str | None = None) -> Format:
    """Check that ``path`` is an existing file of a known format; returns the format.

    Raises
    ------
    SchemaError
        Unknown format, or none given and none recognisable from the name.
    UnreadableInputError
        The path does not exist or is a folder.
    """
    p = Path(path)
    if fmt is not None and fmt not in FORMATS:
        raise SchemaError(f"Unknown format {fmt!r} for {p}; use --format with one of {', '.join(FORMATS)}.")
    if not p.exists():
        raise UnreadableInputError(f"Input file {p} does not exist; check the path.")
    if p.is_dir():
        raise UnreadableInputError(f"Input {p} is a folder; pass one file (csv, parquet or jsonl).")
    if not os.access(p, os.R_OK):
        raise UnreadableInputError(f"Input file {p} is not readable (permission denied); check its permissions.")
    return fmt or infer_format(p)  # type: ignore[return-value]


def read_input(path: str | Path, fmt: str | None = None) -> RawInput:
    """Read a file as raw values, keeping malformed lines aside as rejects.

    Parameters
    ----------
    path : str or Path
        CSV (``.gz`` allowed), Parquet or JSON-lines file.
    fmt : {"csv", "parquet", "jsonl"}, optional
        Default: from the file name.

    Raises
    ------
    UnreadableInputError
        The file does not exist, is empty or cannot be decoded at all.
    SchemaError
        The format is unknown.
    """
    p = Path(path)
    fmt = check_input(p, fmt)
    try:
        if fmt == "csv":
            sep = csv_separator(p)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    df = pd.read_csv(p, dtype="string", keep_default_na=False, na_values=[""], encoding="utf-8-sig",
                                     sep=sep)
            except pd.errors.EmptyDataError:
                raise UnreadableInputError(f"{p} is empty; a CSV file needs a header row naming its columns.") \
                    from None
            except pd.errors.ParserError:
                return _read_csv_slow(p, sep)
            return RawInput(_strip_header(df), np.arange(1, len(df) + 1, dtype="int64"), empty_rejects())
        if fmt == "parquet":
            df = pd.read_parquet(p)
            return RawInput(df, np.arange(1, len(df) + 1, dtype="int64"), empty_rejects())
        if p.stat().st_size == 0:
            raise UnreadableInputError(f"{p} is empty; a JSON-lines file needs one JSON object per line.")
        with _open_text(p) as fh:
            head = fh.read(4096).lstrip()
        if head.startswith("["):
            raise UnreadableInputError(f"{p} holds a JSON array, not JSON lines; write one object per line "
                                       f"(e.g. jq -c '.[]' {p.name} > {p.stem}.jsonl).")
        try:
            with warnings.catch_warnings():  # convert_dates is deprecated but still defaults to True
                warnings.simplefilter("ignore")
                df = pd.read_json(p, lines=True, dtype=False, convert_dates=False, keep_default_dates=False,
                                  encoding="utf-8-sig")
        except (ValueError, TypeError):  # TypeError: a line of valid JSON that is no object ([1, 2], 5, null)
            return _read_jsonl_slow(p)
        return RawInput(df, np.arange(1, len(df) + 1, dtype="int64"), empty_rejects())
    except UnreadableInputError:
        raise
    except (UnicodeDecodeError, ValueError, OSError, EOFError, ImportError) as exc:
        raise _unreadable(p, fmt, exc) from exc



def _unreadable(p: Path, fmt: str, exc: Exception) -> UnreadableInputError:
    """The error for a file that cannot be read at all, naming the file, the cause and the fix."""
    if isinstance(exc, UnicodeDecodeError):
        return UnreadableInputError(f"Could not read {p} as {fmt}: it is not UTF-8 text ({exc.reason} at byte "
                                    f"{exc.start}). Re-save it as UTF-8, e.g. 'iconv -f latin1 -t utf-8'.")
    msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return UnreadableInputError(f"Could not read {p} as {fmt}: {msg}. Check that the file is complete and "
                                f"pass the right --format ({', '.join(FORMATS)}).")


class RaggedInput(Exception):
    """Internal: the fast chunked reader met a malformed line; read the file line by line instead."""


def _strip_header(df: pd.DataFrame) -> pd.DataFrame:
    stripped = [str(c).strip() for c in df.columns]
    if len(set(stripped)) == len(stripped):  # ' user_id' -> 'user_id' (spaces after commas in headers)
        df.columns = stripped
    return df


def iter_input(path: str | Path, fmt: str | None = None, chunk_rows: int = 500_000) -> Iterator[RawInput]:
    r"""Read a file in chunks of at most ``chunk_rows`` data rows (row numbers continue across chunks).

    Raises :class:`RaggedInput` (possibly after some chunks were yielded) when a CSV or JSON line is
    malformed: the caller then falls back to :func:`read_input`, which reads line by line and keeps
    malformed lines as ``MALFORMED_ROW`` rejects.

    Examples
    --------
    >>> import tempfile, os
    >>> f = os.path.join(tempfile.mkdtemp(), "e.csv")
    >>> _ = open(f, "w").write("user_id,ts,event_type\nu1,2024-01-01,view\nu2,2024-01-02,cart\nu3,x,view\n")
    >>> [c.row_numbers.tolist() for c in iter_input(f, chunk_rows=2)]
    [[1, 2], [3]]
    """
    p = Path(path)
    fmt = check_input(p, fmt)
    offset = 0

    def chunk(df: pd.DataFrame) -> RawInput:
        nonlocal offset
        out = RawInput(df.reset_index(drop=True), np.arange(offset + 1, offset + len(df) + 1, dtype="int64"),
                       empty_rejects())
        offset += len(df)
        return out

    try:
        if fmt == "csv":
            sep = csv_separator(p)
            try:
                reader = pd.read_csv(p, dtype="string", keep_default_na=False, na_values=[""], encoding="utf-8-sig",
                                     sep=sep, chunksize=chunk_rows)
            except pd.errors.EmptyDataError:
                raise UnreadableInputError(f"{p} is empty; a CSV file needs a header row naming its columns.") \
                    from None
            with reader:
                while True:
                    try:
                        with warnings.catch_warnings():
                            warnings.simplefilter("ignore")
                            df = next(reader)
                    except StopIteration:
                        break
                    except pd.errors.ParserError:
                        raise RaggedInput(str(p)) from None
                    yield chunk(_strip_header(df))
            return
        if fmt == "parquet":
            import pyarrow.parquet as pq

            pf = pq.ParquetFile(p)
            if pf.metadata.num_rows == 0:
                yield chunk(pf.schema_arrow.empty_table().to_pandas())
                return
            for batch in pf.iter_batches(batch_size=chunk_rows):
                yield chunk(batch.to_pandas())
            return
        if p.stat().st_size == 0:
            raise UnreadableInputError(f"{p} is empty; a JSON-lines file needs one JSON object per line.")
        with _open_text(p) as fh:
            head = fh.read(4096).lstrip()
        if head.startswith("["):
            raise UnreadableInputError(f"{p} holds a JSON array, not JSON lines; write one object per line "
                                       f"(e.g. jq -c '.[]' {p.name} > {p.stem}.jsonl).")
        with warnings.catch_warnings():  # convert_dates is deprecated but still defaults to True
            warnings.simplefilter("ignore")
            jreader = pd.read_json(p, lines=True, dtype=False, convert_dates=False, keep_default_dates=False,
                                   encoding="utf-8-sig", chunksize=chunk_rows)
        with jreader:
            while True:
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        df = next(jreader)
                except StopIteration:
                    break
                except (ValueError, TypeError):  # TypeError: a line of valid JSON that is no object ([1, 2], 5, null)
                    raise RaggedInput(str(p)) from None
                yield chunk(df)
    except (UnreadableInputError, RaggedInput):
        raise
    except (UnicodeDecodeError, ValueError, OSError, EOFError, ImportError) as exc:
        raise _unreadable(p, fmt, exc) from exc


def read_raw(path: str | Path, fmt: str | None = None) -> pd.DataFrame:
    """Read a file as raw values (CSV and JSON lines as strings, so rejects keep the original text).

    Malformed lines are left out; use :func:`read_input` to get them as rejects.
    """
    return read_input(path, fmt).frame


def file_digest(path: str | Path) -> str:
    """SHA-1 of a file's bytes."""
    h = hashlib.sha1()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
