"""Helpers that write job and trial rows directly (as the controller and workers would)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func
from sqlmodel import select

from search_space.design import FFNDesign
from search_space.design import LayerFFN
from search_space.design import ModelDims
from service.core.db import session_scope
from service.core.sqltypes import utcnow
from service.models import ApiToken
from service.models import Job
from service.models import Target
from service.models import Trial

DIMS = ModelDims(d_model=64, n_layers=2, n_heads=4, n_kv_heads=4, vocab=256, seq_len=128)


def design(width: int = 128) -> dict[str, Any]:
    return FFNDesign(
        dims=DIMS, layers=(LayerFFN(kind="dense", width=width), LayerFFN(kind="noop"))
    ).model_dump(mode="json")


def add_job(
    owner_id: str,
    *,
    status: str = "running",
    objectives: list[dict[str, str]] | None = None,
    name: str = "job",
) -> str:
    objectives = objectives or [
        {"name": "params", "direction": "minimize"},
        {"name": "flops", "direction": "minimize"},
    ]
    spec = {"name": name, "objectives": objectives, "n_trials": 10, "target": "cpu"}
    with session_scope() as session:
        job = Job(
            owner_id=owner_id,
            name=name,
            spec=spec,
            target="cpu",
            evaluator="analytic",
            strategy="tpe",
            n_trials=10,
            status=status,
        )
        session.add(job)
        session.commit()
        return job.id


def add_trial(
    job_id: str,
    number: int,
    *,
    values: dict[str, float] | None = None,
    state: str = "complete",
    feasible: bool | None = True,
    latency: tuple[float, float, float] | None = None,
) -> str:
    now = utcnow()
    with session_scope() as session:
        trial = Trial(
            job_id=job_id,
            number=number,
            design=design(64 * (number + 1)),
            state=state,
            feasible=feasible,
            values=values or {},
            constraints={"latency_ms": -0.5} if feasible is not None else {},
            attempt=1,
            finished_at=now if state in ("complete", "pruned", "failed") else None,
        )
        if latency is not None:
            trial.latency_p20_ms, trial.latency_p50_ms, trial.latency_p80_ms = latency
        session.add(trial)
        session.commit()
        return trial.id


def set_job_status(job_id: str, status: str) -> None:
    with session_scope() as session:
        job = session.get(Job, job_id)
        assert job is not None
        job.status = status
        if status in ("stopped", "completed", "failed"):
            job.finished_at = utcnow()
        session.commit()


def add_target(name: str = "cpu") -> None:
    with session_scope() as session:
        session.add(
            Target(name=name, fingerprint={"device": "cpu", "cores": 2}, last_seen=utcnow())
        )
        session.commit()


def row_counts() -> dict[str, int]:
    with session_scope() as session:
        return {
            model.__name__: int(session.exec(select(func.count()).select_from(model)).one())
            for model in (Job, Trial, Target, ApiToken)
        }


def older(seconds: float) -> dt.datetime:
    return utcnow() - dt.timedelta(seconds=seconds)
