"""End to end with real parts: API (TestClient) -> controller and evaluation workers as
`celery worker` subprocesses -> database; on the embedded default (SQLite + SQLAlchemy
transport) and on PostgreSQL + Redis. The front the API returns must equal the
non-dominated set recomputed by brute force from the stored trials.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

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


@pytest.fixture(scope="module", params=["sqlite", "postgres+redis"])
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    tmp: Path = tmp_path_factory.mktemp(f"e2e-{request.param.replace('+', '-')}")
    if request.param == "sqlite":
        with sqlite_stack(tmp) as s:
            s.start_controller()
            s.start("worker", queues="eval.cpu", pool="prefork", concurrency=2)
            yield s
        return
    if not (postgres_available() and redis_available()):
        pytest.fail("PostgreSQL or Redis is not running (scripts/services.sh starts them)")
    with postgres_database() as url, server_stack(tmp, url) as s:
        s.start_controller()
        s.start("worker", queues="eval.cpu", pool="prefork", concurrency=2)
        yield s


@pytest.mark.parametrize("strategy", ["tpe", "nni-tpe"])
def test_job_runs_every_trial_and_front_matches_brute_force(stack: Stack, strategy: str) -> None:
    client, headers = client_with_token()
    n = 12
    job_id = submit(client, headers, job_spec(strategy=strategy, n_trials=n, max_in_flight=3))
    body = wait_job(client, headers, job_id, stack=stack)
    assert body["counts"]["complete"] + body["counts"]["failed"] == n
    data = check_finished_job(client, headers, job_id, n)
    assert all(t["attempt"] == 1 for t in data)
    # Infeasible trials are recorded, never dropped: params > 120k is a broken constraint.
    for t in data:
        if t["state"] == "complete":
            assert t["feasible"] == (t["values"]["params"] <= 120_000)
            assert t["constraints"]["params"] == pytest.approx(t["values"]["params"] - 120_000)
