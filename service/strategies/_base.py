"""The searcher interface: proposes designs and learns from results, nothing else.

The controller (the scheduler) decides how many trials run and when a job ends; a
`Strategy` only answers "which designs next?" (`ask`) and "here is how one went" (`tell`),
both keyed by the Optuna trial number, and optionally "should this running trial stop?"
(`should_prune`). Celery (the backend) only runs trials. See style-anchors.md §5.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any
from typing import Literal

from pydantic import BaseModel
from pydantic import ConfigDict
from pydantic import Field
from pydantic import model_validator

from search_space.design import FFNDesign

__all__ = ["Outcome", "OutcomeState", "Proposal", "Strategy"]

OutcomeState = Literal["complete", "pruned", "failed"]


class Proposal(BaseModel):
    """One asked trial: its number in the study, the design, and the raw parameters."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    number: int = Field(ge=0)
    design: FFNDesign
    params: dict[str, Any] = Field(default_factory=dict)


class Outcome(BaseModel):
    """How one trial ended, as the strategy needs it.

    `values` follow the job's objective order; `constraints` map a name to a value that is
    feasible when <= 0 (Optuna's convention).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    state: OutcomeState
    values: tuple[float, ...] | None = None
    constraints: dict[str, float] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> Outcome:
        if self.state == "complete" and self.values is None:
            raise ValueError("a `complete` outcome needs `values`, but got values=None")
        return self

    @property
    def feasible(self) -> bool:
        return all(v <= 0.0 for v in self.constraints.values())


class Strategy(abc.ABC):
    """Proposes designs for one job and learns from their outcomes.

    Implementations persist their state in the job's database (the Optuna study), so a
    controller process that restarts can rebuild the same strategy and go on.
    """

    @abc.abstractmethod
    def ask(self, n: int) -> list[Proposal]:
        """Propose `n` new trials (fewer only if the space is exhausted)."""

    @abc.abstractmethod
    def tell(self, number: int, outcome: Outcome) -> None:
        """Record how trial `number` ended. Telling a finished trial again is a no-op."""

    def should_prune(self, number: int, intermediate: Sequence[tuple[int, float]]) -> bool:
        """True when trial `number`, having reported `intermediate`, should stop early.

        Args:
            number: the trial number.
            intermediate: every ``(step, value)`` the trial has reported so far.
        """
        del number, intermediate
        return False
