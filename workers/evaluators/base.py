"""The evaluator interface: how a worker turns a design into a trial's numbers.

A job picks one evaluator by name (`analytic`, `latency`, `proxy`, `library`, ...). The Celery
task (`workers.tasks.evaluate_trial`) re-fetches the trial row, builds a `TrialContext`,
and hands it to `workers.execute.execute`, which runs `get_evaluator(name).evaluate(ctx)`
(in-process, or in a spawned child for evaluators that touch torch; see `needs_sandbox`).

Evaluators never import optuna and never write to the database themselves: they return an
`EvalOutcome` or raise `EvalFailure`; the task writes the row.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any
from typing import ClassVar
from typing import Literal

from pydantic import BaseModel
from pydantic import ConfigDict
from pydantic import Field

from search_space.design import FFNDesign
from search_space.workload import Workload

__all__ = [
    "EvalFailure",
    "EvalOutcome",
    "Evaluator",
    "FailureReason",
    "LatencyStats",
    "Reporter",
    "TrialContext",
    "get_evaluator",
    "register_evaluator",
]

FailureReason = Literal["oom", "compile", "nan", "timeout", "crash", "invalid", "error"]

# Called by an evaluator at each checkpoint with (step, value); returns True when the
# trial should stop early (pruned). Must be picklable: it crosses into the sandbox child.
Reporter = Callable[[int, float], bool]


class LatencyStats(BaseModel):
    """One timing: quantiles in milliseconds plus how and where it was taken."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    p20_ms: float
    p50_ms: float
    p80_ms: float
    samples: int = Field(ge=1)
    method: str = Field(
        description="e.g. do_bench+l2flush, do_bench_cudagraph, torch.utils.benchmark"
    )


class TrialContext(BaseModel):
    """Everything an evaluator needs for one trial attempt (all plain data, picklable)."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    trial_id: str
    job_id: str
    attempt: int = Field(ge=1)
    design: FFNDesign
    workload: Workload
    target: str = Field(description="Target name whose queue this worker serves.")
    objectives: tuple[str, ...] = Field(description="Objective names the job asks for.")
    settings: dict[str, Any] = Field(default_factory=dict, description="Evaluator settings.")
    seed: int = 0
    time_limit_s: float = Field(default=600.0, gt=0)
    reporter: Reporter | None = Field(default=None, exclude=True)

    def report(self, step: int, value: float) -> bool:
        """Record an intermediate value; True means stop now (the trial is pruned)."""
        return self.reporter(step, value) if self.reporter is not None else False


class EvalOutcome(BaseModel):
    """What a finished evaluation returns. `values` holds every objective it can compute."""

    model_config = ConfigDict(extra="forbid")

    values: dict[str, float] = Field(description="Objective/metric name -> value.")
    pruned: bool = False
    latency: LatencyStats | None = None
    layer_latency_ms: list[float] | None = Field(
        default=None, description="Per-layer FFN latency at the job's workload (additive model)."
    )
    target_fingerprint: dict[str, Any] | None = None
    info: dict[str, Any] = Field(default_factory=dict)


class EvalFailure(Exception):
    """A trial that failed for a known reason; it becomes a FAILED trial, worker lives on."""

    def __init__(self, reason: FailureReason, message: str, *, retry: bool = False) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason: FailureReason = reason
        self.message = message
        self.retry = retry


class Evaluator(abc.ABC):
    """Scores one design. Subclasses set `name` and implement `evaluate`."""

    name: ClassVar[str]
    # True when the evaluator touches torch/CUDA: it then runs in a spawned child process,
    # because CUDA does not survive fork() and the Celery pool forks.
    needs_sandbox: ClassVar[bool] = False
    # True when `evaluate` calls `ctx.report(step, value)` (e.g. proxy training): only such
    # evaluators can be pruned, so the API refuses a pruner for the others.
    reports_intermediate: ClassVar[bool] = False

    @abc.abstractmethod
    def evaluate(self, ctx: TrialContext) -> EvalOutcome:
        """Evaluate `ctx.design`. Raise `EvalFailure` for expected failures."""

    def validate_settings(self, settings: dict[str, Any]) -> dict[str, Any]:
        """Check a job's evaluator settings at submit time; raise ValueError naming the field."""
        return settings


_REGISTRY: dict[str, Callable[[], Evaluator]] = {}


def register_evaluator(name: str, factory: Callable[[], Evaluator]) -> None:
    _REGISTRY[name] = factory


def get_evaluator(name: str) -> Evaluator:
    """The evaluator registered under `name`; ValueError naming the known ones otherwise."""
    # Importing the package registers the built-in evaluators.
    import workers.evaluators  # noqa: F401

    if name not in _REGISTRY:
        raise ValueError(f"unknown evaluator {name!r}; known: {sorted(_REGISTRY)}")
    return _REGISTRY[name]()
