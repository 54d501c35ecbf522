"""Request dependencies: the DB session and the authenticated owner."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from fastapi import HTTPException
from fastapi import Path
from fastapi.security import HTTPAuthorizationCredentials
from fastapi.security import HTTPBearer
from sqlmodel import Session

from service import crud
from service.auth import owner_for_token
from service.core.db import get_session
from service.models import Job

__all__ = [
    "BearerCredentials",
    "CurrentJob",
    "CurrentOwner",
    "JobId",
    "SessionDep",
    "get_current_owner",
    "get_owned_job",
]

SessionDep = Annotated[Session, Depends(get_session)]

_bearer = HTTPBearer(auto_error=False, description="A token from `ffnas token create NAME`.")

BearerCredentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def get_current_owner(session: SessionDep, credentials: BearerCredentials) -> str:
    """The owner id of the request's bearer token; 401 when it is missing or unknown."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(
            status_code=401,
            detail="missing bearer token: send `Authorization: Bearer <token>`",
            headers={"WWW-Authenticate": "Bearer"},
        )
    owner = owner_for_token(session, credentials.credentials)
    if owner is None:
        raise HTTPException(
            status_code=401,
            detail="invalid bearer token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return owner


CurrentOwner = Annotated[str, Depends(get_current_owner)]

JobId = Annotated[str, Path(min_length=1, max_length=64, description="The job id.")]


def get_owned_job(session: SessionDep, owner: CurrentOwner, job_id: JobId) -> Job:
    """The job in the path if the caller owns it; 404 otherwise (never 403: no leak)."""
    job = crud.get_job(session=session, job_id=job_id, owner_id=owner)
    if job is None:
        raise HTTPException(status_code=404, detail=f"job {job_id!r} not found")
    return job


CurrentJob = Annotated[Job, Depends(get_owned_job)]
