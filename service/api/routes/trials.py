"""A job's trials: a filtered page, or one by its number."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from fastapi import HTTPException
from fastapi import Query

from service import crud
from service.api.deps import CurrentJob
from service.api.deps import SessionDep
from service.api.pagination import PageDep
from service.models import TrialPublic
from service.models import TrialsPublic
from service.models import TrialState

router = APIRouter(prefix="/jobs/{job_id}/trials", tags=["trials"])


@router.get("", response_model=TrialsPublic)
def list_trials(
    session: SessionDep,
    job: CurrentJob,
    page: PageDep,
    state: Annotated[TrialState | None, Query(description="Only trials in this state.")] = None,
) -> TrialsPublic:
    trials, count = crud.list_trials(
        session=session, job_id=job.id, state=state, limit=page.limit, offset=page.offset
    )
    return TrialsPublic(data=[crud.trial_public(t) for t in trials], count=count)


@router.get("/{number}", response_model=TrialPublic)
def get_trial(session: SessionDep, job: CurrentJob, number: int) -> TrialPublic:
    trial = crud.get_trial(session=session, job_id=job.id, number=number)
    if trial is None:
        raise HTTPException(status_code=404, detail=f"trial {number} of job {job.id} not found")
    return crud.trial_public(trial)
