"""The controller: the *scheduler* of every job (style-anchors.md §5).

It decides how many trials run and when a job ends; the `Strategy` (searcher) only proposes
designs, Celery (backend) only runs them. Every function below that changes state runs in
the single controller worker (queue ``controller``, one process), so decisions about one job
never race each other; the API only enqueues (`submit_job`, `request_stop`, `resume_job`,
`delete_job`).

Dispatch: ask -> design -> trial row -> commit -> enqueue ``workers.tasks.evaluate_trial``
on ``eval.<target>``. Enqueue only after the commit (the worker re-fetches the row).
Delivery is at least once; the worker's conditional claim and its result write keyed by
(trial, attempt) make duplicates harmless. A job holds ``n_trials`` finished trials
(complete, pruned or failed) when it completes.

Recovery: `reap` (periodic, and once when the controller starts) re-queues or fails trials
whose worker heartbeat went stale (Optuna's own heartbeat does not cover ask/tell), tells
the strategy about trials that finished while no controller listened, and tops up every
running job, so a restarted controller resumes its jobs from the database alone.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Boolean
from sqlalchemy import DateTime
from sqlalchemy import column as sa_column
from sqlalchemy import delete
from sqlalchemy import func
from sqlalchemy import inspect as sa_inspect
from sqlalchemy import or_
from sqlalchemy import table as sa_table
from sqlalchemy import update
from sqlmodel import Session
from sqlmodel import col
from sqlmodel import select

from search_space.space import SearchSpace
from service.core.config import get_settings
from service.core.db import get_engine
from service.core.db import session_scope
from service.core.sqltypes import utcnow
from service.models import FINISHED_TRIAL_STATES
from service.models import Job
from service.models import Trial
from service.spec import JobSpec
from service.stored_spec import load_spec
from service.strategies import EXACT
from service.strategies import PRUNERS
from service.strategies import Outcome
from service.strategies import Strategy
from service.strategies import make_strategy
from workers.celery_app import CONTROLLER_QUEUE
from workers.celery_app import eval_queue
from workers.celery_app import send_task

__all__ = [
    "EVALUATE_TASK",
    "check_prune",
    "delete_job",
    "dispatch",
    "forget_job",
    "outcome_of",
    "purge_delivered_messages",
    "reap",
    "record",
    "request_stop",
    "resume_job",
    "run_delete",
    "run_resume",
    "run_stop",
    "start_job",
    "submit_job",
]

logger = logging.getLogger(__name__)

EVALUATE_TASK = "workers.tasks.evaluate_trial"
_ACTIVE = ("queued", "running")

# Strategies of the jobs this controller process drives. Rebuilt from the database (the
# Optuna study, the pickled NNI tuner) after a restart; see `_strategy`.
_STRATEGIES: dict[str, Strategy] = {}


# ---------------------------------------------------------------------------------------
# Public API: called by the API process. Each only enqueues a controller task (cheap, no
# Optuna); `request_stop`/`resume_job` also flip the status at once so the API can show it.
# ---------------------------------------------------------------------------------------


def submit_job(job_id: str) -> None:
    """Start a committed job: the controller creates its study and dispatches trials."""
    send_task("service.tasks.start_job", [job_id], queue=CONTROLLER_QUEUE)


def request_stop(job_id: str) -> None:
    """Stop dispatching new trials; trials in flight finish, then the job is ``stopped``."""
    with session_scope() as session:
        session.execute(
            update(Job)
            .where(col(Job.id) == job_id, col(Job.status).in_(("queued", "running")))
            .values(status="stopping")
        )
        session.commit()
    send_task("service.tasks.stop_job", [job_id], queue=CONTROLLER_QUEUE)


def resume_job(job_id: str) -> None:
    """Resume a stopped (or failed) job: it runs again until it holds ``n_trials``."""
    with session_scope() as session:
        session.execute(
            update(Job)
            .where(col(Job.id) == job_id, col(Job.status).in_(("stopping", "stopped", "failed")))
            .values(status="running", finished_at=None, error=None)
        )
        session.commit()
    send_task("service.tasks.resume_job", [job_id], queue=CONTROLLER_QUEUE)


def delete_job(job_id: str) -> None:
    """Delete the job's Optuna study and any rows left (the API may delete rows first)."""
    send_task("service.tasks.delete_job", [job_id], queue=CONTROLLER_QUEUE)


# ---------------------------------------------------------------------------------------
# Controller side: run by `service.tasks` in the controller worker.
# ---------------------------------------------------------------------------------------


# Parsed specs by job id: a job's spec never changes after it is stored, and validating it
# again on every result cost ~0.4 ms (twice per `record`).
_SPECS: dict[str, JobSpec] = {}


def _spec(job: Job) -> JobSpec:
    # The identity key, unlike `job.id`, is readable without reloading a row expired by a
    # commit.
    identity = sa_inspect(job).identity
    job_id = str(identity[0]) if identity else job.id
    spec = _SPECS.get(job_id)
    if spec is None:
        spec = _SPECS[job_id] = load_spec(job.spec)
    return spec


def _strategy(job: Job, spec: JobSpec) -> Strategy:
    cached = _STRATEGIES.get(job.id)
    if cached is not None:
        return cached
    assert spec.space is not None  # JobSpec: every strategy but exact has a space
    options = dict(spec.strategy.options)
    if spec.strategy.pruner in PRUNERS:
        options["pruner"] = spec.strategy.pruner
    strategy = make_strategy(
        spec.strategy.name,
        space=SearchSpace.model_validate(spec.space),
        storage_url=get_settings().database_url,
        study_name=_study_name(job.id),
        directions=spec.directions,
        metric_names=spec.objective_names,
        seed=spec.strategy.seed if spec.strategy.seed is not None else 0,
        settings=options,
    )
    _STRATEGIES[job.id] = strategy
    return strategy


def _study_name(job_id: str) -> str:
    return f"job-{job_id}"


def forget_job(job_id: str) -> None:
    """Drop the cached strategy of `job_id` (tests simulate a controller restart with it)."""
    _STRATEGIES.pop(job_id, None)
    _SPECS.pop(job_id, None)


def _counts(session: Session, job_id: str) -> dict[str, int]:
    rows = session.execute(
        select(Trial.state, func.count())
        .where(col(Trial.job_id) == job_id)
        .group_by(col(Trial.state))
    ).all()
    return {state: int(n) for state, n in rows}


def _finish(job: Job, status: str, error: str | None = None) -> None:
    job.status = status
    job.finished_at = utcnow()
    if error is not None:
        job.error = error
    logger.info("job %s %s%s", job.id, status, f": {error}" if error else "")


def _as_utc(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


def dispatch(session: Session, job: Job) -> list[str]:
    """Top up `job` to its in-flight limit, or finish it; commit; return trial ids to send.

    The caller enqueues the returned ids after this commit (`_send`).
    """
    spec = _spec(job)
    counts = _counts(session, job.id)
    in_flight = sum(counts.get(s, 0) for s in _ACTIVE)
    finished = sum(counts.get(s, 0) for s in FINISHED_TRIAL_STATES)
    if job.status == "stopping":
        if in_flight == 0:
            _finish(job, "stopped")
            session.commit()
        return []
    if job.status != "running":
        return []
    out_of_time = spec.time_budget_s is not None and (
        job.started_at is not None
        and (utcnow() - _as_utc(job.started_at)).total_seconds() >= spec.time_budget_s
    )
    wanted = min(spec.max_in_flight - in_flight, spec.n_trials - finished - in_flight)
    if out_of_time or wanted <= 0:
        if in_flight == 0 and (out_of_time or finished >= spec.n_trials):
            if finished > 0 and counts.get("failed", 0) == finished:
                _finish(job, "failed", f"all {finished} trials failed")
            else:
                _finish(job, "completed")
            session.commit()
        return []
    proposals = _strategy(job, spec).ask(wanted)
    if not proposals:
        if in_flight == 0:
            _finish(job, "completed", "the search space is exhausted")
            session.commit()
        return []
    trials = [
        Trial(
            job_id=job.id,
            number=p.number,
            design=p.design.model_dump(mode="json"),
            max_attempts=spec.max_attempts,
        )
        for p in proposals
    ]
    session.add_all(trials)
    session.commit()
    return [t.id for t in trials]


def _send(job: Job, trial_ids: Sequence[str]) -> None:
    if not trial_ids:
        return  # reading `job.target` after a commit would reload the row
    queue = eval_queue(_spec(job).target)
    for trial_id in trial_ids:
        send_task(EVALUATE_TASK, [trial_id], queue=queue)


def start_job(job_id: str) -> None:
    """Create the job's study (or compute a library job's front) and dispatch its trials."""
    with session_scope() as session:
        job = session.get(Job, job_id)
        if job is None or job.status != "queued":
            return  # deleted, or a duplicate delivery of a job already started
        try:
            spec = _spec(job)
            if spec.strategy.name == EXACT:
                _run_library_job(session, job, spec)
                return
            _strategy(job, spec)
        except Exception as exc:  # noqa: BLE001 - any failure to set up fails the job
            logger.exception("job %s failed to start", job_id)
            session.rollback()
            _finish(job, "failed", f"{type(exc).__name__}: {exc}")
            session.commit()
            return
        job.status = "running"
        job.started_at = utcnow()
        job.study_name = _study_name(job.id)
        session.commit()
        _send(job, dispatch(session, job))


def outcome_of(trial: Trial, spec: JobSpec) -> Outcome:
    """The strategy's view of a finished trial row."""
    if trial.state == "complete":
        values = [trial.values.get(name) for name in spec.objective_names]
        if any(v is None for v in values):
            return Outcome(state="failed")
        return Outcome(
            state="complete",
            values=tuple(float(v) for v in values),  # type: ignore[arg-type]
            constraints=dict(trial.constraints),
        )
    if trial.state == "pruned":
        return Outcome(state="pruned", constraints=dict(trial.constraints))
    return Outcome(state="failed")


def record(trial_id: str) -> None:
    """A trial finished: tell the strategy, then dispatch the next trials (idempotent)."""
    started = time.perf_counter()
    with session_scope() as session:
        trial = session.get(Trial, trial_id)
        if trial is None or trial.state not in FINISHED_TRIAL_STATES:
            return
        job = session.get(Job, trial.job_id)
        if job is None:
            return
        spec = _spec(job)
        if spec.strategy.name != EXACT:
            _strategy(job, spec).tell(trial.number, outcome_of(trial, spec))
        ids = dispatch(session, job)
        _send(job, ids)
    if ids:
        logger.debug(
            "record(%s): told and dispatched %d in %.1f ms",
            trial_id,
            len(ids),
            (time.perf_counter() - started) * 1e3,
        )


def check_prune(trial_id: str) -> None:
    """Ask the job's pruner whether a running trial should stop; set `stop_requested`."""
    with session_scope() as session:
        trial = session.get(Trial, trial_id)
        if trial is None or trial.state != "running" or trial.stop_requested:
            return
        job = session.get(Job, trial.job_id)
        if job is None:
            return
        spec = _spec(job)
        steps = [(int(s), float(v)) for s, v in trial.intermediate]
        if spec.strategy.pruner == "dominated":
            stop = _dominated(session, job, spec, trial, steps)
        elif spec.strategy.pruner in PRUNERS:
            stop = _strategy(job, spec).should_prune(trial.number, steps)
        else:
            stop = False
        if stop:
            session.execute(
                update(Trial)
                .where(col(Trial.id) == trial_id, col(Trial.state) == "running")
                .values(stop_requested=True)
            )
            session.commit()
            logger.info("trial %s (job %s #%d) pruned", trial_id, job.id, trial.number)


def _dominated(
    session: Session, job: Job, spec: JobSpec, trial: Trial, steps: list[tuple[int, float]]
) -> bool:
    # Two-objective quality-vs-latency pruning lives in service.pruning (its own owner).
    from service import pruning

    finished = session.exec(
        select(Trial).where(col(Trial.job_id) == job.id, col(Trial.state) == "complete")
    ).all()
    return bool(
        pruning.should_prune(
            trial=trial, steps=steps, finished=finished, spec=spec, session=session
        )
    )


def run_stop(job_id: str) -> None:
    """Controller side of a stop: finish the job now if nothing is in flight."""
    with session_scope() as session:
        job = session.get(Job, job_id)
        if job is None:
            return
        if job.status in ("queued", "running"):
            job.status = "stopping"
            session.commit()
        dispatch(session, job)


def run_resume(job_id: str) -> None:
    """Controller side of a resume: dispatch again (a never-started job is started)."""
    with session_scope() as session:
        job = session.get(Job, job_id)
        if job is None:
            return
        if job.study_name is None and _spec(job).strategy.name != EXACT:
            job.status = "queued"
            session.commit()
            start_job(job_id)
            return
        if job.status != "running":
            return
        _send(job, dispatch(session, job))


def run_delete(job_id: str) -> None:
    """Delete the job's study and rows; trials still queued find no row and are dropped."""
    import optuna

    from service.strategies import rdb_storage

    forget_job(job_id)
    try:
        optuna.delete_study(
            study_name=_study_name(job_id), storage=rdb_storage(get_settings().database_url)
        )
    except KeyError:
        pass  # never created (library job, or deleted before it started)
    with session_scope() as session:
        session.execute(Trial.__table__.delete().where(Trial.__table__.c.job_id == job_id))  # type: ignore[attr-defined]
        session.execute(Job.__table__.delete().where(Job.__table__.c.id == job_id))  # type: ignore[attr-defined]
        session.commit()


def _stale_cutoff() -> dt.datetime:
    return utcnow() - dt.timedelta(seconds=get_settings().heartbeat_grace_s)


def purge_delivered_messages(now: dt.datetime | None = None) -> int:
    """Delete the messages kombu's SQLAlchemy transport has delivered; return how many.

    kombu 5.7's transport marks a message ``visible = false`` when a consumer takes it
    (`Channel._get`, which also sets its ``timestamp`` to that moment, local time) and never
    deletes it: an ack only clears the consumer's in-memory state, and an unacked message is
    redelivered by `_restore`, which inserts a *new* row. So a hidden row is never read
    again, yet the table grows by two rows per trial forever, and every poll's
    ``ORDER BY timestamp`` walks past them. Rows delivered more than
    `Settings.broker_delivered_retention_s` ago are deleted; other brokers need nothing.
    """
    settings = get_settings()
    url = settings.broker_url
    if not url.startswith(("sqla+", "sqlalchemy+")):
        return 0
    engine = get_engine(url.split("+", 1)[1])
    if not sa_inspect(engine).has_table(_KOMBU_MESSAGES.name):
        return 0  # nothing was ever sent
    local_now = now.astimezone().replace(tzinfo=None) if now is not None else dt.datetime.now()
    cutoff = local_now - dt.timedelta(seconds=settings.broker_delivered_retention_s)
    messages = _KOMBU_MESSAGES.c
    with engine.begin() as connection:
        done = connection.execute(
            delete(_KOMBU_MESSAGES).where(
                messages.visible.is_(False),
                or_(messages.timestamp < cutoff, messages.timestamp.is_(None)),
            )
        )
    return int(done.rowcount)


# The columns of kombu's message table (kombu/transport/sqlalchemy/models.py) that the purge
# reads; the table name is kombu's default, which `workers.celery_app` does not change.
_KOMBU_MESSAGES = sa_table(
    "kombu_message", sa_column("visible", Boolean), sa_column("timestamp", DateTime)
)


def reap() -> dict[str, int]:
    """Re-queue or fail trials whose worker went silent; resync and top up running jobs;
    delete delivered broker messages (`purge_delivered_messages`).

    Returns counts for logs and tests: ``requeued``, ``failed``, ``told``, ``dispatched``,
    ``purged``.
    """
    stats = {"requeued": 0, "failed": 0, "told": 0, "dispatched": 0}
    try:
        stats["purged"] = purge_delivered_messages()
    except Exception:  # noqa: BLE001 - a failed purge must not stop the reaper; next time
        logger.warning("purging delivered broker messages failed", exc_info=True)
    cutoff = _stale_cutoff()
    with session_scope() as session:
        jobs = session.exec(select(Job).where(col(Job.status).in_(("running", "stopping")))).all()
        for job in jobs:
            stale = session.exec(
                select(Trial).where(
                    col(Trial.job_id) == job.id,
                    col(Trial.state) == "running",
                    col(Trial.heartbeat_at) < cutoff,
                )
            ).all()
            requeue: list[str] = []
            for trial in stale:
                exhausted = trial.attempt >= trial.max_attempts
                values: dict[str, Any] = (
                    {
                        "state": "failed",
                        "reason": "crash",
                        "error": f"worker lost (heartbeat older than "
                        f"{get_settings().heartbeat_grace_s:g} s) on attempt {trial.attempt} "
                        f"of {trial.max_attempts}; attempts exhausted",
                        "finished_at": utcnow(),
                    }
                    if exhausted
                    else {"state": "queued", "worker": None}
                )
                done = session.execute(
                    update(Trial)
                    .where(
                        col(Trial.id) == trial.id,
                        col(Trial.state) == "running",
                        col(Trial.attempt) == trial.attempt,
                        col(Trial.heartbeat_at) < cutoff,
                    )
                    .values(**values)
                )
                session.commit()
                if done.rowcount == 1:  # type: ignore[attr-defined]
                    logger.warning(
                        "trial %s (job %s #%d): heartbeat stale on attempt %d, %s",
                        trial.id,
                        job.id,
                        trial.number,
                        trial.attempt,
                        "failed" if exhausted else "re-queued",
                    )
                    if exhausted:
                        stats["failed"] += 1
                    else:
                        requeue.append(trial.id)
            _send(job, requeue)
            stats["requeued"] += len(requeue)
            stats["told"] += _resync(session, job)
            ids = dispatch(session, job)
            _send(job, ids)
            stats["dispatched"] += len(ids)
    return stats


def _resync(session: Session, job: Job) -> int:
    # Trials that finished while no controller listened (their `record` was lost with a
    # killed controller) are told now; `tell` skips trials the study already finished.
    spec = _spec(job)
    if spec.strategy.name == EXACT or job.study_name is None:
        return 0
    strategy = _strategy(job, spec)
    study = getattr(strategy, "study", None)
    if study is None:
        return 0
    from optuna.trial import TrialState

    unfinished = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
    if not unfinished:
        return 0
    rows = session.exec(
        select(Trial).where(col(Trial.job_id) == job.id, col(Trial.number).in_(unfinished))
    ).all()
    told = 0
    known = set()
    for trial in rows:
        known.add(trial.number)
        if trial.state in FINISHED_TRIAL_STATES:
            strategy.tell(trial.number, outcome_of(trial, spec))
            told += 1
    # Asked but never committed as rows (the controller died between ask and commit).
    for number in unfinished - known:
        strategy.tell(number, Outcome(state="failed"))
    return told


def recover() -> None:
    """Once when a controller starts: re-send queued trials whose message may be lost."""
    with session_scope() as session:
        jobs = session.exec(select(Job).where(col(Job.status).in_(("running", "stopping")))).all()
        for job in jobs:
            queued = session.exec(
                select(Trial.id).where(col(Trial.job_id) == job.id, col(Trial.state) == "queued")
            ).all()
            _send(job, list(queued))
    reap()


# ---------------------------------------------------------------------------------------
# Library jobs (strategy "exact"): the whole front at once, recorded as finished trials.
# ---------------------------------------------------------------------------------------

# Our metric names -> the usual Puzzle library keys.
_LIBRARY_KEYS = {
    "latency_ms": "stats.runtime_ms",
    "params": "stats.num_params",
    "weight_bytes": "stats.memory_mib",
}


def _library_key(library: Any, name: str) -> str:
    keys = set(library.keys())
    for candidate in (f"metrics.{name}", f"stats.{name}", _LIBRARY_KEYS.get(name, "")):
        if candidate in keys:
            return candidate
    raise ValueError(
        f"objective {name!r} has no column in the block library; set strategy.options "
        f"'objective'/'cost' to one of {sorted(keys)}"
    )


def _run_library_job(session: Session, job: Job, spec: JobSpec) -> None:
    from search_space.library import BlockLibrary
    from search_space.solve import front

    assert spec.library is not None
    library = BlockLibrary.from_dict(spec.library)
    options = spec.strategy.options
    names = spec.objective_names
    if len(names) != 2 and "cost" not in options:
        raise ValueError(
            "a library job needs 2 objectives (quality, cost) or strategy.options 'cost', "
            f"but got objectives {list(names)}"
        )
    objective_key = str(options.get("objective") or _library_key(library, names[0]))
    cost_key = str(options.get("cost") or _library_key(library, names[1]))
    if len(names) == 2 and spec.directions[1] != "minimize":
        raise ValueError(
            f"a library job minimises its cost objective, but got direction "
            f"{spec.directions[1]!r} for {names[1]!r}"
        )
    job.status = "running"
    job.started_at = utcnow()
    result = front(
        library,
        objective=objective_key,
        cost=cost_key,
        maximize=spec.directions[0] == "maximize",
    )
    points = list(result.points)
    if len(points) > spec.n_trials:
        # Keep n_trials points spread evenly along the front, both ends included.
        step = (len(points) - 1) / max(spec.n_trials - 1, 1)
        keep = sorted({round(i * step) for i in range(spec.n_trials)})
        points = [points[i] for i in keep]
    cost_name = names[1] if len(names) == 2 else cost_key
    now = utcnow()
    rows = []
    for number, point in enumerate(points):
        try:
            design: dict[str, Any] = library.design(
                point.choices, name=f"{job.name} front #{number}"
            ).model_dump(mode="json")
        except ValueError:
            design = {"choices": list(point.choices)}
        values: dict[str, float] = {
            names[0]: float(point.objective),
            cost_name: float(point.cost),
        }
        constraints: dict[str, float] = {}
        for c in spec.constraints:
            if c.name in values:
                constraints[c.name] = values[c.name] - c.max
            else:
                total = library.total(point.choices, _library_key(library, c.name))
                constraints[c.name] = float(total) - c.max
        rows.append(
            Trial(
                job_id=job.id,
                number=number,
                design=design,
                state="complete",
                feasible=all(v <= 0 for v in constraints.values()),
                values=values,
                constraints=constraints,
                attempt=1,
                max_attempts=1,
                worker="controller:exact",
                started_at=now,
                finished_at=now,
            )
        )
    session.add_all(rows)
    _finish(job, "completed")
    logger.info(
        "library job %s: front of %d points (%d recorded) in %.3f s",
        job.id,
        len(result.points),
        len(rows),
        result.elapsed_s,
    )
    session.commit()
