"""`GET /events`: the caller's jobs list as server-sent events, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import col
from sqlmodel import select
from sqlmodel import update

from service import crud
from service.core.db import session_scope
from service.models import Job
from service.models import Trial
from tests.service.conftest import ServiceEnv
from tests.service.conftest import new_owner
from tests.service.rows import add_job
from tests.service.rows import add_trial
from tests.service.rows import older
from tests.service.rows import set_job_status

API = "/api/v1"

Event = tuple[str, dict[str, Any], str]


def _events(lines: Iterator[str]) -> Iterator[Event | None]:
    """(name, data, id) of each event of an SSE line stream; None for a keep-alive comment
    (so a reader can check its deadline while the stream is idle)."""
    name, data, event_id = "message", "", ""
    for line in lines:
        if line.startswith(":"):
            yield None
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            name = value
        elif field == "data":
            data = value
        elif field == "id":
            event_id = value
        elif line == "" and data:
            yield name, json.loads(data), event_id
            name, data = "message", ""


def _read_until(
    client: TestClient,
    headers: dict[str, str],
    done: Callable[[list[Event]], bool],
    *,
    then: Callable[[], None] | None = None,
    timeout_s: float = 10.0,
) -> list[Event]:
    """Every event of one `/events` connection until `done(events)` holds. `then` runs in a
    thread once the connection is open (as another process's writes would)."""
    received: list[Event] = []
    worker = threading.Thread(target=then) if then is not None else None
    started = time.monotonic()
    with client.stream("GET", f"{API}/events", headers=headers) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        if worker is not None:
            worker.start()
        for event in _events(response.iter_lines()):
            if event is not None:
                received.append(event)
                if done(received):
                    break
            if time.monotonic() - started > timeout_s:
                pytest.fail(f"no matching event within {timeout_s} s; got {received}")
    if worker is not None:
        worker.join()
    return received


def _owner_of(headers: dict[str, str]) -> str:
    from service.auth import hash_token
    from service.models import ApiToken

    token = headers["Authorization"].split(" ", 1)[1]
    with session_scope() as session:
        row = session.exec(select(ApiToken).where(ApiToken.token_hash == hash_token(token))).one()
        return row.owner_id


def _set_trial_state(job_id: str, number: int, state: str) -> None:
    with session_scope() as session:
        trial = session.exec(
            select(Trial).where(Trial.job_id == job_id, Trial.number == number)
        ).one()
        trial.state = state
        trial.values = {"params": 3.0, "flops": 4.0} if state == "complete" else {}
        session.commit()


def _jobs(events: list[Event], name: str = "job") -> list[dict[str, Any]]:
    return [data for event, data, _ in events if event == name]


def test_events_needs_a_token(client: TestClient) -> None:
    for headers in ({}, {"Authorization": "Bearer ffnas_not-a-token"}):
        response = client.get(f"{API}/events", headers=headers)
        assert response.status_code == 401, response.text
        assert response.headers["www-authenticate"] == "Bearer"


def test_snapshot_matches_the_jobs_list(client: TestClient, auth: dict[str, str]) -> None:
    owner = _owner_of(auth)
    first = add_job(owner, name="first")
    add_trial(first, 0, values={"params": 2.0, "flops": 1.0})
    add_trial(first, 1, state="running")
    add_job(owner, status="completed", name="second")
    listed = client.get(f"{API}/jobs", headers=auth).json()["data"]
    events = _read_until(client, auth, lambda got: len(got) == len(listed))
    # Same objects as the list's items (counts and best included), oldest first.
    assert _jobs(events) == sorted(listed, key=lambda job: job["created_at"])
    assert all(event_id for _, _, event_id in events)


def test_trial_state_change_updates_counts(
    backend: str, service_env: ServiceEnv, client: TestClient, auth: dict[str, str]
) -> None:
    owner = _owner_of(auth)
    job_id = add_job(owner)
    add_trial(job_id, 0, state="running")
    add_trial(job_id, 1, state="running")
    changed_at: list[float] = []

    def finish_one() -> None:
        time.sleep(0.3)  # after the snapshot: the change must come as a new event
        _set_trial_state(job_id, 0, "complete")
        changed_at.append(time.monotonic())

    def done(got: list[Event]) -> bool:
        return any(job["counts"]["complete"] == 1 for job in _jobs(got))

    events = _read_until(client, auth, done, then=finish_one)
    arrived = time.monotonic()
    jobs = _jobs(events)
    assert jobs[0]["counts"] == {
        "queued": 0, "running": 2, "complete": 0, "pruned": 0, "failed": 0
    }  # fmt: skip
    assert jobs[-1]["counts"] == {
        "queued": 0, "running": 1, "complete": 1, "pruned": 0, "failed": 0
    }  # fmt: skip
    assert jobs[-1]["best"] == {"params": 3.0, "flops": 4.0}
    # One event per distinct state: the lookback's re-reads are not sent again.
    assert len(jobs) == 2
    interval = service_env.settings.event_poll_interval_s
    # Within a few polls (0.05 s here), with slack for a loaded 2-core machine.
    assert arrived - changed_at[0] < 40 * interval


def test_job_status_new_jobs_and_deletion(client: TestClient, auth: dict[str, str]) -> None:
    owner = _owner_of(auth)
    kept = add_job(owner, name="kept")
    doomed = add_job(owner, name="doomed")
    created: list[str] = []

    def change() -> None:
        time.sleep(0.2)
        set_job_status(kept, "completed")
        created.append(add_job(owner, status="queued", name="new"))
        with session_scope() as session:
            job = session.get(Job, doomed)
            assert job is not None
            crud.delete_job_rows(session=session, job=job)

    events = _read_until(client, auth, lambda got: bool(_jobs(got, "job-deleted")), then=change)
    names = [event for event, _, _ in events]
    assert names[:2] == ["job", "job"]  # the snapshot
    assert {"kept": "completed", "new": "queued"}.items() <= {
        job["name"]: job["status"] for job in _jobs(events)[2:]
    }.items()
    assert _jobs(events, "job-deleted") == [{"id": doomed}]


def test_another_owners_jobs_never_appear(
    backend: str, client: TestClient, auth: dict[str, str]
) -> None:
    mine = add_job(_owner_of(auth), name="mine")
    other_owner, other_auth = new_owner("other")
    theirs = add_job(other_owner, name="theirs")
    add_trial(theirs, 0, state="running")

    def busy_other_owner() -> None:
        time.sleep(0.2)
        add_trial(theirs, 1, state="running")
        _set_trial_state(theirs, 0, "complete")
        set_job_status(theirs, "completed")
        add_job(other_owner, name="theirs too")
        time.sleep(0.3)  # several polls of the other owner's activity, then a sentinel
        add_trial(mine, 0, state="running")

    def sentinel(got: list[Event]) -> bool:
        return any(job["counts"]["running"] == 1 for job in _jobs(got) if job["id"] == mine)

    events = _read_until(client, auth, sentinel, then=busy_other_owner)
    assert {job["id"] for job in _jobs(events)} == {mine}
    assert not _jobs(events, "job-deleted")
    # And the other owner's stream holds only theirs.
    other = _read_until(client, other_auth, lambda got: len(got) == 2)
    assert {job["name"] for job in _jobs(other)} == {"theirs", "theirs too"}


def test_resume_from_last_event_id(client: TestClient, auth: dict[str, str]) -> None:
    owner = _owner_of(auth)
    old = add_job(owner, status="completed", name="old")
    with session_scope() as session:
        # An explicit value wins over the column's onupdate stamp.
        session.exec(update(Job).where(col(Job.id) == old).values(updated_at=older(60)))
        session.commit()
    recent = add_job(owner, name="recent")
    first = _read_until(client, auth, lambda got: len(got) == 2)
    assert [job["id"] for job in _jobs(first)] == [old, recent]
    cursor = first[-1][2]
    # A reconnect re-reads only the lookback (2 s) before its cursor: `recent`, not `old`.
    again = _read_until(client, {**auth, "Last-Event-ID": cursor}, lambda got: len(got) == 1)
    assert [job["id"] for job in _jobs(again)] == [recent]
    later = add_job(owner, name="later")
    more = _read_until(client, {**auth, "Last-Event-ID": cursor}, lambda got: len(got) == 2)
    assert {job["id"] for job in _jobs(more)} == {recent, later}
