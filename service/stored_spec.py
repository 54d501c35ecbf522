"""Read back a job's stored spec without re-checking server limits.

`JobSpec` validators compare against the *current* settings (n_trials, time limits...). A
job accepted yesterday must still run after an operator lowers a limit, so the controller
and workers rebuild the stored spec without those checks: the sub-models are validated
(they carry no server limits) and the top level is constructed as stored.
"""

from __future__ import annotations

from typing import Any

from search_space.workload import Workload
from service.spec import ConstraintSpec
from service.spec import EvaluatorSpec
from service.spec import JobSpec
from service.spec import ObjectiveSpec
from service.spec import StrategySpec

__all__ = ["load_spec"]


def load_spec(data: dict[str, Any]) -> JobSpec:
    """The `JobSpec` of a stored job (the API stored `JobSpec.model_dump(mode="json")`)."""
    defaults = {
        name: field.get_default(call_default_factory=True)
        for name, field in JobSpec.model_fields.items()
        if not field.is_required()
    }
    merged = {**defaults, **data}
    evaluator = merged["evaluator"]
    if isinstance(evaluator, dict):
        evaluator = EvaluatorSpec.model_construct(
            name=evaluator.get("name", "analytic"), settings=dict(evaluator.get("settings", {}))
        )
    fields = {
        **merged,
        "workload": Workload.model_validate(merged["workload"]),
        "evaluator": evaluator,
        "objectives": [ObjectiveSpec.model_validate(o) for o in merged["objectives"]],
        "constraints": [ConstraintSpec.model_validate(c) for c in merged["constraints"]],
        "strategy": StrategySpec.model_validate(merged["strategy"]),
    }
    return JobSpec.model_construct(**fields)
