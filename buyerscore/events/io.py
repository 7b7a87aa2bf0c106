"""Reading event files (CSV, Parquet, JSON lines) and applying a column mapping.

A mapping file (YAML) renames the user's columns to canonical ones, sets constants and
recodes values::

    columns:            # canonical name: column in your file
      user_id: CustomerID
      ts: InvoiceDate
      event_type: action
    constants:          # canonical columns with one value for the whole file
      platform: myshop
      currency: GBP
    values:             # recode values of a canonical column
      event_type: {pv: view, buy: purchase, fav: favorite}

A flat mapping (``user_id: CustomerID`` at top level) is read as ``columns``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pandas as pd
import yaml

from buyerscore.events.schema import EVENT_COLUMNS
from buyerscore.exceptions import SchemaError, UnreadableInputError

Format = Literal["csv", "parquet", "jsonl"]
FORMATS: tuple[str, ...] = ("csv", "parquet", "jsonl")


@dataclass(frozen=True)
class ColumnMapping:
    """Renames, constants and value recodes applied to a raw frame before validation."""

    columns: dict[str, str] = field(default_factory=dict)
    constants: dict[str, str] = field(default_factory=dict)
    values: dict[str, dict[str, str]] = field(default_factory=dict)

    @classmethod
    def from_yaml(cls, path: str | Path) -> ColumnMapping:
        p = Path(path)
        try:
            data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        except OSError as exc:
            raise UnreadableInputError(f"Mapping file {p} cannot be read: {exc}.") from exc
        except yaml.YAMLError as exc:
            raise SchemaError(f"Mapping file {p} is not valid YAML: {exc}.") from exc
        if not isinstance(data, dict):
            raise SchemaError(f"Mapping file {p} must hold a YAML mapping, e.g. 'columns: {{user_id: CustomerID}}'.")
        if not ({"columns", "constants", "values"} & data.keys()):
            data = {"columns": data}
        unknown = set(data) - {"columns", "constants", "values"}
        if unknown:
            raise SchemaError(f"Mapping file {p}: unknown section(s) {sorted(unknown)}; use columns, constants, values.")
        m = cls(
            columns={str(k): str(v) for k, v in (data.get("columns") or {}).items()},
            constants={str(k): str(v) for k, v in (data.get("constants") or {}).items()},
            values={str(k): {str(a): str(b) for a, b in v.items()} for k, v in (data.get("values") or {}).items()},
        )
        bad = [k for k in [*m.columns, *m.constants, *m.values] if k not in EVENT_COLUMNS]
        if bad:
            raise SchemaError(
                f"Mapping file {p}: {bad} are not canonical event fields; allowed: {list(EVENT_COLUMNS)}."
            )
        return m

    def apply(self, df: pd.DataFrame, source: str = "<frame>") -> pd.DataFrame:
        missing = [src for src in self.columns.values() if src not in df.columns]
        if missing:
            raise SchemaError(
                f"{source}: mapped column(s) {missing} not found in the file; columns present: {list(df.columns)[:20]}. "
                "Fix the names under 'columns:' in the mapping file."
            )
        out = df.rename(columns={src: dst for dst, src in self.columns.items()})
        for k, v in self.constants.items():
            out[k] = v
        for k, recode in self.values.items():
            if k in out.columns:
                out[k] = out[k].map(lambda x, r=recode: r.get(str(x), x) if pd.notna(x) else x)
        return out

    def digest(self) -> str:
        return hashlib.sha1(repr((sorted(self.columns.items()), sorted(self.constants.items()),
                                  sorted((k, sorted(v.items())) for k, v in self.values.items()))).encode()).hexdigest()


def infer_format(path: str | Path) -> Format:
    name = str(path).lower().removesuffix(".gz")
    for ext, fmt in ((".csv", "csv"), (".parquet", "parquet"), (".jsonl", "jsonl"), (".ndjson", "jsonl")):
        if name.endswith(ext):
            return fmt  # type: ignore[return-value]
    raise SchemaError(f"Cannot tell the format of {path} from its name; pass --format csv|parquet|jsonl.")


def read_raw(path: str | Path, fmt: str | None = None) -> pd.DataFrame:
    """Read a file as raw values (CSV and JSON lines as strings, so rejects keep the original text)."""
    p = Path(path)
    if not p.exists():
        raise UnreadableInputError(f"Input file {p} does not exist; check the path.")
    fmt = fmt or infer_format(p)
    if fmt not in FORMATS:
        raise SchemaError(f"Unknown format {fmt!r} for {p}; use one of {list(FORMATS)}.")
    try:
        if fmt == "csv":
            return pd.read_csv(p, dtype=str, keep_default_na=False, na_values=[""], encoding="utf-8-sig")
        if fmt == "parquet":
            return pd.read_parquet(p)
        return pd.read_json(p, lines=True, dtype=False, convert_dates=False)
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise UnreadableInputError(f"Could not read {p} as {fmt}: {exc}. Check --format and the file's encoding (UTF-8).") from exc


def file_digest(path: str | Path) -> str:
    h = hashlib.sha1()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
