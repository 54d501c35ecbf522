"""A job's Pareto front and hypervolume history."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi import HTTPException
from fastapi import Response
from fastapi.security import HTTPAuthorizationCredentials
from sqlmodel import Session

from service import crud
from service.api.deps import BearerCredentials
from service.api.deps import JobId
from service.api.deps import get_current_owner
from service.api.deps import get_owned_job
from service.api.read_pool import run_read
from service.core.db import session_scope
from service.models import HypervolumePoint
from service.models import ObjectivePublic
from service.models import ParetoPublic
from service.pareto import pareto_front
from service.read_cache import VersionedCache

router = APIRouter(prefix="/jobs/{job_id}", tags=["pareto"])

# Serialised fronts per job, valid for one `crud.owned_complete_count` (service.read_cache):
# building and serialising the front of a 120-trial job took ~10 ms per GET.
_FRONTS: VersionedCache[bytes] = VersionedCache(max_entries=256)


def _build_front(
    *,
    session: Session,
    job_id: str,
    objectives: list[ObjectivePublic],
    version: int,
) -> bytes:
    """The job's `ParetoPublic` as JSON bytes, computed and cached under `version`."""
    result = pareto_front(
        crud.trial_scores(session=session, job_id=job_id),
        [o.name for o in objectives],
        [o.direction for o in objectives],
    )
    front = crud.trials_by_numbers(
        session=session, job_id=job_id, numbers=[t.number for t in result.front]
    )
    body = (
        ParetoPublic(
            objectives=objectives,
            points=[crud.trial_public(t) for t in front],
            hypervolume=[HypervolumePoint(number=n, value=v) for n, v in result.hypervolume],
            reference_point=result.reference_point,
        )
        .model_dump_json()
        .encode()
    )
    _FRONTS.put(job_id, version, body)
    return body


def _pareto_body(job_id: str, credentials: HTTPAuthorizationCredentials | None) -> bytes:
    with session_scope() as session:
        owner = get_current_owner(session, credentials)
        # A cache hit costs this one index-only query (ownership and version together).
        version = crud.owned_complete_count(session=session, job_id=job_id, owner_id=owner)
        if version is None:
            raise HTTPException(status_code=404, detail=f"job {job_id!r} not found")
        body = _FRONTS.get(job_id, version)
        if body is not None:
            return body
        job = get_owned_job(session, owner, job_id)
        objectives = [ObjectivePublic.model_validate(o) for o in job.spec["objectives"]]
        return _build_front(session=session, job_id=job.id, objectives=objectives, version=version)


@router.get("/pareto", response_model=ParetoPublic)
async def get_pareto(job_id: JobId, credentials: BearerCredentials) -> Response:
    """Non-dominated complete+feasible trials, and exact normalised hypervolume by trial."""
    # The token, the job and the front are read in one `run_read` call rather than one per
    # sync dependency: with 50 concurrent clients, five hops per request through 40 pool
    # threads contending for the GIL halved the throughput (benchmarks/service.py).
    body = await run_read(_pareto_body, job_id, credentials)
    return Response(content=body, media_type="application/json")
