"""The scoring API as a real uvicorn process on an ephemeral port, on a real CDNOW store with stand-in models."""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from buyerscore.datasets import load_dataset
from buyerscore.events.store import EventStore
from buyerscore.registry import ModelEntry, ModelRegistry
from buyerscore.serving._testing import standin_bundle
from buyerscore.serving.api.settings import hash_key

KEY = "test-key-0123456789"
AS_OF = "1997-09-30"


class Server:
    def __init__(self, registry: Path, db: Path, tmp: Path, *extra: str, env: dict[str, str] | None = None) -> None:
        self.port_file = tmp / f"port-{time.monotonic_ns()}"
        self.log = (tmp / f"server-{time.monotonic_ns()}.log").open("w+b")
        cmd = [sys.executable, "-c", "from buyerscore.cli import main; main()", "serve", "--registry", str(registry),
               "--db", str(db), "--port", "0", "--port-file", str(self.port_file), "--log-level", "info", *extra]
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT,
                                     env={**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + 60
        while not self.port_file.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("server did not start:\n" + self.output())
            time.sleep(0.05)
        self.url = f"http://127.0.0.1:{self.port_file.read_text()}"
        self.client = httpx.Client(base_url=self.url, headers={"X-API-Key": KEY}, timeout=30)
        while True:
            try:
                if self.client.get("/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("server not healthy:\n" + self.output())
            time.sleep(0.05)

    def output(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        self.client.close()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@pytest.fixture(scope="module")
def served(data_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("serve")
    db, registry = tmp / "store.duckdb", tmp / "registry"
    with EventStore(db) as store:
        load_dataset("cdnow_sample", store, data_dir)
        standin_bundle(store.con, registry, as_of=AS_OF)
    keys = tmp / "keys.txt"
    keys.write_text(f"# test keys\n{hash_key(KEY)}  # ci\n")
    srv = Server(registry, db, tmp, "--keys-file", str(keys), "--reload-interval", "0.1", "--max-body-bytes", "200000")
    yield srv, registry, db
    srv.stop()


def test_key_required_and_ops_endpoints_open(served) -> None:
    srv, _, _ = served
    anon = httpx.get(srv.url + "/v1/users/00004/score")
    assert anon.status_code == 401
    bad = httpx.get(srv.url + "/v1/users/00004/score", headers={"X-API-Key": "wrong"})
    assert bad.status_code == 401
    assert httpx.get(srv.url + "/healthz").json()["status"] == "ok"
    assert httpx.post(srv.url + "/v1/score", json={"features": {}}).status_code == 401


def test_user_score_has_every_section(served) -> None:
    srv, _, _ = served
    r = srv.client.get("/v1/users/00004/score", params={"as_of": "1997-09-30T00:00:00"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model_version"] == "v1" and body["platform"] == "cdnow_sample"
    p = body["power"]
    assert p["expected_spend"] >= 0 and p["tier"] in {"high", "mid", "low"}
    assert abs(sum(p["probabilities"].values()) - 1) < 1e-9
    assert 0 < body["credit"]["pd"] < 1 and isinstance(body["credit"]["score"], float)
    assert 0 <= body["anomaly"]["score"] <= 1 and isinstance(body["anomaly"]["flag"], bool)
    for reason in p["reasons"]:
        assert reason["contribution"] > 0 and reason["text"]
    assert srv.client.get("/v1/users/no-such-user/score").status_code == 404


def test_events_rejects_and_online_update(served) -> None:
    srv, _, _ = served
    user, at = "00004", {"as_of": "1998-06-30T00:00:00", "platform": "cdnow_sample"}
    before = srv.client.get(f"/v1/users/{user}/score", params=at).json()
    events = [
        {"user_id": user, "platform": "cdnow_sample", "ts": "1998-06-20T10:00:00", "event_type": "purchase",
         "amount": 5000.0, "quantity": 3},
        {"user_id": user, "platform": "cdnow_sample", "ts": "not a date", "event_type": "purchase", "amount": 1},
        {"user_id": user, "platform": "cdnow_sample", "ts": "1998-06-20", "event_type": "teleport"},
        {"user_id": user, "platform": "cdnow_sample", "ts": "1998-06-21", "event_type": "refund"},
    ]
    r = srv.client.post("/v1/events", json={"events": events})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["read"], body["accepted"], body["rejected"]) == (4, 1, 3)
    assert [(x["index"], x["reason"]) for x in body["rejects"]] == [
        (1, "BAD_TIMESTAMP"), (2, "UNKNOWN_EVENT_TYPE"), (3, "MISSING_AMOUNT")]
    after = srv.client.get(f"/v1/users/{user}/score", params=at).json()
    assert after["power"] != before["power"]  # features were recomputed from the new event
    again = srv.client.post("/v1/events", json={"events": events}).json()  # idempotent
    assert again["inserted"] == 0 and again["batch_id"] == body["batch_id"] and again["conflicts"] == 0
    # an event id sent again with other content: kept as stored, and the client is told
    first = {"event_id": "api-dup-1", "user_id": user, "platform": "cdnow_sample", "ts": "1998-06-22",
             "event_type": "purchase", "amount": 10.0}
    assert srv.client.post("/v1/events", json={"events": [first]}).json()["inserted"] == 1
    changed = srv.client.post("/v1/events", json={"events": [{**first, "amount": 99.0}]}).json()
    assert (changed["inserted"], changed["already_present"], changed["conflicts"]) == (0, 1, 1)


def test_post_score_features_and_events(served) -> None:
    srv, registry, _ = served
    feats = ModelRegistry(registry).show()["models"]["credit"]["features"]
    r = srv.client.post("/v1/score", json={"features": {f: 1.0 for f in feats}})
    assert r.status_code == 200
    body = r.json()
    assert body["credit"] is not None and body["power"] is None and "power" in body["unavailable"]
    ev = [{"user_id": "new", "ts": "2024-01-01", "event_type": "purchase", "amount": 20.0},
          {"user_id": "new", "ts": "2024-01-05", "event_type": "view"}]
    r = srv.client.post("/v1/score", json={"events": ev, "as_of": "2024-02-01T00:00:00"})
    assert r.status_code == 200 and r.json()["power"]["expected_spend"] >= 0
    # nothing stored
    assert srv.client.get("/v1/users/new/score").status_code == 404
    # features no model can use: 422 naming what each model lacks (was 200 with every section null)
    for feats in ({}, {"credit_amont": 1000.0}):
        r = srv.client.post("/v1/score", json={"features": feats})
        assert r.status_code == 422 and "can score these features" in r.text, r.text
    assert "credit_amont" in r.text  # the misspelt name is pointed out


@pytest.mark.parametrize("payload, loc", [
    ({"events": "x"}, ["body", "events"]),
    ({"events": [{"user_id": "a", "ts": "2024-01-01", "event_type": "view", "colour": "red"}]},
     ["body", "events", 0, "colour"]),
    ({"events": []}, ["body", "events"]),
])
def test_422_is_field_level(served, payload, loc) -> None:
    srv, _, _ = served
    r = srv.client.post("/v1/events", json=payload)
    assert r.status_code == 422
    assert any(e["loc"] == loc for e in r.json()["detail"]), r.json()


@pytest.mark.parametrize("event, field", [
    ({"user_id": "a" * 201}, "user_id"),  # GET /v1/users/{user_id}/score takes at most 200 characters
    ({"user_id": "a/b"}, "user_id"),  # ... and no '/'
    ({"user_id": True}, "user_id"),  # JSON true would have been stored as user "1"
    ({"user_id": "a", "event_type": "purchase", "amount": True}, "amount"),  # ... and as amount 1.0
])
def test_values_the_score_endpoint_could_not_use_are_refused(served, event, field) -> None:
    srv, _, _ = served
    r = srv.client.post("/v1/events", json={"events": [{"ts": "2024-01-01", "event_type": "view", **event}]})
    assert r.status_code == 422
    # one error at the field itself (was one per union member, with pydantic's member name appended)
    detail = r.json()["detail"]
    assert [e["loc"] for e in detail] == [["body", "events", 0, field]], detail
    assert detail[0]["msg"].startswith(f"events[0].{field}: ") and "send " in detail[0]["msg"], detail


def test_body_limit_and_no_user_data_in_logs(served) -> None:
    srv, _, _ = served
    big = {"events": [{"user_id": "u-secret-42", "ts": "2024-01-01", "event_type": "view", "text": "x" * 9000}] * 30}
    assert srv.client.post("/v1/events", json=big).status_code == 413
    # the same body streamed in chunks, without a Content-Length: 413 too (was FastAPI's 400 "error parsing")
    data = json.dumps(big).encode()
    chunks = (data[i:i + 8192] for i in range(0, len(data), 8192))
    r = srv.client.post("/v1/events", content=chunks, headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json() == {"detail": "request body too large"}
    srv.client.get("/v1/users/u-secret-43/score")
    srv.client.post("/v1/events", json={"events": [{"user_id": "u-secret-44", "ts": "2024-01-01", "event_type": "view"}]})
    log = srv.output()
    assert "/v1/users/{user_id}/score" in log  # the access log names route templates ...
    assert "u-secret" not in log and KEY not in log  # ... never ids or keys


def test_metrics_prometheus_text(served) -> None:
    srv, _, _ = served
    text = httpx.get(srv.url + "/metrics").text
    assert "# TYPE buyerscore_requests_total counter" in text
    assert 'buyerscore_model_info{version="' in text
    assert "buyerscore_request_duration_seconds_bucket" in text


def test_openapi_served_equals_committed(served) -> None:
    srv, _, _ = served
    committed = json.loads((Path(__file__).parents[1] / "docs" / "openapi.json").read_text())
    assert httpx.get(srv.url + "/openapi.json").json() == committed


def test_hot_reload_of_promoted_bundle(served) -> None:
    srv, registry, _db = served
    reg = ModelRegistry(registry)
    # a second bundle (the same models without the anomaly detector) is registered, then promoted
    old = srv.client.get("/healthz").json()["model_version"]
    src = reg.load(old)
    v2 = reg.create({k: ModelEntry(m, meta.features) for k, (m, meta) in src.models.items() if k != "anomaly"},
                    as_of=src.as_of, training_data_hash="h2", config=src.manifest["config"])
    reg.promote(v2)
    deadline = time.monotonic() + 10
    while srv.client.get("/healthz").json()["model_version"] != v2:
        assert time.monotonic() < deadline, "promoted bundle not picked up"
        time.sleep(0.05)
    body = srv.client.get("/v1/users/00004/score", params={"platform": "cdnow_sample"}).json()
    assert body["model_version"] == v2 and body["anomaly"] is None
    reg.promote(old)
    while srv.client.get("/healthz").json()["model_version"] != old:
        assert time.monotonic() < deadline + 10
        time.sleep(0.05)


def test_sigkill_loses_no_acknowledged_event(data_dir: Path, tmp_path: Path) -> None:
    db, registry = tmp_path / "store.duckdb", tmp_path / "registry"
    with EventStore(db) as store:
        load_dataset("cdnow_sample", store, data_dir)
        standin_bundle(store.con, registry, as_of=AS_OF, kinds=("power_spend",), n_estimators=5)
    srv = Server(registry, db, tmp_path, "--allow-anonymous")
    acked: list[str] = []
    for b in range(15):
        evs = [{"event_id": f"k{b}-{i}", "user_id": f"u{i % 7}", "ts": f"2024-01-{1 + i % 28:02d}",
                "event_type": "purchase", "amount": float(i)} for i in range(40)]
        r = srv.client.post("/v1/events", json={"events": evs})
        assert r.status_code == 200 and r.json()["accepted"] == 40
        acked += [e["event_id"] for e in evs]
    srv.stop(signal.SIGKILL)  # right after the last 2xx
    assert srv.proc.returncode == -signal.SIGKILL
    with EventStore(db, read_only=True) as store:
        stored = {r[0] for r in store.con.execute("SELECT event_id FROM events WHERE event_id LIKE 'k%'").fetchall()}
    assert stored == set(acked)


def test_fuzz_openapi_no_server_errors(served) -> None:
    """Schemathesis-generated requests for every operation of the served spec: never a 5xx (bounded, ~10 s)."""
    schemathesis = pytest.importorskip("schemathesis")
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    srv, _, _ = served
    schema = schemathesis.openapi.from_url(srv.url + "/openapi.json")
    ops = [r.ok() for r in schema.get_all_operations()]
    assert {f"{o.method.upper()} {o.path}" for o in ops} >= {
        "GET /v1/users/{user_id}/score", "POST /v1/score", "POST /v1/events", "GET /healthz", "GET /metrics"}
    seen: dict[int, int] = {}
    for op in ops:
        @settings(max_examples=30, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(case=op.as_strategy(), with_key=st.booleans())
        def run(case, with_key: bool) -> None:
            headers = {"X-API-Key": KEY} if with_key else {}
            r = case.call(base_url=srv.url, headers=headers, timeout=30)
            seen[r.status_code] = seen.get(r.status_code, 0) + 1
            assert r.status_code < 500, f"{case.method} {case.formatted_path} -> {r.status_code}: {r.text[:300]}"

        run()
    assert any(s == 200 for s in seen) and any(s in (401, 422) for s in seen), seen


def test_committed_openapi_is_current() -> None:
    """docs/openapi.json is regenerated with 'buyerscore serve --openapi > docs/openapi.json'."""
    from buyerscore.serving.api.main import openapi_spec
    committed = json.loads((Path(__file__).parents[1] / "docs" / "openapi.json").read_text())
    assert committed == json.loads(json.dumps(openapi_spec())), "regenerate docs/openapi.json"


# -- limits, input warnings, readable 422s, 415 -------------------------------------------------------
@pytest.fixture(scope="module")
def standin_registry(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("inproc")
    with EventStore(tmp / "train.duckdb") as store:
        load_dataset("cdnow_sample", store, data_dir)
        standin_bundle(store.con, tmp / "registry", as_of=AS_OF, kinds=("power_spend", "credit"), n_estimators=5)
    return tmp / "registry"


@pytest.fixture()
def make_client(tmp_path: Path):
    """In-process apps (TestClient) on a registry, each with its own empty store; ``clock`` fixes "now"."""
    with warnings.catch_warnings():  # starlette's note about httpx2
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient
    from buyerscore.serving.api import ServeSettings, create_app

    apps = []

    def make(registry: Path, clock: datetime | None = None, **settings):
        app = create_app(ServeSettings(registry=registry, db=tmp_path / f"s{len(apps)}.duckdb", allow_anonymous=True,
                                       reload_interval_s=3600, **settings))
        if clock is not None:
            app.state.buyerscore.clock = lambda: clock
        apps.append(app)
        return TestClient(app), app.state.buyerscore

    yield make
    for app in apps:
        app.state.buyerscore.close()


def test_amounts_above_the_limit_are_refused_and_sums_stay_finite(served) -> None:
    srv, _, _ = served
    ok = {"event_id": "lim-ok-1", "user_id": "lim-u1", "ts": "2024-01-01", "event_type": "purchase", "amount": 5.0}
    huge = [{"user_id": "lim-u1", "ts": f"2024-01-0{i + 2}", "event_type": "purchase", "amount": 1e308}
            for i in range(3)]  # three of them summed to inf in monetary_sum
    r = srv.client.post("/v1/events", json={"events": [ok, *huge]})
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert [e["loc"] for e in detail] == [["body", "events", i, "amount"] for i in (1, 2, 3)]
    assert "events[1].amount" in detail[0]["msg"] and "1e+308" in detail[0]["msg"] and "1e+12" in detail[0]["msg"]
    assert "lim-u1" not in r.text  # no id echoed
    # the whole request was refused: the valid event was not stored either
    assert srv.client.get("/v1/users/lim-u1/score").status_code == 404
    # the same for the score endpoint, and for quantities and dust amounts (ratios over them overflowed)
    r = srv.client.post("/v1/score", json={"events": huge[:1]})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "events", 0, "amount"], r.text
    r = srv.client.post("/v1/events", json={"events": [{**ok, "quantity": "2e6"}, {**ok, "event_id": "d",
                                                                                    "amount": 1e-300}]})
    assert r.status_code == 422, r.text
    assert [(e["loc"][2:], e["type"]) for e in r.json()["detail"]] == [
        ([0, "quantity"], "less_than_equal"), ([1, "amount"], "greater_than_equal")]


def test_amount_limit_is_configurable_and_accepted_sums_are_finite(standin_registry, make_client) -> None:
    client, state = make_client(standin_registry, max_amount=1000.0)
    ev = [{"user_id": "big", "ts": f"2024-01-0{i + 1}", "event_type": "purchase", "amount": 1000.0} for i in range(3)]
    r = client.post("/v1/events", json={"events": ev})
    assert r.status_code == 200 and r.json()["accepted"] == 3, r.text
    feats = state.online.features("big", "default", datetime(2024, 2, 1))
    assert feats["monetary_sum"].iloc[0] == 3000.0
    numeric = feats.drop(columns=["platform", "user_id"]).to_numpy(dtype=float)
    assert not np.isinf(numeric).any()
    r = client.post("/v1/events", json={"events": [{**ev[0], "amount": "1000.5"}]})  # numeric strings too
    assert r.status_code == 422 and "1000.5" in r.text and "1000" in r.json()["detail"][0]["msg"], r.text
    # the default ceiling keeps even the largest accepted amounts finite when summed
    client2, state2 = make_client(standin_registry)
    top = state2.settings.max_amount
    r = client2.post("/v1/events", json={"events": [{**e, "amount": top} for e in ev]})
    assert r.status_code == 200, r.text
    s = state2.online.features("big", "default", datetime(2024, 2, 1))["monetary_sum"].iloc[0]
    assert math.isfinite(s) and s == 3 * top


def test_events_in_the_future_are_refused(standin_registry, make_client) -> None:
    now = datetime(2024, 3, 1, 12, 0, 0)
    client, _ = make_client(standin_registry, clock=now, future_tolerance_s=3600)
    base = {"user_id": "fut", "event_type": "view"}
    fine = [{**base, "ts": "2024-03-01T12:59:59"},  # within the hour of tolerance
            {**base, "ts": "2024-03-01T20:30:00+08:00"},  # = 12:30 UTC
            {**base, "ts": int(datetime(2024, 3, 1, 12, 45, tzinfo=UTC).timestamp())}]  # Unix seconds
    r = client.post("/v1/events", json={"events": fine})
    assert r.status_code == 200 and r.json()["accepted"] == 3, r.text
    late = [{**base, "ts": "2024-03-01T13:00:01"}, {**base, "ts": "2099-01-01"}]
    r = client.post("/v1/events", json={"events": [fine[0], *late]})
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert [(e["loc"], e["type"]) for e in detail] == [
        (["body", "events", 1, "ts"], "timestamp_in_future"), (["body", "events", 2, "ts"], "timestamp_in_future")]
    msg = detail[0]["msg"]
    assert "events[1].ts" in msg and "2024-03-01T13:00:01" in msg and "1 h (3600 s)" in msg, msg
    assert "2024-03-01T12:00:00" in msg  # the server's clock it was compared with
    r = client.post("/v1/score", json={"events": [{**base, "ts": "2024-03-03"}]})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "events", 0, "ts"], r.text
    # the default tolerance is one day
    client2, _ = make_client(standin_registry, clock=now)
    assert client2.post("/v1/events", json={"events": [{**base, "ts": "2024-03-02T11:00"}]}).status_code == 200
    r = client2.post("/v1/events", json={"events": [{**base, "ts": "2024-03-02T12:00:01"}]})
    assert r.status_code == 422 and "1 day" in r.text, r.text


def test_far_future_event_refused_by_the_server(served) -> None:
    srv, _, _ = served
    r = srv.client.post("/v1/events", json={"events": [{"user_id": "f1", "ts": "2099-06-01", "event_type": "view"}]})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "events", 0, "ts"], r.text
    assert "2099-06-01" in r.text and "1 day" in r.text


@pytest.fixture(scope="module")
def scorecard_registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from buyerscore.models.credit import CreditScorecard

    i = np.arange(600)
    X = pd.DataFrame({"months": 4.0 + i % 36, "purpose": np.where(i % 3 == 1, "tv", "car")})
    y = ((i % 3 == 1) & (i % 4 > 0) | (i % 36 > 30)).astype(int)
    model = CreditScorecard(min_iv=0.0).fit(X, y)
    reg = ModelRegistry(tmp_path_factory.mktemp("scorecard") / "registry")
    reg.promote(reg.create({"credit": ModelEntry(model, ["months", "purpose"])}, as_of=None,
                           training_data_hash="synthetic"))
    return reg.root


def test_post_score_warns_about_inputs_never_seen_in_training(scorecard_registry, make_client) -> None:
    client, _ = make_client(scorecard_registry)
    r = client.post("/v1/score", json={"features": {"months": 12, "purpose": "car"}})
    assert r.status_code == 200, r.text
    assert r.json()["credit"]["warnings"] == []
    r = client.post("/v1/score", json={"features": {"months": 99, "purpose": "spaceship"}})
    assert r.status_code == 200, r.text  # still scored
    credit = r.json()["credit"]
    assert credit["pd"] is not None
    got = {w["feature"]: w for w in credit["warnings"]}
    assert set(got) == {"months", "purpose"}
    assert got["purpose"]["value"] == "spaceship" and got["purpose"]["issue"] == "unseen_category"
    assert "car, tv" in got["purpose"]["message"] and got["purpose"]["model"] == "credit"
    assert got["months"]["value"] == 99.0 and got["months"]["issue"] == "above_training_range"
    assert "39" in got["months"]["message"]
    low = client.post("/v1/score", json={"features": {"months": -5, "purpose": None}}).json()["credit"]["warnings"]
    assert [(w["feature"], w["issue"]) for w in low] == [("months", "below_training_range")]  # missing: no warning


@pytest.mark.parametrize("path, payload, loc", [
    ("/v1/events", {"events": [{"user_id": True, "ts": "2024-01-01", "event_type": "view"}]},
     ["body", "events", 0, "user_id"]),
    ("/v1/events", {"events": [{"user_id": "secret/42", "ts": "2024-01-01", "event_type": "view"}]},
     ["body", "events", 0, "user_id"]),
    ("/v1/events", {"events": [{"user_id": "a", "ts": ["2024"], "event_type": "view"}]}, ["body", "events", 0, "ts"]),
    ("/v1/score", {"features": {"recency_days": [1]}}, ["body", "features", "recency_days"]),
    ("/v1/score", {"features": {"int": {"a": 1}}}, ["body", "features", "int"]),  # a feature named like a member
    ("/v1/score", {"features": {"recency_days": True}}, ["body", "features", "recency_days"]),  # was taken as 1.0
])
def test_422_names_the_field_not_pydantic_union_members(served, path, payload, loc) -> None:
    srv, _, _ = served
    r = srv.client.post(path, json=payload)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert [e["loc"] for e in detail] == [loc], detail
    msg = detail[0]["msg"]
    assert "send " in msg and not re.search(r"constrained-|nullable\[|function-", msg), msg
    assert "secret" not in r.text  # the id is not echoed


def test_readable_errors_drop_validator_names_and_suggest_fields() -> None:
    from buyerscore.serving.api.errors import readable_errors

    out = readable_errors([
        {"loc": ("body", "events", 0, "function-after[_check(), EventIn]"), "msg": "Value error, bad",
         "type": "value_error"},
        {"loc": ("body", "events", 1, "amout"), "msg": "Extra inputs are not permitted", "type": "extra_forbidden"},
        {"loc": ("body", "events", 2, "str"), "msg": "Extra inputs are not permitted", "type": "extra_forbidden"},
        {"loc": ("body", 7), "msg": "JSON decode error", "type": "json_invalid", "ctx": {"error": "Expecting value"}},
        {"loc": ("body", "features", "spend[7d]", "nullable[float]"), "msg": "Input should be a valid number",
         "type": "float_type", "input": [1]},
        {"loc": ("body", "features", "spend[7d]", "constrained-str"), "msg": "Input should be a valid string",
         "type": "string_type", "input": [1]},
    ], "/v1/events")
    assert [e["loc"] for e in out] == [["body", "events", 0], ["body", "events", 1, "amout"],
                                       ["body", "events", 2, "str"], ["body"], ["body", "features", "spend[7d]"]]
    assert "did you mean 'amount'" in out[1]["msg"] and "character 7" in out[3]["msg"]
    assert out[4]["msg"].startswith('features["spend[7d]"]: wrong type (got a list); send a finite number')


def test_non_json_body_is_415(served) -> None:
    srv, _, _ = served
    body = json.dumps({"events": [{"user_id": "ct", "ts": "2024-01-01", "event_type": "view"}]})
    for ctype in ("text/plain", "application/x-www-form-urlencoded", "text/json"):
        r = srv.client.post("/v1/events", content=body, headers={"content-type": ctype})
        assert r.status_code == 415 and "application/json" in r.json()["detail"], (ctype, r.text)
    r = srv.client.post("/v1/score", content=body, headers={"content-type": "text/plain; charset=utf-8"})
    assert r.status_code == 415 and "text/plain" in r.json()["detail"]
    r = httpx.post(srv.url + "/v1/events", content=body)  # no content type at all
    assert r.status_code == 401  # the key is checked first
    r = srv.client.post("/v1/events", content=body)
    assert r.status_code == 415 and "Content-Type none" in r.text, r.text
    for ctype in ("application/json; charset=utf-8", "application/vnd.api+json"):
        r = srv.client.post("/v1/events", content=body, headers={"content-type": ctype})
        assert r.status_code == 200, (ctype, r.text)


def test_serve_command_passes_the_event_limits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`buyerscore serve --max-amount/--max-quantity/--future-tolerance` reach ServeSettings; the flags'
    defaults are the settings' defaults."""
    from typer.testing import CliRunner

    from buyerscore.cli import app
    from buyerscore.serving.api import main as api_main
    from buyerscore.serving.api import settings as st

    got = []
    monkeypatch.setattr(api_main, "run", lambda settings, **kw: got.append(settings))
    base = ["serve", "--registry", str(tmp_path / "reg"), "--db", str(tmp_path / "s.duckdb"), "--allow-anonymous"]
    res = CliRunner().invoke(app, [*base, "--max-amount", "5000", "--max-quantity", "20", "--future-tolerance", "60"])
    assert res.exit_code == 0, res.output
    assert (got[0].max_amount, got[0].max_quantity, got[0].future_tolerance_s) == (5000.0, 20.0, 60.0)
    assert CliRunner().invoke(app, base).exit_code == 0
    assert (got[1].max_amount, got[1].max_quantity, got[1].future_tolerance_s) == (
        st.DEFAULT_MAX_AMOUNT, st.DEFAULT_MAX_QUANTITY, st.DEFAULT_FUTURE_TOLERANCE_S)
    res = CliRunner().invoke(app, [*base, "--max-amount", "1e30"])
    assert res.exit_code != 0 and "--max-amount: Input should be less than or equal to" in res.output


def test_serve_reads_the_serve_section_of_the_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`buyerscore serve --config buyerscore.toml` applies [serve] and [store] db; a flag given wins."""
    from typer.testing import CliRunner

    from buyerscore.cli import app
    from buyerscore.config import ServeConfig
    from buyerscore.serving.api import main as api_main
    from buyerscore.serving.api import settings as st

    got = []
    monkeypatch.setattr(api_main, "run", lambda settings, **kw: got.append((settings, kw)))
    keys = tmp_path / "keys.txt"
    keys.write_text(st.hash_key("k1") + "\n")
    cfg = tmp_path / "buyerscore.toml"
    cfg.write_text(f'[store]\ndb = "{(tmp_path / "c.duckdb").as_posix()}"\n'
                   f'[serve]\nport = 8123\nmax_body_bytes = 5000\nmax_amount = 7e6\nfuture_tolerance_s = 60\n'
                   f'api_keys_file = "{keys.as_posix()}"\n')
    base = ["serve", "--registry", str(tmp_path / "reg"), "--config", str(cfg)]
    res = CliRunner().invoke(app, base)
    assert res.exit_code == 0, res.output
    s, kw = got[0]
    assert (s.db, kw["port"], s.max_body_bytes, s.max_amount, s.future_tolerance_s) == (
        tmp_path / "c.duckdb", 8123, 5000, 7e6, 60.0)
    assert set(s.api_key_hashes) == {st.hash_key("k1")} and s.max_quantity == st.DEFAULT_MAX_QUANTITY
    assert CliRunner().invoke(app, [*base, "--max-amount", "99", "--port", "9000"]).exit_code == 0
    assert (got[1][0].max_amount, got[1][1]["port"]) == (99.0, 9000)
    # the config's defaults are the server's
    d = ServeConfig()
    assert (d.max_amount, d.max_quantity, d.future_tolerance_s, d.max_body_bytes) == (
        st.DEFAULT_MAX_AMOUNT, st.DEFAULT_MAX_QUANTITY, st.DEFAULT_FUTURE_TOLERANCE_S, st.ServeSettings.model_fields[
            "max_body_bytes"].default)
