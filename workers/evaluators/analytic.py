"""`analytic`: instant objectives computed from the design alone (`search_space.costs`).

Values: ``params`` (stored weights), ``active_params`` (weights one token multiplies with:
MoE counts only the router and the k+S experts it uses), ``flops`` (per token at the job's
workload), ``weight_bytes`` (weight bytes read per step at the workload: the memory-bound
latency proxy; ``info.weight_memory_bytes`` holds the stored size). A trial takes well under
a millisecond, which makes fronts in seconds and makes this the evaluator for testing the
pipeline.

Settings:

* ``delay_s`` (float, default 0, at most 3600): sleep this long before returning. A
  pipeline-testing knob: it keeps a trial in flight long enough to kill its worker, stop a
  job, or measure dispatch under load, with a real (not mocked) evaluator.
"""

from __future__ import annotations

import time
from typing import Any
from typing import ClassVar

from search_space.costs import design_costs
from workers.evaluators.base import EvalOutcome
from workers.evaluators.base import Evaluator
from workers.evaluators.base import TrialContext
from workers.evaluators.base import register_evaluator

__all__ = ["AnalyticEvaluator"]

_MAX_DELAY_S = 3600.0


class AnalyticEvaluator(Evaluator):
    """Exact costs as objectives; no torch, no GPU, runs in the worker process."""

    name: ClassVar[str] = "analytic"

    def validate_settings(self, settings: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(settings) - {"delay_s"})
        if unknown:
            raise ValueError(
                f"analytic evaluator settings: unknown keys {unknown}; known: ['delay_s']"
            )
        delay = settings.get("delay_s", 0.0)
        if not isinstance(delay, int | float) or isinstance(delay, bool):
            raise ValueError(f"`delay_s` must be a number, but got {delay!r}")
        if not 0.0 <= float(delay) <= _MAX_DELAY_S:
            raise ValueError(
                f"`0 <= delay_s <= {_MAX_DELAY_S:g}` must hold, but got delay_s={delay}"
            )
        return dict(settings)

    def evaluate(self, ctx: TrialContext) -> EvalOutcome:
        delay = float(ctx.settings.get("delay_s", 0.0))
        if delay > 0:
            time.sleep(delay)
        costs = design_costs(ctx.design, ctx.workload)
        values = {
            "params": float(costs.params),
            "active_params": float(costs.params_active),
            "flops": float(costs.flops_per_token),
            "weight_bytes": float(costs.weight_bytes),
        }
        return EvalOutcome(
            values=values,
            info={
                "weight_memory_bytes": costs.weight_memory_bytes,
                "params_nonzero": costs.params_nonzero,
                "kv_cache_bytes": costs.kv_cache_bytes,
            },
        )


register_evaluator(AnalyticEvaluator.name, AnalyticEvaluator)
