"""Jobs: submit, list, read, stop, resume, delete."""

from __future__ import annotations

import logging
from types import ModuleType
from typing import Annotated

from fastapi import APIRouter
from fastapi import HTTPException
from fastapi import Query
from fastapi import Response
from fastapi.security import HTTPAuthorizationCredentials

from service import crud
from service.api.deps import BearerCredentials
from service.api.deps import CurrentJob
from service.api.deps import CurrentOwner
from service.api.deps import SessionDep
from service.api.deps import get_current_owner
from service.api.pagination import Page
from service.api.pagination import PageDep
from service.api.read_pool import run_read
from service.core.db import session_scope
from service.models import FINISHED_JOB_STATUSES
from service.models import JobPublic
from service.models import JobSpec
from service.models import JobsPublic
from service.models import JobStatus

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/jobs", tags=["jobs"])

_RESUMABLE = ("stopped", "failed")


def _controller() -> ModuleType:
    # Imported per call: the controller pulls in optuna/celery, which the API needs only here.
    import service.controller

    return service.controller


@router.post("", response_model=JobPublic, status_code=201)
def create_job(session: SessionDep, owner: CurrentOwner, spec: JobSpec) -> JobPublic:
    """Validate and store a job, then hand it to the controller (after the commit)."""
    job = crud.create_job(session=session, spec=spec, owner_id=owner)
    try:
        _controller().submit_job(job.id)
    except Exception as exc:
        # Nothing half-written: a job the controller never received is removed again.
        logger.exception("could not enqueue job %s", job.id)
        crud.delete_job_rows(session=session, job=job)
        raise HTTPException(
            status_code=503, detail=f"could not hand the job to the controller: {exc}"
        ) from exc
    session.refresh(job)
    return crud.job_public(session=session, job=job)


def _jobs_page(
    credentials: HTTPAuthorizationCredentials | None, page: Page, status: str | None
) -> bytes:
    with session_scope() as session:
        owner = get_current_owner(session, credentials)
        jobs, count = crud.list_jobs(
            session=session, owner_id=owner, status=status, limit=page.limit, offset=page.offset
        )
        body = JobsPublic(data=crud.jobs_public(session=session, jobs=jobs), count=count)
    # Serialised once, by pydantic's JSON encoder: FastAPI would validate the returned
    # model again and encode it through `jsonable_encoder` and `json.dumps`.
    return body.model_dump_json().encode()


@router.get("", response_model=JobsPublic)
async def list_jobs(
    credentials: BearerCredentials,
    page: PageDep,
    status: Annotated[JobStatus | None, Query(description="Only jobs in this status.")] = None,
) -> Response:
    # One `run_read` call for the token and the page, not one per sync dependency (see
    # routes/pareto.py: the hops through a contended pool halved the throughput).
    body = await run_read(_jobs_page, credentials, page, status)
    return Response(content=body, media_type="application/json")


@router.get("/{job_id}", response_model=JobPublic)
def get_job(session: SessionDep, job: CurrentJob) -> JobPublic:
    return crud.job_public(session=session, job=job)


@router.post("/{job_id}/stop", response_model=JobPublic)
def stop_job(session: SessionDep, job: CurrentJob) -> JobPublic:
    """Ask the controller to stop: no new trials; running ones finish or are stopped."""
    if job.status in FINISHED_JOB_STATUSES:
        raise HTTPException(status_code=409, detail=f"job {job.id} is already {job.status}")
    if job.status != "stopping":
        _controller().request_stop(job.id)
        session.refresh(job)
    return crud.job_public(session=session, job=job)


@router.post("/{job_id}/resume", response_model=JobPublic)
def resume_job(session: SessionDep, job: CurrentJob) -> JobPublic:
    """Continue a stopped or failed job up to its n_trials."""
    if job.status not in _RESUMABLE:
        raise HTTPException(
            status_code=409,
            detail=f"only a job with status in {list(_RESUMABLE)} can be resumed, but job "
            f"{job.id} is {job.status}",
        )
    _controller().resume_job(job.id)
    session.refresh(job)
    return crud.job_public(session=session, job=job)


@router.delete("/{job_id}", status_code=204, response_class=Response)
def delete_job(session: SessionDep, job: CurrentJob) -> Response:
    """Stop the job's work, drop its study, and delete its rows."""
    _controller().delete_job(job.id)
    session.expire_all()
    crud.delete_job_rows(session=session, job=job)
    return Response(status_code=204)
