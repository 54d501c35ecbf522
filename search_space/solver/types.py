"""Inputs and results of the exact solvers (`front`, `solve`)."""

from __future__ import annotations

from typing import Any
from typing import Literal

from pydantic import BaseModel
from pydantic import ConfigDict
from pydantic import Field
from pydantic import model_validator

from search_space.library import parse_key

__all__ = [
    "Constraint",
    "FrontPoint",
    "FrontResult",
    "Infeasibility",
    "Solution",
    "SolveResult",
    "SolveStatus",
    "Throughput",
]

SolveStatus = Literal["optimal", "time_limit", "infeasible"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FrontPoint(_Frozen):
    """One design on the Pareto front: its summed cost and objective, one variant per layer."""

    cost: float
    objective: float
    choices: tuple[str, ...]


class FrontResult(_Frozen):
    """The exact Pareto front of (summed cost, summed objective) over all budgets.

    `points` are sorted by increasing cost; the objective strictly improves from one point to
    the next (decreases when minimising, increases when maximising). For any budget ``B``,
    the best design with cost ``<= B`` is the last point whose cost is ``<= B``.
    """

    cost_key: str
    objective_key: str
    maximize: bool
    points: tuple[FrontPoint, ...]
    optimal: bool = Field(default=True, description="Always True: the DP is exact.")
    elapsed_s: float = Field(description="Wall time of the computation.")
    n_states_peak: int = Field(description="Largest partial front kept after any layer.")

    def best_at(self, budget: float) -> FrontPoint | None:
        """The best design whose cost is at most `budget`, or None when none is that cheap."""
        lo, hi = 0, len(self.points)
        while lo < hi:
            mid = (lo + hi) // 2
            if self.points[mid].cost <= budget:
                lo = mid + 1
            else:
                hi = mid
        return self.points[lo - 1] if lo else None


class Constraint(_Frozen):
    """``sum over layers of key  op  bound``, e.g. ``stats.runtime_ms <= 40000``."""

    key: str
    op: Literal["<=", ">="]
    bound: float

    @model_validator(mode="after")
    def _check_key(self) -> Constraint:
        parse_key(self.key)
        return self

    def label(self) -> str:
        return f"{self.key}{self.op}{self.bound:.12g}"

    def holds(self, total: float, tolerance: float = 0.0) -> bool:
        """Whether a design's total meets the bound, up to `tolerance` (see `solve`)."""
        if self.op == "<=":
            return total <= self.bound + tolerance
        return total >= self.bound - tolerance


class Throughput(_Frozen):
    """Puzzle's throughput floor ``batch * seq / sum(runtime) >= min_tokens_per_s``.

    The summed runtime is in units of `runtime_unit_s` seconds (milliseconds for
    ``stats.runtime_ms``), so the floor is the linear budget
    ``sum(runtime) <= batch * seq / (min_tokens_per_s * runtime_unit_s)``.
    """

    batch: int = Field(gt=0)
    seq: int = Field(gt=0)
    min_tokens_per_s: float = Field(gt=0)
    runtime_key: str = "stats.runtime_ms"
    runtime_unit_s: float = Field(default=1e-3, gt=0)

    @model_validator(mode="after")
    def _check_key(self) -> Throughput:
        parse_key(self.runtime_key)
        return self

    def as_constraint(self) -> Constraint:
        bound = self.batch * self.seq / (self.min_tokens_per_s * self.runtime_unit_s)
        return Constraint(key=self.runtime_key, op="<=", bound=bound)

    def tokens_per_s(self, total_runtime: float) -> float:
        if total_runtime <= 0:
            return float("inf")
        return self.batch * self.seq / (total_runtime * self.runtime_unit_s)


class Solution(_Frozen):
    """One design found by `solve`: its choices, objective and the totals of every key used."""

    choices: tuple[str, ...]
    objective: float
    totals: dict[str, float]
    optimal: bool = Field(description="Proven optimal for its (diversity-cut) problem.")
    gap: float = Field(description="Relative MIP gap HiGHS reports (0 when proven).")
    tokens_per_s: float | None = None


class Infeasibility(_Frozen):
    """Why no design meets the constraints, with the best total any design can reach."""

    constraint: Constraint
    best_total: float = Field(description="Cheapest (largest, for >=) possible total.")
    best_choices: tuple[str, ...] = Field(description="The design that reaches it.")
    alone_infeasible: bool = Field(
        description="True when this constraint alone cannot be met; False when only the "
        "constraints together cannot."
    )

    def message(self) -> str:
        word = "cheapest" if self.constraint.op == "<=" else "largest"
        if self.alone_infeasible:
            return (
                f"no design meets {self.constraint.label()}: the {word} possible design "
                f"has {self.constraint.key} = {self.best_total:.10g}"
            )
        return (
            f"{self.constraint.label()} can be met alone (the {word} design has "
            f"{self.constraint.key} = {self.best_total:.10g}), but not together with the "
            "other constraints"
        )


class SolveResult(_Frozen):
    """What `solve` found: up to `solutions` designs, best first."""

    objective_key: str
    maximize: bool
    status: SolveStatus
    solutions: tuple[Solution, ...]
    optimal: bool = Field(description="Every returned solution is proven optimal.")
    gap: float = Field(description="Largest relative MIP gap over the solutions.")
    elapsed_s: float
    constraints: tuple[Constraint, ...]
    tolerances: dict[str, float] = Field(
        default_factory=dict,
        description="Per constrained key, how far a total may pass its bound (1e-9 of the "
        "key's largest possible total).",
    )
    infeasible: tuple[Infeasibility, ...] = ()
    message: str = ""

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")
