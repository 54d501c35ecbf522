"""Reads and writes of the API, keyword-only (FastAPI-template style).

Every query that takes a job id also takes the owner, so another owner's job is simply not
found (OWASP API1). Functions here never commit half a change: each write commits once.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache
from typing import Any
from typing import NamedTuple

from sqlalchemy import delete
from sqlalchemy import func
from sqlmodel import Session
from sqlmodel import col
from sqlmodel import select

from search_space.design import LayerFFN
from service.auth import forget_token_hash
from service.models import ApiToken
from service.models import Job
from service.models import JobPublic
from service.models import JobSpec
from service.models import LatencyPublic
from service.models import Target
from service.models import Trial
from service.models import TrialCounts
from service.models import TrialPublic
from service.pareto import eligible_values
from service.read_cache import VersionedCache

__all__ = [
    "owned_complete_count",
    "revoke_token",
    "create_job",
    "delete_job_rows",
    "design_summary",
    "get_job",
    "get_trial",
    "job_ids",
    "job_public",
    "jobs_by_ids",
    "jobs_changed_since",
    "jobs_public",
    "list_jobs",
    "list_targets",
    "list_tokens",
    "list_trials",
    "TrialScore",
    "trial_public",
    "trial_scores",
    "trials_by_numbers",
    "trials_changed_since",
    "trials_changed_per_job",
]

logger = logging.getLogger(__name__)

_SUMMARY_LABELS = 4


def create_job(*, session: Session, spec: JobSpec, owner_id: str) -> Job:
    """Store a queued job for `owner_id` and commit."""
    job = Job(
        owner_id=owner_id,
        name=spec.name,
        spec=spec.model_dump(mode="json"),
        target=spec.target,
        evaluator=spec.evaluator.name,
        strategy=spec.strategy.name,
        n_trials=spec.n_trials,
        status="queued",
    )
    session.add(job)
    session.commit()
    session.refresh(job)
    return job


def get_job(*, session: Session, job_id: str, owner_id: str) -> Job | None:
    """The job `job_id` if it belongs to `owner_id`, else None."""
    return session.exec(select(Job).where(Job.id == job_id, Job.owner_id == owner_id)).first()


def list_jobs(
    *, session: Session, owner_id: str, status: str | None, limit: int, offset: int
) -> tuple[list[Job], int]:
    """A page of `owner_id`'s jobs, newest first, and the total count."""
    where = [Job.owner_id == owner_id]
    if status is not None:
        where.append(Job.status == status)
    count = session.exec(select(func.count()).select_from(Job).where(*where)).one()
    rows = session.exec(
        select(Job)
        .where(*where)
        .order_by(col(Job.created_at).desc(), col(Job.id))
        .offset(offset)
        .limit(limit)
    ).all()
    return list(rows), int(count)


def delete_job_rows(*, session: Session, job: Job) -> None:
    """Delete a job and its trials in one transaction."""
    session.exec(delete(Trial).where(col(Trial.job_id) == job.id))  # type: ignore[call-overload]
    session.delete(job)
    session.commit()


def list_trials(
    *, session: Session, job_id: str, state: str | None, limit: int, offset: int
) -> tuple[list[Trial], int]:
    """A page of a job's trials in number order, and the total count."""
    where = [Trial.job_id == job_id]
    if state is not None:
        where.append(Trial.state == state)
    count = session.exec(select(func.count()).select_from(Trial).where(*where)).one()
    rows = session.exec(
        select(Trial).where(*where).order_by(col(Trial.number)).offset(offset).limit(limit)
    ).all()
    return list(rows), int(count)


def get_trial(*, session: Session, job_id: str, number: int) -> Trial | None:
    return session.exec(
        select(Trial).where(Trial.job_id == job_id, Trial.number == number)
    ).first()


class TrialScore(NamedTuple):
    """The columns a front needs, without the design (most of a row's bytes)."""

    number: int
    state: str
    feasible: bool | None
    values: dict[str, float]


def trial_scores(*, session: Session, job_id: str) -> list[TrialScore]:
    """Number, state, feasibility and values of every trial of a job, in number order."""
    rows = session.exec(
        select(Trial.number, Trial.state, Trial.feasible, Trial.values)
        .where(Trial.job_id == job_id)
        .order_by(col(Trial.number))
    ).all()
    return [
        TrialScore(number, state, feasible, dict(values or {}))
        for number, state, feasible, values in rows
    ]


def trials_by_numbers(*, session: Session, job_id: str, numbers: Sequence[int]) -> list[Trial]:
    """Full rows of the given trial numbers, in number order."""
    if not numbers:
        return []
    return list(
        session.exec(
            select(Trial)
            .where(Trial.job_id == job_id, col(Trial.number).in_(list(numbers)))
            .order_by(col(Trial.number))
        )
    )


def trials_changed_since(
    *, session: Session, job_id: str, since: dt.datetime | None
) -> list[Trial]:
    """Trials of a job whose `updated_at` is at or after `since` (all when None)."""
    query = select(Trial).where(Trial.job_id == job_id)
    if since is not None:
        query = query.where(col(Trial.updated_at) >= since)
    return list(session.exec(query.order_by(col(Trial.updated_at), col(Trial.number))))


def jobs_changed_since(*, session: Session, owner_id: str, since: dt.datetime | None) -> list[Job]:
    """`owner_id`'s jobs whose `updated_at` is at or after `since` (all when None)."""
    query = select(Job).where(Job.owner_id == owner_id)
    if since is not None:
        query = query.where(col(Job.updated_at) >= since)
    return list(session.exec(query.order_by(col(Job.created_at), col(Job.id))))


def trials_changed_per_job(
    *, session: Session, owner_id: str, since: dt.datetime | None
) -> dict[str, dt.datetime]:
    """Per job of `owner_id` with a trial updated at or after `since` (any trial when None),
    the newest such `updated_at`; reads no trial column but the two it groups on."""
    query = (
        select(Trial.job_id, func.max(Trial.updated_at))
        .join(Job, col(Job.id) == col(Trial.job_id))
        .where(Job.owner_id == owner_id)
    )
    if since is not None:
        query = query.where(col(Trial.updated_at) >= since)
    rows = session.exec(query.group_by(col(Trial.job_id))).all()
    return {job_id: newest for job_id, newest in rows}


def jobs_by_ids(*, session: Session, owner_id: str, job_ids: Sequence[str]) -> list[Job]:
    """The jobs of `owner_id` among `job_ids`, oldest first."""
    if not job_ids:
        return []
    query = select(Job).where(Job.owner_id == owner_id, col(Job.id).in_(list(job_ids)))
    return list(session.exec(query.order_by(col(Job.created_at), col(Job.id))))


def job_ids(*, session: Session, owner_id: str) -> set[str]:
    """The ids of every job of `owner_id` (an index-only read)."""
    return set(session.exec(select(Job.id).where(Job.owner_id == owner_id)))


def list_targets(*, session: Session) -> list[Target]:
    return list(session.exec(select(Target).order_by(col(Target.name))))


def list_tokens(session: Session, *, owner_id: str | None) -> list[ApiToken]:
    """The tokens of `owner_id`, oldest first; every owner's when None (server-side CLI)."""
    query = select(ApiToken)
    if owner_id is not None:
        query = query.where(ApiToken.owner_id == owner_id)
    return list(session.exec(query.order_by(col(ApiToken.created_at), col(ApiToken.id))))


def revoke_token(session: Session, *, owner_id: str, token_id: int) -> bool:
    """Delete token `token_id` if `owner_id` owns it and commit; False when there was none.

    This process refuses the token from its next request on. Every other process (the
    other API workers; all of them when the CLI revokes) may accept it for at most
    `service.auth.TOKEN_CACHE_TTL_S` more: its per-process cache is not told.
    """
    token = session.exec(
        select(ApiToken).where(ApiToken.id == token_id, ApiToken.owner_id == owner_id)
    ).first()
    if token is None:
        return False
    token_hash, name = token.token_hash, token.name
    session.delete(token)
    session.commit()
    # After the commit: forgetting first would let a concurrent request re-cache the row.
    forget_token_hash(token_hash)
    logger.info("revoked token %s (%r) of owner %s", token_id, name, owner_id)
    return True


# --------------------------------------------------------------------------------------
# Public views
# --------------------------------------------------------------------------------------


def owned_complete_count(*, session: Session, job_id: str, owner_id: str) -> int | None:
    """How many complete trials `job_id` has if `owner_id` owns it, else None: one query.

    This count names everything a front or a best value depends on: complete trials never
    change (every trial write is guarded by ``state = 'running'``) and are deleted only with
    their job, so it changes exactly when one is added (see service.read_cache). It is read
    from the (job_id, state) index alone: ~45 us on SQLite for a 120-trial job, where adding
    the newest `updated_at` (a read of every complete row) and loading the job row for the
    ownership check took ~300 us, the largest share of a cached front's CPU (py-spy under
    benchmarks/service.py).
    """
    complete = (
        select(func.count())
        .where(Trial.job_id == job_id, Trial.state == "complete")
        .scalar_subquery()
    )
    owned = select(complete).where(Job.id == job_id, Job.owner_id == owner_id)
    count = session.exec(owned).first()
    return None if count is None else int(count)


def _counts(*, session: Session, job_ids: Sequence[str]) -> dict[str, TrialCounts]:
    if not job_ids:
        return {}
    rows = session.exec(
        select(Trial.job_id, Trial.state, func.count())
        .where(col(Trial.job_id).in_(job_ids))
        .group_by(col(Trial.job_id), col(Trial.state))
    ).all()
    per_job: dict[str, dict[str, int]] = {job_id: {} for job_id in job_ids}
    for job_id, state, n in rows:
        per_job[job_id][state] = int(n)
    return {job_id: TrialCounts(**counts) for job_id, counts in per_job.items()}


# Best values per job, valid for one number of complete trials: complete trials never change
# and are deleted only with their job (see `owned_complete_count` and service.read_cache), so
# the count, which the trial counts of the list already hold, names them.
_BEST_CACHE: VersionedCache[dict[str, float] | None] = VersionedCache(max_entries=4096)


def _best(
    *, session: Session, jobs: Sequence[Job], n_complete: dict[str, int]
) -> dict[str, dict[str, float] | None]:
    """Per job, the best value of each objective over complete feasible trials.

    With one objective this is the best trial's value; with several it is the ideal point
    (each coordinate may come from a different trial; the front is at /pareto). Values are
    cached per job for its number of complete trials: only jobs with new ones are read.
    """
    best: dict[str, dict[str, float] | None] = {}
    stale: list[Job] = []
    for job in jobs:
        hit = _BEST_CACHE.get(job.id, n_complete[job.id])
        if hit is None and n_complete[job.id] > 0:
            stale.append(job)
        else:
            best[job.id] = hit
    if not stale:
        return best
    # Only the columns the ranking needs: the design JSON is most of a row's bytes.
    rows = session.exec(
        select(Trial.job_id, Trial.number, Trial.values, Trial.feasible).where(
            col(Trial.job_id).in_([job.id for job in stale]), Trial.state == "complete"
        )
    ).all()
    by_job: dict[str, list[TrialScore]] = {job.id: [] for job in stale}
    for job_id, number, values, feasible in rows:
        by_job[job_id].append(TrialScore(number, "complete", feasible, dict(values or {})))
    for job in stale:
        objectives = job.spec.get("objectives", [])
        names = [o["name"] for o in objectives]
        directions = [o.get("direction", "minimize") for o in objectives]
        scored = eligible_values(by_job[job.id], names, directions)
        value: dict[str, float] | None = None
        if scored:
            signs = [1.0 if d == "minimize" else -1.0 for d in directions]
            value = {
                name: sign * min(v[k] for _, v in scored)
                for k, (name, sign) in enumerate(zip(names, signs, strict=True))
            }
        # The rows read may be newer than the version counted a moment ago; storing them
        # under the older version only makes the next read recompute.
        _BEST_CACHE.put(job.id, n_complete[job.id], value)
        best[job.id] = value
    return best


def jobs_public(*, session: Session, jobs: Sequence[Job]) -> list[JobPublic]:
    """Public views of `jobs`, with trial counts and best values (one or two queries)."""
    counts = _counts(session=session, job_ids=[job.id for job in jobs])
    n_complete = {job_id: c.complete for job_id, c in counts.items()}
    best = _best(session=session, jobs=jobs, n_complete=n_complete)
    return [
        JobPublic(
            id=job.id,
            name=job.name,
            status=job.status,  # type: ignore[arg-type]
            spec=job.spec,
            target=job.target,
            evaluator=job.evaluator,
            strategy=job.strategy,
            n_trials=job.n_trials,
            counts=counts[job.id],
            best=best[job.id],
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            error=job.error,
        )
        for job in jobs
    ]


def job_public(*, session: Session, job: Job) -> JobPublic:
    return jobs_public(session=session, jobs=[job])[0]


def trial_public(trial: Trial) -> TrialPublic:
    """The public view of a trial row (pure: no queries)."""
    has_latency = any(
        v is not None for v in (trial.latency_p20_ms, trial.latency_p50_ms, trial.latency_p80_ms)
    )
    return TrialPublic(
        id=trial.id,
        number=trial.number,
        state=trial.state,  # type: ignore[arg-type]
        feasible=trial.feasible,
        values=trial.values or {},
        constraints=trial.constraints or {},
        intermediate=trial.intermediate or [],
        design=trial.design or {},
        summary=design_summary(trial.design),
        latency=LatencyPublic(
            p20_ms=trial.latency_p20_ms, p50_ms=trial.latency_p50_ms, p80_ms=trial.latency_p80_ms
        )
        if has_latency
        else None,
        layer_latency_ms=trial.layer_latency_ms,
        reason=trial.reason,
        error=trial.error,
        attempt=trial.attempt,
        created_at=trial.created_at,
        finished_at=trial.finished_at,
    )


def design_summary(design: dict[str, Any] | None) -> str:
    """A one-line label of a design's layers, e.g. ``20x dense 14336 swiglu, 4x noop``."""
    layers = (design or {}).get("layers") or []
    labels: Counter[str] = Counter()
    for layer in layers:
        labels[_layer_label(json.dumps(layer, sort_keys=True))] += 1
    parts = [f"{n}x {label}" for label, n in labels.most_common(_SUMMARY_LABELS)]
    hidden = len(labels) - _SUMMARY_LABELS
    if hidden > 0:
        parts.append(f"+{hidden} more")
    return ", ".join(parts)


@lru_cache(maxsize=4096)
def _layer_label(layer_json: str) -> str:
    # Validating a layer costs ~20 us; designs repeat layers, so labels are cached by JSON.
    try:
        return LayerFFN.model_validate_json(layer_json).summary()
    except ValueError:
        return "invalid"
