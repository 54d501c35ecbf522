"""Failures with real processes on the embedded default (SQLite + SQLAlchemy transport).

* an evaluation worker SIGKILLed mid-trial (the whole worker, and only its pool child): the
  trial runs again (attempt 2) and finishes, nothing is counted twice, the job completes;
* the controller SIGKILLed mid-job and restarted: the job completes with exactly n_trials
  finished trials, none left running, and the Optuna study agrees with the rows.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from typing import Any

import pytest
from sqlmodel import select

from service.core.db import session_scope
from service.models import Trial
from tests.service.e2e_helpers import check_finished_job
from tests.service.e2e_helpers import client_with_token
from tests.service.e2e_helpers import job_spec
from tests.service.e2e_helpers import submit
from tests.service.e2e_helpers import wait_job
from tests.service.stack import Stack
from tests.service.stack import postgres_available
from tests.service.stack import postgres_database
from tests.service.stack import redis_available
from tests.service.stack import server_stack
from tests.service.stack import sqlite_stack
from tests.service.stack import wait_for


@pytest.fixture()
def stack(tmp_path: Any) -> Iterator[Stack]:
    with sqlite_stack(tmp_path) as s:
        s.start_controller()
        yield s


@pytest.fixture(params=["sqlite", "postgres+redis"])
def any_stack(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Stack]:
    if request.param == "sqlite":
        with sqlite_stack(tmp_path) as s:
            s.start_controller()
            yield s
        return
    if not (postgres_available() and redis_available()):
        pytest.fail("PostgreSQL or Redis is not running (scripts/services.sh starts them)")
    with postgres_database() as url, server_stack(tmp_path, url) as s:
        s.start_controller()
        yield s


def _trials(job_id: str) -> list[Trial]:
    with session_scope() as session:
        return list(session.exec(select(Trial).where(Trial.job_id == job_id)).all())


def _running(job_id: str) -> Trial | None:
    running = [t for t in _trials(job_id) if t.state == "running" and t.worker]
    return running[0] if running else None


def test_worker_killed_mid_trial_is_rerun_by_the_reaper(any_stack: Stack) -> None:
    # A solo worker killed outright: the SQLAlchemy transport never redelivers its message
    # (it has no visibility timeout) and Redis only after its visibility timeout (30 s here),
    # so the controller's reaper re-queues the trial once its heartbeat is stale (1.5 s).
    # Redis's late redelivery then finds the trial finished and is dropped.
    stack = any_stack
    stack.start("worker", queues="eval.cpu")
    client, headers = client_with_token()
    n = 4
    job_id = submit(
        client, headers, job_spec(strategy="random", n_trials=n, max_in_flight=1, delay_s=1.5)
    )
    victim = wait_for(lambda: _running(job_id), timeout=20, what="a running trial", stack=stack)
    stack.kill("worker")
    stack.start("worker2", queues="eval.cpu")
    wait_job(client, headers, job_id, stack=stack, timeout=40)
    data = check_finished_job(client, headers, job_id, n)
    again = next(t for t in data if t["id"] == victim.id)
    assert again["state"] == "complete"
    assert again["attempt"] == 2
    assert sum(t["state"] == "complete" for t in data) == n


def test_pool_child_killed_mid_trial_is_redelivered(stack: Stack) -> None:
    # Only the prefork child dies: Celery re-queues the message (reject_on_worker_lost) and
    # the next child claims the trial at once because the dead pid was on this host.
    stack.start("worker", queues="eval.cpu", pool="prefork", concurrency=1)
    client, headers = client_with_token()
    n = 3
    job_id = submit(
        client, headers, job_spec(strategy="tpe", n_trials=n, max_in_flight=1, delay_s=1.5)
    )
    victim = wait_for(lambda: _running(job_id), timeout=20, what="a running trial", stack=stack)
    child = int(str(victim.worker).rpartition(":")[2])
    assert child != stack.procs["worker"].pid
    os.kill(child, signal.SIGKILL)
    wait_job(client, headers, job_id, stack=stack, timeout=40)
    data = check_finished_job(client, headers, job_id, n)
    again = next(t for t in data if t["id"] == victim.id)
    assert (again["state"], again["attempt"]) == ("complete", 2)


def test_controller_killed_and_restarted_resumes_the_job(stack: Stack) -> None:
    import optuna

    from service.core.config import get_settings
    from service.strategies import rdb_storage

    stack.start("worker", queues="eval.cpu", pool="prefork", concurrency=2)
    client, headers = client_with_token()
    n = 10
    job_id = submit(
        client, headers, job_spec(strategy="tpe", n_trials=n, max_in_flight=2, delay_s=0.4)
    )
    wait_for(
        lambda: sum(t.state == "complete" for t in _trials(job_id)) >= 3,
        timeout=30,
        what="3 finished trials",
        stack=stack,
    )
    stack.kill("controller")
    # Trials in flight finish while no controller listens; their `record` waits in the queue.
    wait_for(
        lambda: not any(t.state in ("queued", "running") for t in _trials(job_id)),
        timeout=20,
        what="in-flight trials to finish",
        stack=stack,
    )
    stack.start_controller()
    wait_job(client, headers, job_id, stack=stack, timeout=40)
    data = check_finished_job(client, headers, job_id, n)
    assert not any(t["state"] in ("queued", "running") for t in data)
    study = optuna.load_study(
        study_name=f"job-{job_id}", storage=rdb_storage(get_settings().database_url)
    )
    told = {t.number: t.state for t in study.get_trials(deepcopy=False)}
    assert all(state.is_finished() for state in told.values()), told
    assert {t["number"] for t in data} <= set(told)
    assert sum(s == optuna.trial.TrialState.COMPLETE for s in told.values()) == sum(
        t["state"] == "complete" for t in data
    )
