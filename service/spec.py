"""`JobSpec`: what a client submits to start a search (the body of ``POST /api/v1/jobs``).

Every model here forbids unknown fields, so owner, status, state or attempts cannot be set
by a client. Errors name the field and the rule; FastAPI turns them into its 422 list form.
Limits (n_trials, in-flight trials, layers of a space) come from `Settings`.
"""

from __future__ import annotations

from typing import Any
from typing import Literal

from pydantic import BaseModel
from pydantic import ConfigDict
from pydantic import Field
from pydantic import ValidationError
from pydantic import ValidationInfo
from pydantic import field_validator
from pydantic import model_validator

from search_space.workload import Workload
from service.core.config import get_settings

__all__ = [
    "METRIC_NAMES",
    "ConstraintSpec",
    "EvaluatorSpec",
    "JobSpec",
    "MetricName",
    "ObjectiveSpec",
    "StrategySpec",
]

MetricName = Literal[
    "params", "active_params", "flops", "weight_bytes", "latency_ms", "bpb", "kl_div"
]
METRIC_NAMES: tuple[str, ...] = (
    "params",
    "active_params",
    "flops",
    "weight_bytes",
    "latency_ms",
    "bpb",
    "kl_div",
)
StrategyName = Literal[
    "tpe",
    "nsga2",
    "nsga3",
    "gp",
    "random",
    "nni-tpe",
    "nni-evolution",
    "nni-anneal",
    "nni-random",
    "exact",
]
PrunerName = Literal["none", "median", "successive_halving", "hyperband", "dominated"]
# Optuna refuses `trial.should_prune()` in multi-objective studies, so these need one objective.
_SINGLE_OBJECTIVE_PRUNERS = frozenset({"median", "successive_halving", "hyperband"})


class _Input(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ObjectiveSpec(_Input):
    name: MetricName
    direction: Literal["minimize", "maximize"] = "minimize"


class ConstraintSpec(_Input):
    """An upper bound: a trial is feasible iff ``value - max <= 0`` (Optuna's convention)."""

    name: MetricName
    max: float


class StrategySpec(_Input):
    name: StrategyName = "tpe"
    seed: int | None = None
    pruner: PrunerName = "none"
    options: dict[str, Any] = Field(default_factory=dict)


class EvaluatorSpec(_Input):
    name: str = Field(default="analytic", min_length=1, max_length=64)
    settings: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known_and_valid(self) -> EvaluatorSpec:
        # Imported here: the registry imports every built-in evaluator module.
        from workers.evaluators.base import get_evaluator

        evaluator = get_evaluator(self.name)  # ValueError naming the known evaluators
        normalised = evaluator.validate_settings(dict(self.settings))
        if normalised != self.settings:
            object.__setattr__(self, "settings", normalised)
        return self


_LIMIT_SETTINGS = {"n_trials": "max_n_trials", "max_in_flight": "max_in_flight"}


def _limit(name: str) -> int:
    return int(getattr(get_settings(), name))


class JobSpec(_Input):
    """A search job as submitted. See docs/api.md for an example."""

    name: str = Field(min_length=1, max_length=200)
    space: dict[str, Any] | None = Field(
        default=None, description="A search_space.space.SearchSpace document."
    )
    library: dict[str, Any] | None = Field(
        default=None, description="A block library (Puzzle layout) for strategy 'exact'."
    )
    target: str = Field(default="cpu", pattern=r"^[a-z0-9._-]{1,64}$")
    workload: Workload = Field(default_factory=Workload)
    evaluator: EvaluatorSpec = Field(default_factory=EvaluatorSpec)
    objectives: list[ObjectiveSpec] = Field(min_length=1, max_length=3)
    constraints: list[ConstraintSpec] = Field(default_factory=list, max_length=7)
    strategy: StrategySpec = Field(default_factory=StrategySpec)
    n_trials: int = Field(ge=1)
    max_in_flight: int = Field(default=4, ge=1)
    time_budget_s: float | None = Field(default=None, gt=0)
    max_attempts: int = Field(default=3, ge=1, le=10)
    trial_time_limit_s: float = Field(default=600.0, ge=1, le=86400)

    @field_validator("n_trials", "max_in_flight")
    @classmethod
    def _within_limit(cls, value: int, info: ValidationInfo) -> int:
        setting = _LIMIT_SETTINGS[str(info.field_name)]
        limit = _limit(setting)
        if value > limit:
            raise ValueError(
                f"`{info.field_name} <= {limit}` must hold (server limit "
                f"FFNAS_{setting.upper()}), but got {value}"
            )
        return value

    @field_validator("trial_time_limit_s")
    @classmethod
    def _below_task_limit(cls, value: float) -> float:
        soft = get_settings().task_soft_time_limit_s
        if value > soft:
            raise ValueError(
                f"`trial_time_limit_s <= {soft:g}` must hold (the worker's soft task time "
                f"limit, FFNAS_TASK_SOFT_TIME_LIMIT_S), but got {value:g}"
            )
        return value

    @field_validator("objectives", "constraints")
    @classmethod
    def _unique_names(
        cls, value: list[ObjectiveSpec] | list[ConstraintSpec], info: ValidationInfo
    ) -> Any:
        names = [item.name for item in value]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(
                f"{info.field_name} must have unique names, but got {duplicates} more than once"
            )
        return value

    @field_validator("space")
    @classmethod
    def _valid_space(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return None
        from search_space.space import SearchSpace

        try:
            space = SearchSpace.model_validate(value)
        except ValidationError as exc:
            raise ValueError(f"invalid design space: {_brief(exc)}") from None
        n_layers = space.dims.n_layers
        if n_layers > _limit("max_space_layers"):
            raise ValueError(
                f"`dims.n_layers <= {_limit('max_space_layers')}` must hold for a search "
                f"space (server limit FFNAS_MAX_SPACE_LAYERS), but got {n_layers}"
            )
        return value

    @field_validator("library")
    @classmethod
    def _valid_library(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return None
        from search_space.library import BlockLibrary

        try:
            library = BlockLibrary.from_dict(value)
        except (ValidationError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"invalid block library: {exc}") from None
        n_layers = library.n_layers
        if n_layers > _limit("max_space_layers"):
            raise ValueError(
                f"`n_layers <= {_limit('max_space_layers')}` must hold for a block library "
                f"(server limit FFNAS_MAX_SPACE_LAYERS), but got {n_layers}"
            )
        return value

    @model_validator(mode="after")
    def _consistent(self) -> JobSpec:
        exact = self.strategy.name == "exact"
        if (self.space is None) == (self.library is None):
            raise ValueError(
                "exactly one of `space` and `library` must be given, but got "
                f"space={'set' if self.space is not None else 'null'}, "
                f"library={'set' if self.library is not None else 'null'}"
            )
        if exact != (self.library is not None):
            raise ValueError(
                "`library` goes with strategy 'exact' and `space` with every other strategy, "
                f"but got strategy={self.strategy.name!r} with "
                f"{'library' if self.library is not None else 'space'}"
            )
        pruner = self.strategy.pruner
        if pruner != "none":
            from workers.evaluators.base import get_evaluator

            if not get_evaluator(self.evaluator.name).reports_intermediate:
                raise ValueError(
                    f"pruner {pruner!r} needs an evaluator that reports intermediate values "
                    f"(e.g. 'proxy'), but evaluator {self.evaluator.name!r} does not"
                )
        if pruner in _SINGLE_OBJECTIVE_PRUNERS and len(self.objectives) != 1:
            raise ValueError(
                f"pruner {pruner!r} needs exactly 1 objective (Optuna cannot prune "
                f"multi-objective studies), but got {len(self.objectives)}"
            )
        if pruner == "dominated":
            names = {o.name for o in self.objectives}
            if len(self.objectives) != 2 or "latency_ms" not in names:
                raise ValueError(
                    "pruner 'dominated' needs exactly 2 objectives including 'latency_ms', "
                    f"but got {sorted(names)}"
                )
        return self

    @property
    def objective_names(self) -> tuple[str, ...]:
        return tuple(o.name for o in self.objectives)

    @property
    def directions(self) -> tuple[str, ...]:
        return tuple(o.direction for o in self.objectives)


def _brief(exc: ValidationError, *, limit: int = 5) -> str:
    """The first `limit` errors of `exc` as ``loc: msg`` pairs on one line."""
    parts = []
    for error in exc.errors()[:limit]:
        loc = ".".join(str(p) for p in error["loc"]) or "(root)"
        parts.append(f"{loc}: {error['msg']}")
    more = exc.error_count() - limit
    if more > 0:
        parts.append(f"... and {more} more")
    return "; ".join(parts)
