"""Live updates of one job as server-sent events.

The stream polls the database every `settings.event_poll_interval_s` for trial and job rows
whose `updated_at` moved, and sends each changed row as an event (`trial`: TrialPublic,
`job`: JobPublic). The first poll sends every trial the job has, so a client needs no
separate snapshot. The stream ends once the job is finished and everything was sent.

A row's `updated_at` is stamped when it is flushed, slightly before its transaction commits,
so each poll looks `_LOOKBACK` back past the newest stamp it saw and drops rows it already
sent unchanged; a commit that lands later than that after its flush would be missed.
Event ids are that cursor; a client that reconnects with `Last-Event-ID` resumes from it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Annotated
from typing import Any

import anyio
from fastapi import APIRouter
from fastapi import Header
from fastapi.sse import EventSourceResponse
from fastapi.sse import ServerSentEvent
from starlette.concurrency import run_in_threadpool

from service import crud
from service.api.deps import CurrentJob
from service.api.deps import SessionDep
from service.core.config import get_settings
from service.core.db import session_scope
from service.models import FINISHED_JOB_STATUSES
from service.models import Job
from service.models import Trial

router = APIRouter(prefix="/jobs/{job_id}", tags=["events"])

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


@router.get("/events", response_class=EventSourceResponse)
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
