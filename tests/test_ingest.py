"""`buyerscore ingest`: planted bad rows (golden), formats, errors, idempotency, strict mode, export."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from buyerscore.cli import app
from buyerscore.events.io import ColumnMapping
from buyerscore.events.schema import REJECT_REASONS
from buyerscore.events.store import EventStore

GOLDEN = Path(__file__).parent / "golden" / "ingest"
PLANTED = GOLDEN / "planted.csv"
UPDATE = os.environ.get("BUYERSCORE_UPDATE_GOLDEN") == "1"
runner = CliRunner()


def run(*args: str) -> tuple[int, str, str]:
    res = runner.invoke(app, [str(a) for a in args])
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        raise res.exception
    return res.exit_code, res.stdout, res.stderr


def _compare_golden(name: str, got: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.write_text(got, encoding="utf-8")
    assert got == path.read_text(encoding="utf-8"), f"{name} differs; if intended, rerun with BUYERSCORE_UPDATE_GOLDEN=1"


def test_planted_rows_are_reported_exactly(tmp_path):
    db = tmp_path / "s.duckdb"
    code, stdout, _ = run("ingest", PLANTED, "--db", db, "--json")
    assert code == 0
    summary = json.loads(stdout)
    summary.pop("source")
    _compare_golden("planted_summary.json", json.dumps(summary, indent=2, sort_keys=True) + "\n")
    # known answers, independent of the golden file: 35 data lines, every reason code planted
    assert (summary["read"], summary["accepted"], summary["rejected"]) == (35, 11, 24)
    assert summary["read"] == summary["accepted"] + summary["rejected"]
    assert set(summary["by_reason"]) == set(REJECT_REASONS)
    assert sum(summary["by_reason"].values()) == summary["rejected"]

    con = duckdb.connect(str(db), read_only=True)
    rej = con.execute("SELECT row_number, reason, detail, raw FROM rejects ORDER BY row_number").df()
    ev = con.execute("SELECT * EXCLUDE (batch_id) FROM events ORDER BY ts, event_id").df()
    con.close()
    lines = ["row_number,reason,detail"] + [f"{r.row_number},{r.reason},{json.dumps(r.detail)}" for r in rej.itertuples()]
    _compare_golden("planted_rejects.csv", "\n".join(lines) + "\n")
    _compare_golden("planted_events.csv", ev.to_csv(index=False, lineterminator="\n"))

    # each reject keeps the original row: same values as the line in the file, original column names
    with PLANTED.open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        lines_by_number = {i: rec for i, rec in enumerate(reader, start=1)}
    for r in rej.itertuples():
        raw = json.loads(r.raw)
        rec = lines_by_number[r.row_number]
        if r.reason == "MALFORMED_ROW":
            assert raw == {"_line": ",".join(rec)}
        elif r.reason == "PERSONAL_ID":  # the e-mail address is not kept
            assert raw["user_id"] == "<e-mail removed>" and "example.com" not in r.raw + r.detail
            assert [v or "" for k, v in raw.items() if k != "user_id"] == rec[:1] + rec[2:]
        else:
            assert list(raw) == header
            assert [v if v is not None else "" for v in raw.values()] == rec


def test_strict_stores_nothing_and_exits_1(tmp_path):
    db = tmp_path / "s.duckdb"
    code, stdout, stderr = run("ingest", PLANTED, "--db", db, "--strict", "--json")
    assert code == 1
    summary = json.loads(stdout)
    assert summary["stored"] is False and summary["rejected"] == 24
    assert "--strict" in stderr and "Traceback" not in stderr
    with EventStore(db) as s:
        assert s.counts() == {"events": 0, "rejects": 0, "users": 0}
        assert s.con.execute("SELECT count(*) FROM ingest_batches").fetchone() == (0,)


def test_strict_on_a_file_ingested_before_with_rejects_still_fails(tmp_path):
    """A re-run with --strict of a file first ingested leniently must not report success."""
    db = tmp_path / "s.duckdb"
    code, _, _ = run("ingest", PLANTED, "--db", db, "--json")
    assert code == 0
    code, stdout, stderr = run("ingest", PLANTED, "--db", db, "--strict", "--json")
    assert code == 1 and json.loads(stdout)["already_ingested"] is True
    assert "ingested before without --strict" in " ".join(stderr.split())
    code, _, _ = run("ingest", PLANTED, "--db", db, "--json")  # lenient re-run: nothing to do, success
    assert code == 0


def test_strict_passes_clean_file(tmp_path):
    f = tmp_path / "ok.csv"
    f.write_text("user_id,ts,event_type\nu1,2024-01-01,view\n")
    code, stdout, _ = run("ingest", f, "--db", tmp_path / "s.duckdb", "--strict", "--json")
    assert code == 0 and json.loads(stdout)["accepted"] == 1


@pytest.fixture()
def events_frame() -> pd.DataFrame:
    return pd.DataFrame({
        "user_id": ["u1", "u1", "u2", "u3", "u4"],
        "ts": ["2024-01-01T10:00:00", "2024-01-02T11:30:00", "2024-01-03T00:00:00", "2024-01-04T08:00:00", "oops"],
        "event_type": ["view", "purchase", "refund", "review", "view"],
        "item_id": ["i1", "i1", "i1", "i2", "i3"],
        "quantity": [None, 2.0, 1.0, None, None],
        "amount": [None, 20.5, 10.25, None, None],
        "currency": [None, "USD", "USD", None, None],
        "rating": [None, None, None, 5, None],
        "text": [None, None, None, "très bien / 很好", None],
    })


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
def test_every_format_gives_the_same_events(tmp_path, events_frame, fmt):
    path = tmp_path / f"e.{fmt}"
    if fmt == "csv":
        events_frame.to_csv(path, index=False)
    elif fmt == "parquet":
        df = events_frame.copy()
        df["rating"] = df["rating"].astype("Int64")
        df.to_parquet(path, index=False)
    else:
        events_frame.to_json(path, orient="records", lines=True, force_ascii=False)
    code, stdout, _ = run("ingest", path, "--db", tmp_path / "s.duckdb", "--format", fmt, "--json")
    assert code == 0
    s = json.loads(stdout)
    assert (s["read"], s["accepted"], s["rejected"], s["by_reason"]) == (5, 4, 1, {"BAD_TIMESTAMP": 1})
    with EventStore(tmp_path / "s.duckdb") as store:
        got = store.con.execute("SELECT event_id, user_id, ts, event_type, amount, rating, text FROM events "
                                "ORDER BY ts").df()
    # derived ids depend only on the canonical values, so all formats agree on them
    expected_csv = tmp_path / "ref.csv"
    events_frame.to_csv(expected_csv, index=False)
    with EventStore(":memory:") as ref:
        ref.ingest_file(expected_csv)
        want = ref.con.execute("SELECT event_id, user_id, ts, event_type, amount, rating, text FROM events "
                               "ORDER BY ts").df()
    pd.testing.assert_frame_equal(got, want)
    assert got["text"].iloc[-1] == "très bien / 很好"


def test_gzipped_csv_and_format_inferred(tmp_path, events_frame):
    path = tmp_path / "e.csv.gz"
    events_frame.to_csv(path, index=False, compression="gzip")
    code, stdout, _ = run("ingest", path, "--db", tmp_path / "s.duckdb", "--json")
    assert code == 0 and json.loads(stdout)["accepted"] == 4


def _ingest_jsonl(tmp_path, text: str, query: str):  # type: ignore[no-untyped-def]
    """Ingest JSON lines through the CLI; the exit code, the summary and the rows of ``query`` on the store."""
    path = tmp_path / "e.jsonl"
    path.write_text(text)
    code, stdout, _ = run("ingest", path, "--db", tmp_path / "s.duckdb", "--json")
    with EventStore(tmp_path / "s.duckdb") as store:
        rows = store.con.execute(query).fetchall()
    return code, json.loads(stdout), rows


def test_jsonl_bad_line_is_a_reject(tmp_path):
    code, s, rows = _ingest_jsonl(tmp_path, '{"user_id": "u1", "ts": 1704096000, "event_type": "view"}\n'
                                            '{"user_id": "u2", "ts": 1704096000, "event_type": \n'
                                            '[1, 2]\n'
                                            '{"user_id": "u3", "ts": "2024-01-01", "event_type": "cart"}\n',
                                  "SELECT row_number FROM rejects ORDER BY 1")
    assert code == 0 and (s["read"], s["accepted"], s["by_reason"]) == (4, 2, {"MALFORMED_ROW": 2})
    assert rows == [(2,), (3,)]


@pytest.mark.parametrize("line", ["[1, 2]", "5", "null", "true"])
def test_jsonl_line_of_valid_json_that_is_no_object_is_a_reject(tmp_path, line):
    """Every line parses as JSON, but one is no object: a MALFORMED_ROW reject, not a crash (was a TypeError)."""
    code, s, rows = _ingest_jsonl(tmp_path, '{"user_id": "u1", "ts": 1704096000, "event_type": "view"}\n'
                                            f"{line}\n"
                                            '{"user_id": "u3", "ts": "2024-01-01", "event_type": "cart"}\n',
                                  "SELECT row_number, detail, raw FROM rejects")
    assert code == 0 and (s["read"], s["accepted"], s["by_reason"]) == (3, 2, {"MALFORMED_ROW": 1})
    assert rows == [(2, "not a JSON object", json.dumps({"_line": line}))]


def test_jsonl_float_ids_next_to_text_ids_lose_their_point(tmp_path):
    """17850.0 becomes '17850' also when the same column holds text ids, so the derived event id is the same
    as from a file of numbers only (was '17850.0' there)."""
    mixed, floats = tmp_path / "mixed.jsonl", tmp_path / "floats.jsonl"
    event = '{"user_id": 17850.0, "ts": 1704096000, "event_type": "view", "order_id": 5.0}\n'
    mixed.write_text(event + '{"user_id": "a", "ts": 1704096000, "event_type": "view", "order_id": "o7"}\n')
    floats.write_text(event)
    ids = {}
    for path in (mixed, floats):
        with EventStore(tmp_path / f"{path.stem}.duckdb") as store:
            store.ingest_file(path)
            ids[path.stem] = store.con.execute("SELECT event_id, user_id, order_id FROM events "
                                               "WHERE user_id <> 'a'").fetchall()
    assert ids["mixed"] == ids["floats"] and ids["mixed"][0][1:] == ("17850", "5")


def test_csv_float_text_ids_are_the_ids_of_the_numbers(tmp_path):
    """A CSV whose id column pandas wrote as floats ('17850.0', NaNs in the column) gave other users than the
    same events from Parquet (17850.0 -> '17850'); text ids with other dots are kept."""
    frame = pd.DataFrame({"user_id": [17850.0, np.nan, 12.0], "ts": ["2024-01-01"] * 3,
                          "event_type": ["view"] * 3, "item_id": ["v1.0", "7.00", "1.5"]})
    frame.to_csv(tmp_path / "e.csv", index=False)
    frame.to_parquet(tmp_path / "e.parquet")
    got = {}
    for path in (tmp_path / "e.csv", tmp_path / "e.parquet"):
        with EventStore(tmp_path / f"{path.suffix[1:]}.duckdb") as store:
            store.ingest_file(path)
            got[path.suffix] = store.con.execute("SELECT event_id, user_id, item_id FROM events ORDER BY 2").fetchall()
    assert got[".csv"] == got[".parquet"]
    assert [r[1:] for r in got[".csv"]] == [("12", "1.5"), ("17850", "v1.0")]


def test_failed_ingest_leaves_no_new_empty_store(tmp_path):
    """A mistyped path, an unreadable file or a --strict failure into a new --db left an empty store file."""
    good = tmp_path / "e.csv"
    good.write_text("user_id,ts,event_type\nu1,2024-01-01,view\nu2,x,view\n")
    for args, code in ((["ingest", tmp_path / "nofile.csv"], 2), (["ingest", good, "--strict"], 1)):
        db = tmp_path / "new.duckdb"
        assert run(*args, "--db", db)[0] == code
        assert not db.exists() and not (tmp_path / "new.duckdb.wal").exists()
    kept = tmp_path / "kept.duckdb"  # an existing store is never removed
    assert run("ingest", good, "--db", kept)[0] == 0
    assert run("ingest", tmp_path / "nofile.csv", "--db", kept)[0] == 2 and kept.exists()
    with EventStore(kept) as store:
        assert store.counts()["events"] == 1


def _error(args: list[object]) -> str:
    code, _stdout, stderr = run(*map(str, args))
    assert code == 2, stderr
    assert "Traceback" not in stderr and stderr.startswith("error:")
    assert stderr.count("\n") == 1, stderr  # one line
    return stderr.strip()


@pytest.mark.parametrize(("content", "args", "needles"), [
    ("user_id,when,event_type\nu1,2024-01-01,view\n", [], ["e.csv", "['ts']", "--mapping"]),
    ("user_id,ts,event_type\n", ["--format", "xml"], ["xml", "e.csv", "csv, parquet, jsonl"]),
    (b"\x00\x01 not parquet", ["--format", "parquet"], ["e.csv", "parquet", "--format"]),
    ("", [], ["e.csv", "empty", "header"]),
    (b"user_id,ts,event_type\nJ\xf6rg,2024-01-01,view\n", [], ["e.csv", "UTF-8", "iconv"]),
])
def test_unusable_input_names_file_column_and_fix(tmp_path, content, args, needles):
    f = tmp_path / "e.csv"
    f.write_bytes(content if isinstance(content, bytes) else content.encode())
    msg = _error(["ingest", f, "--db", tmp_path / "s.duckdb", *args])
    for n in needles:
        assert n in msg, (n, msg)


def test_missing_file_and_unknown_extension(tmp_path):
    assert "does not exist" in _error(["ingest", tmp_path / "nope.csv", "--db", tmp_path / "s.duckdb"])
    f = tmp_path / "events.dat"
    f.write_text("x")
    assert "--format" in _error(["ingest", f, "--db", tmp_path / "s.duckdb"])


def test_mapping_file_errors_name_the_problem(tmp_path):
    f = tmp_path / "e.csv"
    f.write_text("uid,when,what\nu1,2024-01-01,pv\n")
    m = tmp_path / "m.yaml"
    m.write_text("columns: {user_id: uid, ts: time, event_type: what}\n")
    msg = _error(["ingest", f, "--db", tmp_path / "s.duckdb", "--mapping", m])
    assert "['time']" in msg and "columns:" in msg
    m.write_text("columns: {user_id: uid, ts: when, event_type: what}\ntimezone: Mars/Olympus\n")
    assert "Mars/Olympus" in _error(["ingest", f, "--db", tmp_path / "s.duckdb", "--mapping", m])


def test_mapping_with_recode_constants_format_and_timezone(tmp_path):
    f = tmp_path / "shop.csv"
    f.write_text("CustomerID,InvoiceDate,action,price\n"
                 "c1,01/07/2024 13:00,pv,\n"       # 1 July 2024, British summer time (UTC+1)
                 "c1,15/01/2024 13:00,buy,9.99\n"  # 15 January: UTC+0
                 "c2,15/01/2024 13:00,teleport,1\n")
    m = tmp_path / "m.yaml"
    m.write_text("columns: {user_id: CustomerID, ts: InvoiceDate, event_type: action, amount: price}\n"
                 "constants: {platform: myshop, currency: gbp}\n"
                 "values: {event_type: {pv: view, buy: purchase}}\n"
                 "timestamp_format: '%d/%m/%Y %H:%M'\ntimezone: Europe/London\n")
    code, stdout, _ = run("ingest", f, "--db", tmp_path / "s.duckdb", "--mapping", m, "--json")
    assert code == 0 and json.loads(stdout)["by_reason"] == {"UNKNOWN_EVENT_TYPE": 1}
    with EventStore(tmp_path / "s.duckdb") as s:
        ev = s.con.execute("SELECT user_id, ts, event_type, platform, currency, amount FROM events ORDER BY ts").df()
        raw = json.loads(s.con.execute("SELECT raw FROM rejects").fetchone()[0])
    assert ev["ts"].tolist() == [pd.Timestamp("2024-01-15 13:00"), pd.Timestamp("2024-07-01 12:00")]
    assert ev["event_type"].tolist() == ["purchase", "view"]
    assert set(ev["platform"]) == {"myshop"} and set(ev["currency"]) == {"GBP"}
    assert raw == {"CustomerID": "c2", "InvoiceDate": "15/01/2024 13:00", "action": "teleport", "price": "1"}


def test_reingest_same_file_is_a_no_op(tmp_path):
    db = tmp_path / "s.duckdb"
    first = json.loads(run("ingest", PLANTED, "--db", db, "--json")[1])
    second = json.loads(run("ingest", PLANTED, "--db", db, "--json")[1])
    assert not first["already_ingested"] and second["already_ingested"]
    assert second["inserted"] == 0 and second["read"] == first["read"]
    with EventStore(db) as s:
        assert s.counts()["events"] == first["accepted"] and s.counts()["rejects"] == first["rejected"]
        assert s.con.execute("SELECT count(*) FROM ingest_batches").fetchone() == (1,)


@pytest.mark.parametrize("with_ids", [True, False])
def test_overlapping_files_insert_each_event_once(tmp_path, with_ids):
    rows = [f"e{i},u{i % 7},2024-01-{1 + i % 28:02d}T{i % 24:02d}:00:00,purchase,{i}.5" for i in range(150)]
    header = "event_id,user_id,ts,event_type,amount"
    if not with_ids:  # derived ids: same content -> same id
        rows = [r.split(",", 1)[1] for r in rows]
        header = header.split(",", 1)[1]
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text("\n".join([header, *rows[:100]]) + "\n")
    b.write_text("\n".join([header, *rows[50:]]) + "\n")
    db = tmp_path / "s.duckdb"
    sa = json.loads(run("ingest", a, "--db", db, "--json")[1])
    sb = json.loads(run("ingest", b, "--db", db, "--json")[1])
    assert (sa["inserted"], sa["already_present"]) == (100, 0)
    assert (sb["read"], sb["accepted"], sb["inserted"], sb["already_present"]) == (100, 100, 50, 50)
    with EventStore(db) as s:
        assert s.con.execute("SELECT count(*), count(DISTINCT event_id) FROM events").fetchone() == (150, 150)
        assert s.con.execute("SELECT sum(amount) FROM events").fetchone()[0] == pytest.approx(sum(i + 0.5 for i in range(150)))


def test_export_writes_parquet_round_trip(tmp_path):
    db = tmp_path / "s.duckdb"
    run("ingest", PLANTED, "--db", db)
    code, stdout, _ = run("export", "--db", db, "--out", tmp_path / "ex", "--json")
    assert code == 0
    info = json.loads(stdout)
    assert {k: v["rows"] for k, v in info.items()} == {"events": 11, "rejects": 24, "users": 0}
    ev = pd.read_parquet(info["events"]["path"])
    with EventStore(db) as s:
        want = s.con.execute("SELECT * FROM events").df()
    pd.testing.assert_frame_equal(ev.sort_values("event_id").reset_index(drop=True),
                                  want.sort_values("event_id").reset_index(drop=True), check_dtype=False)
    assert "unknown" in _error(["export", "--db", db, "--out", tmp_path / "ex", "--tables", "unknown"])


def test_locked_store_is_a_friendly_error(tmp_path):
    import subprocess
    import sys
    import time

    db = tmp_path / "s.duckdb"
    EventStore(db).close()
    script = "import duckdb,sys,time; c=duckdb.connect(sys.argv[1]); print('ok', flush=True); time.sleep(30)"
    holder = subprocess.Popen([sys.executable, "-c", script, str(db)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ok"
        f = tmp_path / "e.csv"
        f.write_text("user_id,ts,event_type\nu1,2024-01-01,view\n")
        t = time.time()
        msg = _error(["ingest", f, "--db", db])
        assert "another process" in msg and str(db) in msg and time.time() - t < 20
    finally:
        holder.kill()
        holder.wait()


def test_schema_markdown_is_committed_docs():
    code, stdout, _ = run("schema", "--markdown")
    assert code == 0
    committed = (Path(__file__).parents[1] / "docs" / "data-model.md").read_text(encoding="utf-8")
    assert stdout == committed, "docs/data-model.md is stale: run 'buyerscore schema --markdown > docs/data-model.md'"


def test_schema_json_lists_every_field_and_reason():
    code, stdout, _ = run("schema", "--json")
    assert code == 0
    d = json.loads(stdout)
    assert [f["name"] for f in d["events"]][:4] == ["event_id", "user_id", "ts", "event_type"]
    assert d["reject_reasons"] == REJECT_REASONS


def test_same_event_id_with_other_values_is_counted_as_conflict(tmp_path):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text("event_id,user_id,ts,event_type,amount\ne1,u1,2024-01-01,purchase,5\ne2,u1,2024-01-02,view,\n")
    b.write_text("event_id,user_id,ts,event_type,amount\ne1,u1,2024-01-01,purchase,7\ne2,u1,2024-01-02,view,\n"
                 "e3,u2,2024-01-03,view,\n")
    db = tmp_path / "s.duckdb"
    run("ingest", a, "--db", db)
    s = json.loads(run("ingest", b, "--db", db, "--json")[1])
    assert (s["inserted"], s["already_present"], s["conflicts"]) == (1, 2, 1)
    with EventStore(db) as store:
        assert store.con.execute("SELECT amount FROM events WHERE event_id = 'e1'").fetchone() == (5.0,)


def test_missing_columns_suggest_a_mapping(tmp_path):
    f = tmp_path / "e.csv"
    f.write_text("CustomerID,InvoiceDate,Event Type\nu1,2024-01-01,view\n")
    msg = _error(["ingest", f, "--db", tmp_path / "s.duckdb"])
    assert "perhaps 'columns: {user_id: CustomerID, ts: InvoiceDate, event_type: Event Type}'" in msg


def test_json_array_is_not_json_lines(tmp_path):
    f = tmp_path / "e.json"
    f.write_text('[\n {"user_id": "u1", "ts": "2024-01-01", "event_type": "view"}\n]\n')
    assert "jq -c" in _error(["ingest", f, "--db", tmp_path / "s.duckdb"])


def test_csv_header_spaces_are_ignored(tmp_path):
    f = tmp_path / "e.csv"
    f.write_text("user_id, ts, event_type\nu1, 2024-01-01, view\n")
    code, stdout, _ = run("ingest", f, "--db", tmp_path / "s.duckdb", "--json")
    assert code == 0 and json.loads(stdout)["accepted"] == 1


def test_console_script_exit_codes(tmp_path):
    """The installed `buyerscore` command: summary JSON on stdout, --strict -> 1, unusable input -> 2, one line."""
    import shutil
    import subprocess
    import sys

    exe = shutil.which("buyerscore", path=str(Path(sys.executable).parent)) or shutil.which("buyerscore")
    if exe is None:
        pytest.skip("the buyerscore console script is not installed")
    db = str(tmp_path / "s.duckdb")
    p = subprocess.run([exe, "ingest", str(PLANTED), "--db", db, "--json", "--strict"], capture_output=True, text=True,
                       check=False)
    assert p.returncode == 1 and json.loads(p.stdout)["rejected"] == 24 and "Traceback" not in p.stderr
    p = subprocess.run([exe, "ingest", str(tmp_path / "missing.csv"), "--db", db], capture_output=True, text=True,
                       check=False)
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.strip().splitlines() == [f"error: Input file {tmp_path / 'missing.csv'} does not exist; check the path."]


def _snapshot(db: Path) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    with EventStore(db) as s:
        ev = s.con.execute("SELECT * FROM events ORDER BY event_id").df()
        rej = s.con.execute("SELECT row_number, reason, detail, raw FROM rejects ORDER BY row_number").df()
        batches = s.con.execute("SELECT count(*) FROM ingest_batches").fetchone()[0]
    return ev, rej, batches


@pytest.mark.parametrize(("chunk_rows", "ragged"), [(1, False), (4, False), (9, False), (4, True), (9, True)])
def test_chunked_ingest_equals_one_piece(tmp_path, chunk_rows, ragged):
    """Chunks share one transaction and one duplicate check; a malformed line in a later chunk restarts cleanly."""
    lines = PLANTED.read_text().splitlines()
    if not ragged:
        lines = [ln for ln in lines if not ln.startswith("e30,")]
    lines += ["e32,u13,2024-03-11,view,shop,i1,c1,,,,,,,", lines[5]]  # repeats of an id and of a derived-id row
    src = tmp_path / "p.csv"
    src.write_text("\n".join(lines) + "\n")
    want_db, got_db = tmp_path / "want.duckdb", tmp_path / "got.duckdb"
    with EventStore(want_db) as s:
        want = s.ingest_file(src, chunk_rows=10_000)
    with EventStore(got_db) as s:
        got = s.ingest_file(src, chunk_rows=chunk_rows)
    assert got.to_dict() == want.to_dict()
    assert want.by_reason["DUPLICATE_EVENT"] == 4
    w, g = _snapshot(want_db), _snapshot(got_db)
    pd.testing.assert_frame_equal(g[0], w[0])
    pd.testing.assert_frame_equal(g[1], w[1])
    assert g[2] == w[2] == 1


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_chunked_typed_formats(tmp_path, events_frame, fmt):
    path = tmp_path / f"e.{fmt}"
    frame = pd.concat([events_frame, events_frame.iloc[:2]], ignore_index=True)  # two exact repeats
    if fmt == "parquet":
        frame.assign(rating=frame["rating"].astype("Int64")).to_parquet(path, index=False)
    else:
        frame.to_json(path, orient="records", lines=True, force_ascii=False)
    results = []
    for k in (2, 100):
        with EventStore(tmp_path / f"s{k}.duckdb") as s:
            results.append(s.ingest_file(path, chunk_rows=k).to_dict())
    assert results[0] == results[1]
    assert results[0]["by_reason"] == {"BAD_TIMESTAMP": 1, "DUPLICATE_EVENT": 2}


def test_strict_with_chunks_stores_nothing(tmp_path):
    from buyerscore.exceptions import StrictModeError

    src = tmp_path / "p.csv"
    src.write_text("\n".join(ln for ln in PLANTED.read_text().splitlines() if not ln.startswith("e30,")) + "\n")
    with EventStore(tmp_path / "s.duckdb") as s:
        with pytest.raises(StrictModeError) as err:
            s.ingest_file(src, strict=True, chunk_rows=3)
        assert err.value.summary.rejected == 23 and s.counts() == {"events": 0, "rejects": 0, "users": 0}
        assert s.con.execute("SELECT count(*) FROM ingest_batches").fetchone() == (0,)


def test_event_id_index_and_small_batch_duplicates(tmp_path):
    """Stores opened for writing carry the event_id index (also stores made before it existed); a
    one-event batch against a stored id is counted as already present / conflict, never inserted twice."""
    from buyerscore.events.store import EventStore

    db = tmp_path / "s.duckdb"
    with EventStore(db) as st:
        st.ingest_frame(pd.DataFrame({"user_id": ["u1", "u2"], "ts": ["2024-01-01", "2024-01-02"],
                                      "event_type": ["purchase", "view"], "amount": [5.0, None],
                                      "event_id": ["e1", "e2"]}), source="a")
        st.con.execute("DROP INDEX events_event_id")  # as a store written before the index existed
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("SELECT count(*) FROM duckdb_indexes()").fetchone()[0] == 0
    con.close()
    with EventStore(db) as st:
        assert st.con.execute("SELECT index_name FROM duckdb_indexes()").fetchall() == [("events_event_id",)]
        same = st.ingest_frame(pd.DataFrame({"user_id": ["u1"], "ts": ["2024-01-01"], "event_type": ["purchase"],
                                             "amount": [5.0], "event_id": ["e1"]}), source="b")
        other = st.ingest_frame(pd.DataFrame({"user_id": ["u1"], "ts": ["2024-01-01"], "event_type": ["purchase"],
                                              "amount": [9.0], "event_id": ["e1"]}), source="c")
        new = st.ingest_frame(pd.DataFrame({"user_id": ["u3"], "ts": ["2024-01-03"], "event_type": ["view"],
                                            "event_id": ["e3"]}), source="d")
        assert (same.inserted, same.already_present, same.conflicts) == (0, 1, 0)
        assert (other.inserted, other.already_present, other.conflicts) == (0, 1, 1)
        assert (new.inserted, new.already_present) == (1, 0)
        assert st.con.execute("SELECT count(*), count(DISTINCT event_id) FROM events").fetchone() == (3, 3)
        assert st.con.execute("SELECT amount FROM events WHERE event_id = 'e1'").fetchone() == (5.0,)


def test_email_user_ids_are_rejected_without_storing_the_address(tmp_path):
    """An e-mail address as user_id is personal data: the row is a PERSONAL_ID reject, and the address is
    stored nowhere (not in detail, not in raw, not in a malformed line's raw either)."""
    f = tmp_path / "e.csv"
    f.write_text("user_id,ts,event_type,note\nann.lee@example.com,2024-01-01,view,x\nu2,2024-01-01,view,y\n"
                 "bob@example.org,2024-01-01,view,z,extra\n")
    with EventStore(tmp_path / "s.duckdb") as store:
        s = store.ingest_file(f)
        assert s.by_reason == {"PERSONAL_ID": 1, "MALFORMED_ROW": 1} and s.accepted == 1
        rows = store.con.execute("SELECT reason, detail, raw FROM rejects ORDER BY row_number").fetchall()
    text = repr(rows)
    assert "example.com" not in text and "example.org" not in text and "<e-mail removed>" in text
    assert "pseudonymize: [user_id]" in rows[0][1]


def test_mapping_pseudonymize_replaces_ids_with_keyed_hashes(tmp_path, monkeypatch):
    """`pseudonymize: [user_id]` turns e-mail-keyed logs into pseudonymous ids: one address (any spacing, any
    format) is one user, a rejected row's raw holds the pseudonym, and another key gives other ids."""
    f = tmp_path / "e.csv"
    f.write_text("Email,When,What\nann@example.com,2024-01-01,view\n ann@example.com ,2024-01-02,view\n"
                 "bob@example.com,2024-01-01,view\nbob@example.com,not a date,view\n")
    m = tmp_path / "m.yaml"
    m.write_text("columns: {user_id: Email, ts: When, event_type: What}\npseudonymize: [user_id]\n")
    monkeypatch.delenv("BUYERSCORE_ID_SALT", raising=False)
    code, out, err = run("ingest", f, "--mapping", m, "--db", tmp_path / "none.duckdb")
    assert code == 2 and "BUYERSCORE_ID_SALT" in " ".join((out + err).split()) and not (tmp_path / "none.duckdb").exists()
    users = {}
    for key in ("k" * 16, "another secret key"):
        monkeypatch.setenv("BUYERSCORE_ID_SALT", key)
        with EventStore(tmp_path / f"{len(key)}.duckdb") as store:
            s = store.ingest_file(f, mapping=ColumnMapping.from_yaml(m))
            assert (s.accepted, s.by_reason) == (3, {"BAD_TIMESTAMP": 1})
            ids = [r[0] for r in store.con.execute("SELECT user_id FROM events ORDER BY ts, user_id").fetchall()]
            raw = store.con.execute("SELECT raw FROM rejects").fetchone()[0]
        assert len(set(ids)) == 2 and all(len(i) == 24 and "@" not in i for i in ids)
        assert "example.com" not in raw and json.loads(raw)["Email"] in ids
        users[key] = set(ids)
    assert users["k" * 16].isdisjoint(users["another secret key"])
