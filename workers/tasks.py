"""`evaluate_trial(trial_id)`: the one task evaluation workers run (queue ``eval.<target>``).

The task takes a row id, re-fetches the row, and is idempotent under at-least-once
delivery (reliability.md §1-2):

1. **Claim** with a conditional UPDATE: ``attempt + 1``, state ``running``, only if the
   row is still as read (same state and attempt) and is ``queued``, or ``running`` under a
   dead worker (stale heartbeat, or a pid on this host that no longer exists). A running
   trial with a live worker is someone else's: the duplicate delivery is dropped. When the
   attempts cap is reached the trial is failed ("attempts exhausted") instead of looping.
2. **Heartbeat** from a thread while the evaluator runs; the controller's reaper re-queues
   trials whose heartbeat goes stale (a worker killed outright).
3. **Evaluate** through `workers.execute.execute` (in-process or in the sandbox child).
4. **Write** the result with an UPDATE keyed by (trial id, attempt) and state ``running``,
   so a superseded attempt cannot report, then enqueue ``service.tasks.record`` on the
   controller queue. Nothing here waits on another task.

Workers never import optuna: the controller turns rows into tells.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
import traceback
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy import update
from sqlmodel import col

from search_space.design import FFNDesign
from service.core.config import get_settings
from service.core.db import session_scope
from service.core.sqltypes import utcnow
from service.models import Job
from service.models import Trial
from service.spec import JobSpec
from service.stored_spec import load_spec
from workers.celery_app import CONTROLLER_QUEUE
from workers.celery_app import app
from workers.celery_app import eval_queue
from workers.celery_app import send_task
from workers.evaluators.base import EvalFailure
from workers.evaluators.base import EvalOutcome
from workers.evaluators.base import TrialContext
from workers.execute import execute
from workers.reporter import TrialReporter

__all__ = ["RECORD_TASK", "app", "claim", "evaluate_trial", "run_trial", "worker_id"]

logger = logging.getLogger(__name__)

RECORD_TASK = "service.tasks.record"
_MAX_ERROR_CHARS = 20_000


def worker_id() -> str:
    """``host:pid`` of this process, stored on the trial it runs."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _worker_dead(worker: str | None) -> bool:
    # A pool child killed mid-trial leaves a running row whose heartbeat is still fresh;
    # when that pid was on this host and is gone, the redelivered message may claim at once
    # instead of waiting for the heartbeat grace.
    if not worker or ":" not in worker:
        return False
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def claim(trial_id: str) -> tuple[str, Trial | None, JobSpec | None]:
    """Claim `trial_id` for this process: ``("claimed"|"exhausted"|"skip", row, spec)``."""
    settings = get_settings()
    now = utcnow()
    cutoff = now - dt.timedelta(seconds=settings.heartbeat_grace_s)
    with session_scope() as session:
        trial = session.get(Trial, trial_id)
        if trial is None:
            return "skip", None, None  # deleted with its job
        job = session.get(Job, trial.job_id)
        if job is None:
            return "skip", None, None
        if trial.state == "queued":
            takeable = True
        elif trial.state == "running":
            beat = trial.heartbeat_at
            takeable = (beat is None or beat < cutoff) or _worker_dead(trial.worker)
        else:
            takeable = False
        if not takeable:
            return "skip", None, None
        guard = (
            col(Trial.id) == trial_id,
            col(Trial.state) == trial.state,
            col(Trial.attempt) == trial.attempt,
        )
        if trial.attempt >= trial.max_attempts:
            done = session.execute(
                update(Trial)
                .where(*guard)
                .values(
                    state="failed",
                    reason="crash",
                    error=f"attempts exhausted: {trial.attempt} of {trial.max_attempts} "
                    f"attempts started and none finished (last worker {trial.worker})",
                    finished_at=now,
                )
            )
            session.commit()
            return ("exhausted" if done.rowcount == 1 else "skip"), None, None  # type: ignore[attr-defined]
        done = session.execute(
            update(Trial)
            .where(*guard)
            .values(
                state="running",
                attempt=trial.attempt + 1,
                heartbeat_at=now,
                started_at=now,
                worker=worker_id(),
                stop_requested=False,
                intermediate=[],
            )
        )
        session.commit()
        if done.rowcount != 1:  # type: ignore[attr-defined]
            return "skip", None, None  # another delivery claimed it first
        session.refresh(trial)
        spec = load_spec(job.spec)
        session.expunge(trial)
        return "claimed", trial, spec


class _Heartbeat:
    """Bumps `heartbeat_at` of one attempt every `interval` seconds until stopped."""

    def __init__(self, trial_id: str, attempt: int, interval: float) -> None:
        self._trial_id = trial_id
        self._attempt = attempt
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="trial-heartbeat", daemon=True)

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                with session_scope() as session:
                    session.execute(
                        update(Trial)
                        .where(
                            col(Trial.id) == self._trial_id,
                            col(Trial.attempt) == self._attempt,
                            col(Trial.state) == "running",
                        )
                        .values(heartbeat_at=utcnow())
                    )
                    session.commit()
            except Exception:  # noqa: BLE001 - a missed beat is retried next interval
                logger.warning("heartbeat of trial %s failed", self._trial_id, exc_info=True)


def _result_values(outcome: EvalOutcome, spec: JobSpec) -> dict[str, Any]:
    values = dict(outcome.values)
    needed = [*spec.objective_names, *(c.name for c in spec.constraints)]
    missing = [name for name in needed if name not in values]
    if missing:
        raise EvalFailure(
            "invalid",
            f"evaluator {spec.evaluator.name!r} returned no {missing} (it returned "
            f"{sorted(values)}); the job's objectives and constraints need them",
        )
    constraints = {c.name: float(values[c.name]) - c.max for c in spec.constraints}
    row: dict[str, Any] = {
        "state": "pruned" if outcome.pruned else "complete",
        "values": values,
        "constraints": constraints,
        "feasible": all(v <= 0 for v in constraints.values()),
        "target_fingerprint": outcome.target_fingerprint,
        "layer_latency_ms": outcome.layer_latency_ms,
    }
    if outcome.latency is not None:
        row["latency_p20_ms"] = outcome.latency.p20_ms
        row["latency_p50_ms"] = outcome.latency.p50_ms
        row["latency_p80_ms"] = outcome.latency.p80_ms
    return row


def _write(trial_id: str, attempt: int, values: dict[str, Any]) -> bool:
    with session_scope() as session:
        done = session.execute(
            update(Trial)
            .where(
                col(Trial.id) == trial_id,
                col(Trial.attempt) == attempt,
                col(Trial.state) == "running",
            )
            .values(**values, finished_at=utcnow())
        )
        session.commit()
        return bool(done.rowcount == 1)  # type: ignore[attr-defined]


def _requeue(trial_id: str, attempt: int, target: str) -> bool:
    with session_scope() as session:
        done = session.execute(
            update(Trial)
            .where(
                col(Trial.id) == trial_id,
                col(Trial.attempt) == attempt,
                col(Trial.state) == "running",
            )
            .values(state="queued", worker=None)
        )
        session.commit()
    if done.rowcount == 1:  # type: ignore[attr-defined]
        send_task("workers.tasks.evaluate_trial", [trial_id], queue=eval_queue(target))
        return True
    return False


def run_trial(trial_id: str) -> str:
    """Claim, evaluate and record one trial; returns what happened (for logs and tests)."""
    kind, trial, spec = claim(trial_id)
    if kind == "exhausted":
        send_task(RECORD_TASK, [trial_id], queue=CONTROLLER_QUEUE)
        return kind
    if kind != "claimed":
        return kind
    assert trial is not None and spec is not None
    settings = get_settings()
    attempt = trial.attempt
    with _Heartbeat(trial_id, attempt, settings.heartbeat_interval_s):
        try:
            ctx = TrialContext(
                trial_id=trial_id,
                job_id=trial.job_id,
                attempt=attempt,
                design=FFNDesign.model_validate(trial.design),
                workload=spec.workload,
                target=spec.target,
                objectives=spec.objective_names,
                # The job's constraints ride along: `proxy` skips training over budget.
                settings={
                    **spec.evaluator.settings,
                    "constraints": {c.name: c.max for c in spec.constraints},
                },
                seed=(spec.strategy.seed or 0) + trial.number,
                time_limit_s=spec.trial_time_limit_s,
                reporter=TrialReporter(trial_id, attempt),
            )
            values = _result_values(execute(ctx, evaluator=spec.evaluator.name), spec)
        except EvalFailure as failure:
            if failure.retry and attempt < trial.max_attempts:
                if _requeue(trial_id, attempt, spec.target):
                    logger.info("trial %s: %s; retrying", trial_id, failure)
                    return "retried"
            values = {"state": "failed", "reason": failure.reason, "error": failure.message}
        except SoftTimeLimitExceeded:
            values = {
                "state": "failed",
                "reason": "timeout",
                "error": f"the task's soft time limit ({settings.task_soft_time_limit_s:g} s) "
                "passed",
            }
        except Exception as exc:  # noqa: BLE001 - any other error fails the trial, not the worker
            logger.exception("trial %s failed", trial_id)
            text = "".join(traceback.format_exception(exc))
            values = {"state": "failed", "reason": "error", "error": text[-_MAX_ERROR_CHARS:]}
    if not _write(trial_id, attempt, values):
        logger.info("trial %s attempt %d superseded; its result is dropped", trial_id, attempt)
        return "superseded"
    send_task(RECORD_TASK, [trial_id], queue=CONTROLLER_QUEUE)
    return str(values["state"])


@app.task(name="workers.tasks.evaluate_trial", acks_late=True, ignore_result=True)
def evaluate_trial(trial_id: str) -> str:
    """Evaluate one trial by row id (see the module docstring for the delivery rules)."""
    return run_trial(trial_id)
