"""The API's caches of fronts and best values: hits while nothing completes, invalidated by
every new complete trial, and equal to a recomputation from the stored trials."""

from __future__ import annotations

import random

import pytest
from fastapi.testclient import TestClient

from service.read_cache import VersionedCache
from tests.service.rows import add_job
from tests.service.rows import add_trial
from tests.service.test_pareto import brute_front

API = "/api/v1"


def _owner(client: TestClient, auth: dict[str, str]) -> str:
    from service.auth import owner_for_token
    from service.core.db import session_scope

    with session_scope() as session:
        owner = owner_for_token(session, auth["Authorization"].split(" ", 1)[1])
    assert owner is not None
    return owner


def _expected_front(client: TestClient, auth: dict[str, str], job_id: str) -> list[int]:
    """The non-dominated complete feasible trials (params max, flops min), by brute force."""
    rows = client.get(
        f"{API}/jobs/{job_id}/trials", params={"state": "complete"}, headers=auth
    ).json()["data"]
    eligible = [t for t in rows if t["feasible"] is not False]
    vectors: list[tuple[float, ...]] = [
        (-t["values"]["params"], t["values"]["flops"]) for t in eligible
    ]
    return sorted(eligible[i]["number"] for i in brute_front(vectors))


def test_versioned_cache_returns_only_the_stored_version_and_evicts_lru() -> None:
    cache: VersionedCache[str] = VersionedCache(max_entries=2)
    cache.put("a", 1, "a1")
    assert cache.get("a", 1) == "a1"
    assert cache.get("a", 2) is None  # a newer version is a miss
    cache.put("b", 1, "b1")
    assert cache.get("a", 1) == "a1"  # `a` is now the most recently used
    cache.put("c", 1, "c1")
    assert cache.get("b", 1) is None and cache.get("a", 1) == "a1" and len(cache) == 2
    cache.discard("a")
    assert cache.get("a", 1) is None
    with pytest.raises(ValueError, match="max_entries >= 1"):
        VersionedCache(max_entries=0)


def test_front_and_best_follow_every_new_complete_trial(
    backend: str, client: TestClient, auth: dict[str, str]
) -> None:
    objectives = [
        {"name": "params", "direction": "maximize"},
        {"name": "flops", "direction": "minimize"},
    ]
    job_id = add_job(_owner(client, auth), objectives=objectives)
    rng = random.Random(3)
    number = 0
    seen_fronts: list[list[int]] = []
    for _ in range(6):
        for _ in range(4):
            add_trial(
                job_id,
                number,
                values={"params": rng.randint(1, 30), "flops": rng.randint(1, 30)},
                state=rng.choice(["complete", "complete", "failed", "running"]),
                feasible=rng.choice([True, True, False]),
            )
            number += 1
        first = client.get(f"{API}/jobs/{job_id}/pareto", headers=auth)
        again = client.get(f"{API}/jobs/{job_id}/pareto", headers=auth)  # a cache hit
        assert first.status_code == 200 and again.content == first.content
        front = [p["number"] for p in first.json()["points"]]
        assert front == _expected_front(client, auth, job_id)
        seen_fronts.append(front)
    # A point that dominates everything: the cached front must give way to it at once.
    add_trial(job_id, number, values={"params": 1000, "flops": 0.5}, feasible=True)
    body = client.get(f"{API}/jobs/{job_id}/pareto", headers=auth).json()
    assert [p["number"] for p in body["points"]] == [number]
    assert body["hypervolume"][-1]["number"] == number
    listed = client.get(f"{API}/jobs", headers=auth).json()["data"]
    assert [j["best"] for j in listed if j["id"] == job_id] == [{"params": 1000, "flops": 0.5}]
    assert len({tuple(f) for f in seen_fronts}) > 1  # the fronts did change along the way


def test_trials_that_do_not_complete_leave_front_and_best_alone(
    client: TestClient, auth: dict[str, str]
) -> None:
    job_id = add_job(
        _owner(client, auth),
        objectives=[
            {"name": "params", "direction": "maximize"},
            {"name": "flops", "direction": "minimize"},
        ],
    )
    add_trial(job_id, 0, values={"params": 10, "flops": 5})
    before = client.get(f"{API}/jobs/{job_id}/pareto", headers=auth).content
    best = client.get(f"{API}/jobs/{job_id}", headers=auth).json()["best"]
    add_trial(job_id, 1, values={"params": 99, "flops": 1}, state="failed")
    add_trial(job_id, 2, values={"params": 99, "flops": 1}, feasible=False)
    assert client.get(f"{API}/jobs/{job_id}/pareto", headers=auth).content == before
    assert client.get(f"{API}/jobs/{job_id}", headers=auth).json()["best"] == best
    assert best == {"params": 10, "flops": 5}
