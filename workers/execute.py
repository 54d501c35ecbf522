"""Runs one trial's evaluation: the seam between the Celery task and the evaluators.

Evaluators with `needs_sandbox = False` (pure Python, e.g. `analytic`) run in-process.
Evaluators that touch torch run in a spawned child (see `workers.sandbox`) so that CUDA never
lives in the forking Celery process and a crash or timeout cannot kill the worker. The child's
wall-clock timeout is ``ctx.time_limit_s``, which the task keeps below its soft time limit.
"""

from __future__ import annotations

from workers.evaluators.base import EvalOutcome
from workers.evaluators.base import TrialContext
from workers.evaluators.base import get_evaluator


def execute(ctx: TrialContext, *, evaluator: str) -> EvalOutcome:
    """Evaluate `ctx` with the named evaluator. Raises `EvalFailure` on a known failure."""
    chosen = get_evaluator(evaluator)
    if not chosen.needs_sandbox:
        return chosen.evaluate(ctx)
    from workers.sandbox import default_sandbox

    return default_sandbox().run(ctx, evaluator=evaluator)
