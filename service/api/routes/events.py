"""Live updates of one job as server-sent events.

The stream polls the database every `settings.event_poll_interval_s` for trial and job rows
whose `updated_at` moved, and sends each changed row as an event (`trial`: TrialPublic,
`job`: JobPublic). The first poll sends every trial the job has, so a client needs no
separate snapshot. The stream ends once the job is finished and everything was sent.

A row's `updated_at` is stamped when it is flushed, slightly before its transaction commits,
so each poll looks `_LOOKBACK` back past the newest stamp it saw and drops rows it already
sent unchanged; a commit that lands later than that after its flush would be missed.
Event ids are that cursor; a client that reconnects with `Last-Event-ID` resumes from it.

`GET /events` does the same for every job of the caller: a `job` event (JobPublic, counts
included) whenever a job row or one of its trials changed, and `job-deleted` (`{"id": ...}`)
when a job it sent is gone. The first poll sends every job (a snapshot); the stream stays
open. Idle polls are three indexed reads that load no JSON column; a job is re-summarised
(counts and best: two grouped reads) only while it or its trials changed within the lookback,
and sent only when that summary differs from the last one sent. FastAPI inserts a `: ping`
comment after 15 s without an event, which keeps proxies from closing an idle stream.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Annotated
from typing import Any
from typing import NamedTuple

import anyio
from fastapi import APIRouter
from fastapi import Header
from fastapi.sse import EventSourceResponse
from fastapi.sse import ServerSentEvent
from starlette.concurrency import run_in_threadpool

from service import crud
from service.api.deps import CurrentJob
from service.api.deps import CurrentOwner
from service.api.deps import SessionDep
from service.core.config import get_settings
from service.core.db import session_scope
from service.models import FINISHED_JOB_STATUSES
from service.models import Job
from service.models import JobPublic
from service.models import Trial

router = APIRouter(tags=["events"])

_LOOKBACK = dt.timedelta(seconds=2)


def _poll(job_id: str, since: dt.datetime | None) -> tuple[Job | None, list[Trial]]:
    with session_scope() as session:
        # One read transaction: the job row and the trials come from the same snapshot on
        # PostgreSQL (repeatable within the statement pair under SQLite's WAL reader too).
        trials = crud.trials_changed_since(session=session, job_id=job_id, since=since)
        job = session.get(Job, job_id)
        if job is not None:
            session.expunge(job)
        for trial in trials:
            session.expunge(trial)
        return job, trials


def _parse_cursor(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        cursor = dt.datetime.fromisoformat(value)
    except ValueError:
        return None  # an unknown id restarts the stream from the beginning
    return cursor if cursor.tzinfo is not None else cursor.replace(tzinfo=dt.UTC)


def _fingerprint(row: Job | Trial) -> tuple[Any, ...]:
    if isinstance(row, Trial):
        return (row.updated_at, row.state, row.attempt, len(row.intermediate or []))
    return (row.updated_at, row.status)


@router.get("/jobs/{job_id}/events", response_class=EventSourceResponse)
async def job_events(
    session: SessionDep,
    job: CurrentJob,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> AsyncIterator[ServerSentEvent]:
    """`trial` and `job` events for this job until it is finished."""
    job_id = job.id
    # The request's session would otherwise hold a pooled connection for the whole stream.
    session.close()
    interval = get_settings().event_poll_interval_s
    newest = _parse_cursor(last_event_id)
    sent: dict[str, tuple[Any, ...]] = {}
    while True:
        since = newest - _LOOKBACK if newest is not None else None
        current, trials = await run_in_threadpool(_poll, job_id, since)
        if current is None:
            return  # deleted while streaming
        fresh = 0
        for trial in trials:
            newest = max(newest, trial.updated_at) if newest else trial.updated_at
            mark = _fingerprint(trial)
            if sent.get(trial.id) == mark:
                continue
            sent[trial.id] = mark
            fresh += 1
            yield ServerSentEvent(
                event="trial",
                data=crud.trial_public(trial).model_dump(mode="json"),
                id=newest.isoformat(),
            )
        mark = _fingerprint(current)
        if sent.get(job_id) != mark:
            sent[job_id] = mark
            public = await run_in_threadpool(_job_public, current)
            yield ServerSentEvent(
                event="job", data=public.model_dump(mode="json"), id=_cursor_id(newest)
            )
        elif current.status in FINISHED_JOB_STATUSES and fresh == 0:
            return
        await anyio.sleep(interval)


def _job_public(job: Job) -> Any:
    with session_scope() as session:
        return crud.job_public(session=session, job=job)


def _cursor_id(newest: dt.datetime | None) -> str | None:
    return newest.isoformat() if newest is not None else None


class _OwnerPoll(NamedTuple):
    """What one poll of an owner's stream read: jobs to summarise and every live id."""

    jobs: list[JobPublic]
    newest: dt.datetime | None
    ids: set[str]


def _poll_owner(owner_id: str, since: dt.datetime | None) -> _OwnerPoll:
    with session_scope() as session:
        changed = crud.jobs_changed_since(session=session, owner_id=owner_id, since=since)
        trials = crud.trials_changed_per_job(session=session, owner_id=owner_id, since=since)
        seen = {job.id for job in changed}
        extra = crud.jobs_by_ids(
            session=session, owner_id=owner_id, job_ids=sorted(set(trials) - seen)
        )
        jobs = sorted([*changed, *extra], key=lambda job: (job.created_at, job.id))
        stamps = [job.updated_at for job in changed] + list(trials.values())
        # Read after the changes: a job deleted in between is sent, then reported deleted.
        ids = crud.job_ids(session=session, owner_id=owner_id)
        public = crud.jobs_public(session=session, jobs=jobs)
        return _OwnerPoll(public, max(stamps) if stamps else None, ids)


@router.get("/events", response_class=EventSourceResponse)
async def owner_events(
    session: SessionDep,
    owner: CurrentOwner,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> AsyncIterator[ServerSentEvent]:
    """`job` and `job-deleted` events for every job of the caller; never ends by itself."""
    session.close()  # as in `job_events`: no pooled connection held for the stream
    interval = get_settings().event_poll_interval_s
    newest = _parse_cursor(last_event_id)
    sent: dict[str, dict[str, Any]] = {}
    while True:
        since = newest - _LOOKBACK if newest is not None else None
        poll = await run_in_threadpool(_poll_owner, owner, since)
        if poll.newest is not None:
            newest = max(newest, poll.newest) if newest is not None else poll.newest
        for public in poll.jobs:
            data = public.model_dump(mode="json")
            if sent.get(public.id) == data:
                continue  # seen again only because of the lookback
            sent[public.id] = data
            yield ServerSentEvent(event="job", data=data, id=_cursor_id(newest))
        for gone in sorted(set(sent) - poll.ids):
            del sent[gone]
            yield ServerSentEvent(event="job-deleted", data={"id": gone}, id=_cursor_id(newest))
        await anyio.sleep(interval)
