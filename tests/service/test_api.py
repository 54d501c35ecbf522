"""The REST API on SQLite and PostgreSQL: auth, ownership, reads, fronts, limits, events."""

from __future__ import annotations

import json
import random
import threading
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.core.config import get_settings
from tests.service.conftest import ServiceEnv
from tests.service.conftest import new_owner
from tests.service.rows import add_job
from tests.service.rows import add_target
from tests.service.rows import add_trial
from tests.service.rows import row_counts
from tests.service.rows import set_job_status
from tests.service.test_pareto import brute_front

API = "/api/v1"


def test_healthz_needs_no_token(backend: str, client: TestClient, service_env: ServiceEnv) -> None:
    assert service_env.backend == backend
    assert service_env.settings.database_url.startswith(backend)
    for path in ("/healthz", f"{API}/healthz"):
        response = client.get(path)
        assert response.status_code == 200
        assert response.json() == {"status": "ok", "database": "ok"}


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer ffnas_not-a-token"}, {"Authorization": "Basic abc"}],
)
def test_missing_or_invalid_token_is_401(
    backend: str, client: TestClient, headers: dict[str, str]
) -> None:
    for method, path in [("GET", "/jobs"), ("GET", "/targets"), ("POST", "/jobs")]:
        response = client.request(method, f"{API}{path}", headers=headers, json={})
        assert response.status_code == 401, (method, path, response.text)
        assert "token" in response.json()["detail"]
        assert response.headers["www-authenticate"] == "Bearer"


def test_jobs_list_get_with_counts_and_best(
    backend: str, client: TestClient, auth: dict[str, str]
) -> None:
    owner = _owner_of(client, auth)
    job_id = add_job(owner)
    add_trial(job_id, 0, values={"params": 10.0, "flops": 5.0})
    add_trial(job_id, 1, values={"params": 4.0, "flops": 9.0})
    add_trial(job_id, 2, values={"params": 1.0, "flops": 1.0}, feasible=False)  # not best
    add_trial(job_id, 3, state="failed")
    add_trial(job_id, 4, state="running")
    other = add_job(owner, status="completed", name="second")

    listed = client.get(f"{API}/jobs", headers=auth).json()
    assert listed["count"] == 2
    assert {j["id"] for j in listed["data"]} == {job_id, other}
    only_done = client.get(f"{API}/jobs", params={"status": "completed"}, headers=auth).json()
    assert [j["id"] for j in only_done["data"]] == [other]

    job = client.get(f"{API}/jobs/{job_id}", headers=auth).json()
    assert job["counts"] == {"queued": 0, "running": 1, "complete": 3, "pruned": 0, "failed": 1}
    # Best over complete *feasible* trials, per objective (the ideal point).
    assert job["best"] == {"params": 4.0, "flops": 5.0}
    assert set(job) == {
        "id", "name", "status", "spec", "target", "evaluator", "strategy", "n_trials",
        "counts", "best", "created_at", "started_at", "finished_at", "error",
    }  # fmt: skip
    assert client.get(f"{API}/jobs/{other}", headers=auth).json()["best"] is None


def test_another_owners_job_is_404_everywhere(
    backend: str, client: TestClient, auth: dict[str, str]
) -> None:
    owner = _owner_of(client, auth)
    job_id = add_job(owner)
    add_trial(job_id, 0, values={"params": 1.0, "flops": 1.0})
    _, intruder = new_owner("intruder")
    before = row_counts()
    for method, path in [
        ("GET", f"/jobs/{job_id}"),
        ("GET", f"/jobs/{job_id}/trials"),
        ("GET", f"/jobs/{job_id}/trials/0"),
        ("GET", f"/jobs/{job_id}/pareto"),
        ("GET", f"/jobs/{job_id}/events"),
        ("GET", f"/jobs/{job_id}/trials/0/export?format=native"),
        ("POST", f"/jobs/{job_id}/stop"),
        ("POST", f"/jobs/{job_id}/resume"),
        ("DELETE", f"/jobs/{job_id}"),
    ]:
        response = client.request(method, f"{API}{path}", headers=intruder)
        assert response.status_code == 404, (method, path, response.text)
        assert response.json() == {"detail": f"job {job_id!r} not found"}
    assert client.get(f"{API}/jobs", headers=intruder).json() == {"data": [], "count": 0}
    assert row_counts() == before


def test_trials_filter_pagination_and_lookup(
    backend: str, client: TestClient, auth: dict[str, str]
) -> None:
    job_id = add_job(_owner_of(client, auth))
    for n in range(7):
        add_trial(
            job_id,
            n,
            values={"params": float(n), "flops": float(7 - n)},
            state="pruned" if n % 3 == 0 else "complete",
            latency=(1.0, 2.0, 3.0) if n == 1 else None,
        )
    page = client.get(
        f"{API}/jobs/{job_id}/trials", params={"limit": 2, "offset": 2}, headers=auth
    ).json()
    assert page["count"] == 7 and [t["number"] for t in page["data"]] == [2, 3]
    pruned = client.get(
        f"{API}/jobs/{job_id}/trials", params={"state": "pruned"}, headers=auth
    ).json()
    assert [t["number"] for t in pruned["data"]] == [0, 3, 6] and pruned["count"] == 3

    one = client.get(f"{API}/jobs/{job_id}/trials/1", headers=auth).json()
    assert one["latency"] == {"p20_ms": 1.0, "p50_ms": 2.0, "p80_ms": 3.0}
    assert one["summary"] == "1x dense 128 swiglu, 1x noop"
    assert one["design"]["layers"][0]["width"] == 128
    assert client.get(f"{API}/jobs/{job_id}/trials/0", headers=auth).json()["latency"] is None

    missing = client.get(f"{API}/jobs/{job_id}/trials/99", headers=auth)
    assert missing.status_code == 404 and "trial 99" in missing.json()["detail"]
    too_many = client.get(
        f"{API}/jobs/{job_id}/trials",
        params={"limit": get_settings().max_page_size + 1},
        headers=auth,
    )
    assert too_many.status_code == 422
    assert too_many.json()["detail"][0]["loc"] == ["query", "limit"]
    bad_state = client.get(f"{API}/jobs/{job_id}/trials", params={"state": "x"}, headers=auth)
    assert bad_state.status_code == 422 and bad_state.json()["detail"][0]["loc"][-1] == "state"


def test_pareto_equals_brute_force_recomputation(
    backend: str, client: TestClient, auth: dict[str, str]
) -> None:
    job_id = add_job(
        _owner_of(client, auth),
        objectives=[
            {"name": "latency_ms", "direction": "minimize"},
            {"name": "bpb", "direction": "maximize"},
        ],
    )
    rng = random.Random(7)
    for n in range(40):
        add_trial(
            job_id,
            n,
            values={"latency_ms": rng.randint(1, 20) / 2, "bpb": rng.randint(1, 20) / 4},
            state=rng.choice(["complete"] * 4 + ["failed", "pruned"]),
            feasible=rng.choice([True, True, True, False, None]),
        )
    body = client.get(f"{API}/jobs/{job_id}/pareto", headers=auth).json()
    trials = client.get(
        f"{API}/jobs/{job_id}/trials", params={"state": "complete"}, headers=auth
    ).json()["data"]
    eligible = [t for t in trials if t["feasible"] is not False]
    vectors = [(t["values"]["latency_ms"], -t["values"]["bpb"]) for t in eligible]
    expected = sorted(eligible[i]["number"] for i in brute_front(vectors))
    assert [p["number"] for p in body["points"]] == expected
    assert body["objectives"] == [
        {"name": "latency_ms", "direction": "minimize"},
        {"name": "bpb", "direction": "maximize"},
    ]
    assert [h["number"] for h in body["hypervolume"]] == [t["number"] for t in eligible]
    assert len(body["reference_point"]) == 2
    # The reference is 10% beyond the worst value: above the largest latency, below the
    # smallest bpb (bpb is maximised).
    assert body["reference_point"][0] > max(v[0] for v in vectors)
    assert body["reference_point"][1] < min(-v[1] for v in vectors)


def test_empty_job_has_empty_front(backend: str, client: TestClient, auth: dict[str, str]) -> None:
    job_id = add_job(_owner_of(client, auth), status="queued")
    body = client.get(f"{API}/jobs/{job_id}/pareto", headers=auth).json()
    assert body["points"] == [] and body["hypervolume"] == [] and body["reference_point"] == []


BAD_SPECS: list[tuple[str, dict[str, Any], tuple[str, ...], str]] = [
    (
        "unknown strategy",
        {"strategy": {"name": "hillclimb"}},
        ("strategy", "name"),
        "Input should be",
    ),
    ("n_trials 10^9", {"n_trials": 10**9}, ("n_trials",), "`n_trials <= 100000` must hold"),
    ("n_trials 0", {"n_trials": 0}, ("n_trials",), "greater than or equal to 1"),
    ("in flight", {"max_in_flight": 1000}, ("max_in_flight",), "`max_in_flight <= 64`"),
    ("owner", {"owner_id": "someone"}, ("owner_id",), "Extra inputs are not permitted"),
    ("status", {"status": "completed"}, ("status",), "Extra inputs are not permitted"),
    ("attempts", {"max_attempts": 50}, ("max_attempts",), "less than or equal to 10"),
    ("attempt", {"attempt": 2}, ("attempt",), "Extra inputs are not permitted"),
    ("state", {"state": "complete"}, ("state",), "Extra inputs are not permitted"),
    ("unknown evaluator", {"evaluator": {"name": "oracle"}}, ("evaluator",), "unknown evaluator"),
    (
        "four objectives",
        {"objectives": [{"name": n} for n in ("params", "flops", "bpb", "kl_div")]},
        ("objectives",),
        "at most 3",
    ),  # noqa: E501
    (
        "duplicate objective",
        {"objectives": [{"name": "params"}, {"name": "params"}]},
        ("objectives",),
        "unique names",
    ),  # noqa: E501
    (
        "unknown metric",
        {"objectives": [{"name": "accuracy"}]},
        ("objectives", 0, "name"),
        "Input should be",
    ),  # noqa: E501
    ("bad target", {"target": "GPU 0!"}, ("target",), "String should match pattern"),
    ("no space", {"space": None}, (), "exactly one of `space` and `library`"),
    ("time budget", {"time_budget_s": -1}, ("time_budget_s",), "greater than 0"),
]


@pytest.mark.parametrize(
    ("case", "change", "loc", "message"), BAD_SPECS, ids=[c[0] for c in BAD_SPECS]
)
def test_bad_job_is_422_naming_field_and_rule_and_writes_nothing(
    backend: str,
    client: TestClient,
    auth: dict[str, str],
    job_spec: dict[str, Any],
    case: str,
    change: dict[str, Any],
    loc: tuple[str, ...],
    message: str,
) -> None:
    before = row_counts()
    response = client.post(f"{API}/jobs", headers=auth, json={**job_spec, **change})
    assert response.status_code == 422, response.text
    errors = response.json()["detail"]
    matching = [e for e in errors if tuple(e["loc"][1:]) == loc]
    assert matching, f"{case}: no error at {loc} in {errors}"
    assert message in matching[0]["msg"], matching[0]["msg"]
    assert row_counts() == before


def test_invalid_design_space_is_422(
    backend: str, client: TestClient, auth: dict[str, str], job_spec: dict[str, Any]
) -> None:
    before = row_counts()
    bad = json.loads(json.dumps(job_spec["space"]))
    bad["dims"]["n_heads"] = 5  # d_model 64 is not a multiple of 5
    response = client.post(f"{API}/jobs", headers=auth, json={**job_spec, "space": bad})
    assert response.status_code == 422, response.text
    error = response.json()["detail"][0]
    assert error["loc"] == ["body", "space"]
    assert "invalid design space" in error["msg"] and "d_model % n_heads == 0" in error["msg"]
    assert row_counts() == before


def test_body_over_limit_is_413_and_writes_nothing(
    backend: str, client: TestClient, auth: dict[str, str]
) -> None:
    before = row_counts()
    big = b'{"name": "' + b"x" * (10 << 20) + b'"}'
    response = client.post(
        f"{API}/jobs", headers={**auth, "content-type": "application/json"}, content=big
    )
    assert response.status_code == 413
    assert "at most 1048576 bytes" in response.json()["detail"]

    def chunks() -> Any:  # no Content-Length: the middleware must count what arrives
        yield b'{"name": "'
        for _ in range(40):
            yield b"x" * 65536

    streamed = client.post(
        f"{API}/jobs", headers={**auth, "content-type": "application/json"}, content=chunks()
    )
    assert streamed.status_code == 413
    assert "at most" in streamed.json()["detail"]
    assert row_counts() == before


def _broker_messages(service_env: ServiceEnv) -> list[dict[str, Any]]:
    """Messages waiting in the SQLAlchemy transport's table (no worker consumes them here)."""
    import sqlite3

    path = service_env.data_dir / "broker.db"
    if not path.exists():
        return []
    with sqlite3.connect(path) as connection:
        rows = connection.execute("SELECT payload FROM kombu_message").fetchall()
    return [json.loads(payload) for (payload,) in rows]


def test_create_job_stores_then_enqueues(
    backend: str,
    client: TestClient,
    auth: dict[str, str],
    job_spec: dict[str, Any],
    service_env: ServiceEnv,
) -> None:
    before = row_counts()
    response = client.post(f"{API}/jobs", headers=auth, json=job_spec)
    assert response.status_code == 201, response.text
    job = response.json()
    assert job["status"] == "queued" and job["n_trials"] == 8
    assert job["strategy"] == "tpe" and job["evaluator"] == "analytic" and job["target"] == "cpu"
    # Defaults are filled in the stored spec (what the controller reads back).
    assert job["spec"]["max_attempts"] == 3 and job["spec"]["workload"]["phase"] == "prefill"
    assert row_counts() == {**before, "Job": before["Job"] + 1}
    assert client.get(f"{API}/jobs/{job['id']}", headers=auth).json()["id"] == job["id"]
    sent = [m["headers"] for m in _broker_messages(service_env)]
    assert any(h["task"] == "service.tasks.start_job" and job["id"] in h["argsrepr"] for h in sent)


def test_create_job_removes_the_row_when_enqueue_fails(
    backend: str,
    client: TestClient,
    auth: dict[str, str],
    job_spec: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import service.controller

    def broker_down(job_id: str) -> None:
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr(service.controller, "submit_job", broker_down)
    before = row_counts()
    response = client.post(f"{API}/jobs", headers=auth, json=job_spec)
    assert response.status_code == 503
    assert "broker unreachable" in response.json()["detail"]
    assert row_counts() == before


def test_stop_resume_delete_through_the_controller(
    backend: str, client: TestClient, auth: dict[str, str]
) -> None:
    owner = _owner_of(client, auth)
    job_id = add_job(owner, status="running")
    add_trial(job_id, 0, values={"params": 1.0, "flops": 1.0})
    stopped = client.post(f"{API}/jobs/{job_id}/stop", headers=auth)
    assert stopped.status_code == 200 and stopped.json()["status"] == "stopping"
    again = client.post(f"{API}/jobs/{job_id}/stop", headers=auth)  # idempotent
    assert again.status_code == 200 and again.json()["status"] == "stopping"
    set_job_status(job_id, "stopped")
    resumed = client.post(f"{API}/jobs/{job_id}/resume", headers=auth)
    assert resumed.status_code == 200 and resumed.json()["status"] == "running"
    before = row_counts()
    assert client.delete(f"{API}/jobs/{job_id}", headers=auth).status_code == 204
    assert client.get(f"{API}/jobs/{job_id}", headers=auth).status_code == 404
    assert row_counts() == {**before, "Job": before["Job"] - 1, "Trial": before["Trial"] - 1}


def test_stop_and_resume_conflicts(backend: str, client: TestClient, auth: dict[str, str]) -> None:
    owner = _owner_of(client, auth)
    done = add_job(owner, status="completed")
    running = add_job(owner, status="running")
    stop_done = client.post(f"{API}/jobs/{done}/stop", headers=auth)
    assert stop_done.status_code == 409 and "already completed" in stop_done.json()["detail"]
    for job_id, status in ((done, "completed"), (running, "running")):
        response = client.post(f"{API}/jobs/{job_id}/resume", headers=auth)
        assert response.status_code == 409
        assert f"is {status}" in response.json()["detail"]


def test_targets(backend: str, client: TestClient, auth: dict[str, str]) -> None:
    assert client.get(f"{API}/targets", headers=auth).json() == {"data": [], "count": 0}
    add_target("cpu")
    body = client.get(f"{API}/targets", headers=auth).json()
    assert body["count"] == 1
    assert body["data"][0]["name"] == "cpu" and body["data"][0]["healthy"] is True
    assert body["data"][0]["fingerprint"] == {"device": "cpu", "cores": 2}


def test_openapi_docs_served(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    for path in (
        f"{API}/jobs",
        f"{API}/jobs/{{job_id}}",
        f"{API}/jobs/{{job_id}}/stop",
        f"{API}/jobs/{{job_id}}/resume",
        f"{API}/jobs/{{job_id}}/trials",
        f"{API}/jobs/{{job_id}}/trials/{{number}}",
        f"{API}/jobs/{{job_id}}/pareto",
        f"{API}/jobs/{{job_id}}/events",
        f"{API}/jobs/{{job_id}}/trials/{{number}}/export",
        f"{API}/targets",
        f"{API}/tokens",
        f"{API}/tokens/{{token_id}}",
        "/healthz",
    ):
        assert path in paths, path


def test_export_formats(client: TestClient, auth: dict[str, str]) -> None:
    from search_space.design import FFNDesign
    from search_space.export import import_design

    job_id = add_job(_owner_of(client, auth))
    add_trial(job_id, 1, values={"params": 1.0, "flops": 1.0})  # layers: dense 128, noop
    stored = client.get(f"{API}/jobs/{job_id}/trials/1", headers=auth).json()["design"]

    native = client.get(f"{API}/jobs/{job_id}/trials/1/export", headers=auth).json()
    assert import_design(native["content"], "native") == FFNDesign.model_validate(stored)
    assert native["lossy"] == []

    decilm = client.get(
        f"{API}/jobs/{job_id}/trials/1/export", params={"format": "decilm"}, headers=auth
    ).json()
    assert decilm["filename"] == "config.json"
    assert "block_configs" in json.loads(decilm["content"])
    # DeciLM's ffn_mult cannot carry width 128 exactly: the response says so.
    assert any(i["layer"] == 0 and i["knob"] == "width" for i in decilm["lossy"])

    bad = client.get(
        f"{API}/jobs/{job_id}/trials/1/export", params={"format": "onnx"}, headers=auth
    )
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "format"]
    missing = client.get(f"{API}/jobs/{job_id}/trials/7/export", headers=auth)
    assert missing.status_code == 404


def parse_sse(lines: list[str]) -> list[tuple[str, dict[str, Any]]]:
    events: list[tuple[str, dict[str, Any]]] = []
    name, data = None, None
    for line in lines:
        if line.startswith("event:"):
            name = line.split(":", 1)[1].strip()
        elif line.startswith("data:"):
            data = json.loads(line.split(":", 1)[1])
        elif line == "" and name is not None and data is not None:
            events.append((name, data))
            name, data = None, None
    return events


def test_events_stream_trials_inserted_during_the_stream(
    backend: str, client: TestClient, auth: dict[str, str]
) -> None:
    job_id = add_job(_owner_of(client, auth))
    add_trial(job_id, 0, values={"params": 1.0, "flops": 2.0})

    def producer() -> None:
        time.sleep(0.3)
        add_trial(job_id, 1, values={"params": 2.0, "flops": 1.0})
        time.sleep(0.2)
        add_trial(job_id, 2, state="running")
        time.sleep(0.2)
        set_job_status(job_id, "completed")

    thread = threading.Thread(target=producer)
    started = time.monotonic()
    with client.stream("GET", f"{API}/jobs/{job_id}/events", headers=auth) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        thread.start()
        lines = list(response.iter_lines())  # ends by itself once the job is finished
    thread.join()
    assert time.monotonic() - started < 10
    events = parse_sse(lines)
    trial_numbers = [d["number"] for name, d in events if name == "trial"]
    assert trial_numbers == [0, 1, 2]
    statuses = [d["status"] for name, d in events if name == "job"]
    assert statuses[0] == "running" and statuses[-1] == "completed"
    last_job = [d for name, d in events if name == "job"][-1]
    assert last_job["counts"]["complete"] == 2 and last_job["counts"]["running"] == 1


def test_events_resume_from_last_event_id(client: TestClient, auth: dict[str, str]) -> None:
    job_id = add_job(_owner_of(client, auth), status="completed")
    add_trial(job_id, 0, values={"params": 1.0, "flops": 2.0})
    with client.stream("GET", f"{API}/jobs/{job_id}/events", headers=auth) as response:
        first = parse_sse(list(response.iter_lines()))
    assert [name for name, _ in first] == ["trial", "job"]
    # A reconnect far in the future of every row sees only the job's state.
    future = "2999-01-01T00:00:00+00:00"
    with client.stream(
        "GET", f"{API}/jobs/{job_id}/events", headers={**auth, "Last-Event-ID": future}
    ) as response:
        again = parse_sse(list(response.iter_lines()))
    assert [name for name, _ in again] == ["job"]


def _owner_of(client: TestClient, auth: dict[str, str]) -> str:
    from service.auth import hash_token
    from service.core.db import session_scope
    from service.models import ApiToken

    token = auth["Authorization"].split(" ", 1)[1]
    with session_scope() as session:
        from sqlmodel import select

        row = session.exec(select(ApiToken).where(ApiToken.token_hash == hash_token(token))).one()
        return row.owner_id
