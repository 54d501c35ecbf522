"""A job's Pareto front and hypervolume history."""

from __future__ import annotations

from fastapi import APIRouter

from service import crud
from service.api.deps import CurrentJob
from service.api.deps import SessionDep
from service.models import HypervolumePoint
from service.models import ObjectivePublic
from service.models import ParetoPublic
from service.pareto import pareto_front

router = APIRouter(prefix="/jobs/{job_id}", tags=["pareto"])


@router.get("/pareto", response_model=ParetoPublic)
def get_pareto(session: SessionDep, job: CurrentJob) -> ParetoPublic:
    """Non-dominated complete+feasible trials, and exact normalised hypervolume by trial."""
    objectives = [ObjectivePublic.model_validate(o) for o in job.spec["objectives"]]
    result = pareto_front(
        crud.trial_scores(session=session, job_id=job.id),
        [o.name for o in objectives],
        [o.direction for o in objectives],
    )
    front = crud.trials_by_numbers(
        session=session, job_id=job.id, numbers=[t.number for t in result.front]
    )
    return ParetoPublic(
        objectives=objectives,
        points=[crud.trial_public(t) for t in front],
        hypervolume=[HypervolumePoint(number=n, value=v) for n, v in result.hypervolume],
        reference_point=result.reference_point,
    )
