"""The picklable `Reporter` an evaluator calls at each checkpoint (docs/contracts.md).

The worker never decides to prune. `TrialReporter(step, value)` appends ``[step, value]`` to
`Trial.intermediate` only while the row still belongs to this attempt, enqueues
``service.tasks.check_prune(trial_id)`` on the controller queue, and returns the row's
`stop_requested`, which the controller's pruner sets. A reporter of a superseded attempt
(the trial was re-queued after this worker went silent) gets True: stop, nobody wants it.

It holds only plain data, so it pickles into the sandbox child; the child opens its own
database engine and broker connection from `Settings`.
"""

from __future__ import annotations

import logging
import math

from sqlalchemy import update
from sqlmodel import col

from service.core.db import session_scope
from service.models import Trial
from workers.celery_app import CONTROLLER_QUEUE
from workers.celery_app import send_task

__all__ = ["CHECK_PRUNE_TASK", "TrialReporter"]

logger = logging.getLogger(__name__)

CHECK_PRUNE_TASK = "service.tasks.check_prune"


class TrialReporter:
    """Report intermediate values of one attempt of one trial."""

    def __init__(self, trial_id: str, attempt: int) -> None:
        self.trial_id = trial_id
        self.attempt = attempt

    def __call__(self, step: int, value: float) -> bool:
        if not math.isfinite(value):
            raise ValueError(
                f"an intermediate value must be finite, but got {value} at step {step}"
            )
        with session_scope() as session:
            # Read-modify-write under the (id, attempt, state) guard: only this attempt's
            # worker appends, and it appends from one thread, so no update is lost.
            trial = session.get(Trial, self.trial_id)
            if trial is None or trial.attempt != self.attempt or trial.state != "running":
                return True
            points = [*trial.intermediate, [int(step), float(value)]]
            done = session.execute(
                update(Trial)
                .where(
                    col(Trial.id) == self.trial_id,
                    col(Trial.attempt) == self.attempt,
                    col(Trial.state) == "running",
                )
                .values(intermediate=points)
            )
            session.commit()
            if done.rowcount != 1:  # type: ignore[attr-defined]
                return True
            stop = bool(trial.stop_requested)
        if not stop:
            send_task(CHECK_PRUNE_TASK, [self.trial_id], queue=CONTROLLER_QUEUE)
        return stop
