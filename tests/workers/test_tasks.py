"""`workers.tasks` delivery rules, in-process on a real SQLite database and broker file.

The claim is conditional (a live attempt is never taken over, a dead one is), the attempts
cap stops a poison trial, a superseded attempt cannot write its result or report values,
and the analytic evaluator's values equal `search_space.costs`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import update

from search_space.costs import design_costs
from search_space.design import FFNDesign
from service.core.db import session_scope
from service.crud import create_job
from service.models import Trial
from service.spec import JobSpec
from tests.service.e2e_helpers import job_spec
from tests.service.stack import Stack
from tests.service.stack import sqlite_stack
from workers import tasks
from workers.reporter import TrialReporter

DESIGN = {
    "dims": {
        "d_model": 64,
        "n_layers": 2,
        "n_heads": 4,
        "n_kv_heads": 2,
        "vocab": 256,
        "seq_len": 256,
    },
    "layers": [{"kind": "dense", "width": 128}, {"kind": "noop"}],
}


@pytest.fixture()
def stack(tmp_path: Path) -> Iterator[Stack]:
    with sqlite_stack(tmp_path) as s:
        yield s


def _trial(stack: Stack, *, max_attempts: int = 3, **spec_extra: object) -> str:
    del stack
    spec = JobSpec.model_validate(job_spec(strategy="random", n_trials=5, **spec_extra))
    with session_scope() as session:
        job = create_job(session=session, spec=spec, owner_id="o" * 32)
        trial = Trial(job_id=job.id, number=0, design=DESIGN, max_attempts=max_attempts)
        session.add(trial)
        session.commit()
        return trial.id


def _row(trial_id: str) -> Trial:
    with session_scope() as session:
        row = session.get(Trial, trial_id)
        assert row is not None
        return row


def _set(trial_id: str, **values: object) -> None:
    with session_scope() as session:
        session.execute(update(Trial).where(Trial.id == trial_id).values(**values))  # type: ignore[arg-type]
        session.commit()


def test_run_trial_writes_analytic_values_equal_to_costs(stack: Stack) -> None:
    trial_id = _trial(stack)
    assert tasks.run_trial(trial_id) == "complete"
    row = _row(trial_id)
    costs = design_costs(
        FFNDesign.model_validate(DESIGN),
        JobSpec.model_validate(job_spec(strategy="random", n_trials=5)).workload,
    )
    assert row.values["params"] == costs.params
    assert row.values["flops"] == costs.flops_per_token
    assert row.constraints == {"params": costs.params - 120_000}
    assert row.feasible is (costs.params <= 120_000)
    assert (row.state, row.attempt) == ("complete", 1)
    # A duplicate delivery of a finished trial does nothing.
    assert tasks.run_trial(trial_id) == "skip"
    assert _row(trial_id).attempt == 1


def test_live_attempt_is_not_taken_over_but_a_stale_one_is(stack: Stack) -> None:
    trial_id = _trial(stack)
    now = dt.datetime.now(dt.UTC)
    _set(trial_id, state="running", attempt=1, heartbeat_at=now, worker="elsewhere:1")
    assert tasks.claim(trial_id)[0] == "skip"
    _set(trial_id, heartbeat_at=now - dt.timedelta(seconds=60))
    kind, row, _ = tasks.claim(trial_id)
    assert kind == "claimed" and row is not None and row.attempt == 2


def test_dead_local_worker_is_taken_over_at_once(stack: Stack) -> None:
    import socket

    trial_id = _trial(stack)
    # pid 2**22 + 7 is above Linux's default pid_max: no such process exists.
    _set(
        trial_id,
        state="running",
        attempt=1,
        heartbeat_at=dt.datetime.now(dt.UTC),
        worker=f"{socket.gethostname()}:{2**22 + 7}",
    )
    assert tasks.claim(trial_id)[0] == "claimed"


def test_attempts_cap_fails_a_poison_trial(stack: Stack) -> None:
    trial_id = _trial(stack, max_attempts=2)
    _set(trial_id, state="queued", attempt=2)
    assert tasks.run_trial(trial_id) == "exhausted"
    row = _row(trial_id)
    assert (row.state, row.reason) == ("failed", "crash")
    assert "attempts exhausted: 2 of 2" in str(row.error)


def test_superseded_attempt_cannot_write_or_report(stack: Stack) -> None:
    trial_id = _trial(stack)
    kind, row, _ = tasks.claim(trial_id)
    assert kind == "claimed" and row is not None
    reporter = TrialReporter(trial_id, 1)
    assert reporter(1, 0.5) is False
    assert _row(trial_id).intermediate == [[1, 0.5]]
    _set(trial_id, stop_requested=True)
    assert reporter(2, 0.4) is True  # the pruner asked it to stop
    _set(trial_id, attempt=2, stop_requested=False)  # the reaper gave it to another worker
    assert reporter(3, 0.3) is True
    assert tasks._write(trial_id, 1, {"state": "complete", "values": {"params": 1.0}}) is False
    assert _row(trial_id).state == "running"
    assert tasks._write(trial_id, 2, {"state": "complete", "values": {"params": 1.0}}) is True


def test_missing_objective_fails_the_trial_as_invalid(stack: Stack) -> None:
    trial_id = _trial(stack, objectives=[{"name": "latency_ms"}])
    assert tasks.run_trial(trial_id) == "failed"
    row = _row(trial_id)
    assert row.reason == "invalid"
    assert "latency_ms" in str(row.error)


def test_analytic_settings_are_checked() -> None:
    from workers.evaluators.base import get_evaluator

    evaluator = get_evaluator("analytic")
    assert evaluator.validate_settings({"delay_s": 0.5}) == {"delay_s": 0.5}
    with pytest.raises(ValueError, match="delay_s"):
        evaluator.validate_settings({"delay_s": -1})
    with pytest.raises(ValueError, match="unknown keys"):
        evaluator.validate_settings({"delay": 1})
