"""Shared steps of the end-to-end tests: submit through the API, wait, check the front."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from fastapi.testclient import TestClient

from tests.service.stack import Stack
from tests.service.stack import wait_for

REPO = Path(__file__).resolve().parents[2]
# 4 tied-per-layer layers of dense (4 widths) or noop: 625 designs, instant to cost.
SPACE: dict[str, Any] = {
    "name": "e2e",
    "dims": {
        "d_model": 64,
        "n_layers": 4,
        "n_heads": 4,
        "n_kv_heads": 2,
        "vocab": 256,
        "seq_len": 256,
    },
    "tie": "per_layer",
    "layer": {
        "kind": {"choices": ["dense", "noop", "linear"]},
        "width": {"low": 64, "high": 256, "step": 64},
    },
}


def job_spec(
    *,
    strategy: str,
    n_trials: int,
    max_in_flight: int = 2,
    delay_s: float = 0.0,
    seed: int = 7,
    **extra: Any,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": f"e2e-{strategy}",
        "space": SPACE,
        "target": "cpu",
        "evaluator": {"name": "analytic", "settings": {"delay_s": delay_s} if delay_s else {}},
        "objectives": [{"name": "params"}, {"name": "flops", "direction": "maximize"}],
        "constraints": [{"name": "params", "max": 120_000}],
        "strategy": {"name": strategy, "seed": seed},
        "n_trials": n_trials,
        "max_in_flight": max_in_flight,
        "trial_time_limit_s": 10,
    }
    spec.update(extra)
    return spec


def client_with_token() -> tuple[TestClient, dict[str, str]]:
    from service.auth import create_token
    from service.core.db import session_scope
    from service.main import create_app

    with session_scope() as session:
        _, token = create_token(session, "e2e")
    client = TestClient(create_app(migrate=False))
    return client, {"Authorization": f"Bearer {token}"}


def submit(client: TestClient, headers: dict[str, str], spec: dict[str, Any]) -> str:
    response = client.post("/api/v1/jobs", json=spec, headers=headers)
    assert response.status_code in (200, 201), response.text
    return str(response.json()["id"])


def wait_job(
    client: TestClient,
    headers: dict[str, str],
    job_id: str,
    *,
    stack: Stack,
    timeout: float = 40.0,
    statuses: tuple[str, ...] = ("completed",),
) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        body = client.get(f"/api/v1/jobs/{job_id}", headers=headers).json()
        return body if body["status"] in (*statuses, "failed") else None

    body = wait_for(done, timeout=timeout, what=f"job {job_id} to finish", stack=stack)
    assert body["status"] in statuses, body
    return dict(body)


def brute_front(trials: list[dict[str, Any]], objectives: list[tuple[str, str]]) -> set[int]:
    """Numbers of the non-dominated complete feasible trials, by brute force O(n^2)."""
    pts = {}
    for t in trials:
        if t["state"] != "complete" or t["feasible"] is False:
            continue
        pts[t["number"]] = tuple(
            t["values"][n] if d == "minimize" else -t["values"][n] for n, d in objectives
        )
    front = set()
    for i, a in pts.items():
        dominated = any(
            all(x <= y for x, y in zip(b, a, strict=True)) and b != a for b in pts.values()
        )
        if not dominated:
            front.add(i)
    return front


def check_finished_job(
    client: TestClient, headers: dict[str, str], job_id: str, n_trials: int
) -> list[dict[str, Any]]:
    """Exactly n_trials finished, none active, each counted once; front = brute force."""
    trials = client.get(f"/api/v1/jobs/{job_id}/trials?limit=1000", headers=headers).json()
    data = trials["data"]
    assert trials["count"] == n_trials == len(data)
    assert sorted(t["number"] for t in data) == sorted({t["number"] for t in data})
    assert all(t["state"] in ("complete", "pruned", "failed") for t in data), data
    pareto = client.get(f"/api/v1/jobs/{job_id}/pareto", headers=headers).json()
    objectives = [(o["name"], o["direction"]) for o in pareto["objectives"]]
    got = {p["number"] for p in pareto["points"]}
    assert got == brute_front(data, objectives)
    assert got, "the front must not be empty"
    return list(data)


def load_yaml(path: Path) -> dict[str, Any]:
    return dict(yaml.safe_load(path.read_text()))
