"""Database rows and API shapes of the search service (see docs/contracts.md).

One model family per resource, FastAPI-template style: ``X(table=True)`` is the row,
``XPublic`` what the API returns, ``XsPublic`` the list wrapper. The input model of a job is
`JobSpec` (service/spec.py, re-exported here); it forbids unknown fields, so a client can
never set `owner_id`, `status`, `state` or `attempt` (OWASP API3).

Timestamps are timezone-aware UTC (`UTCDateTime`); every table a client watches has an
`updated_at` that SQLAlchemy bumps on each ORM or Core update (the event stream's cursor).

Table names carry the prefix `ffnas_`: Optuna's RDB storage lives in the same database and
owns plain names such as `trials` and `studies`.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any
from typing import Literal

from pydantic import BaseModel
from pydantic import ConfigDict
from sqlalchemy import JSON
from sqlalchemy import Column
from sqlalchemy import ForeignKey
from sqlalchemy import Index
from sqlalchemy import String
from sqlalchemy import Text
from sqlalchemy import UniqueConstraint
from sqlmodel import Field
from sqlmodel import SQLModel

from service.core.sqltypes import UTCDateTime
from service.core.sqltypes import utcnow
from service.spec import JobSpec
from service.spec import MetricName

__all__ = [
    "FINISHED_JOB_STATUSES",
    "FINISHED_TRIAL_STATES",
    "ApiToken",
    "ExportPublic",
    "Job",
    "JobPublic",
    "JobSpec",
    "JobStatus",
    "JobsPublic",
    "LatencyPublic",
    "LatencyRecord",
    "LossyItemPublic",
    "ObjectivePublic",
    "ParetoPublic",
    "HypervolumePoint",
    "Target",
    "TargetPublic",
    "TargetsPublic",
    "TokenPublic",
    "TokensPublic",
    "Trial",
    "TrialCounts",
    "TrialPublic",
    "TrialState",
    "TrialsPublic",
    "new_id",
]

JobStatus = Literal["queued", "running", "stopping", "stopped", "completed", "failed"]
TrialState = Literal["queued", "running", "complete", "pruned", "failed"]
FINISHED_JOB_STATUSES: frozenset[str] = frozenset({"stopped", "completed", "failed"})
FINISHED_TRIAL_STATES: frozenset[str] = frozenset({"complete", "pruned", "failed"})


def new_id() -> str:
    """A random 32-hex-digit id (OWASP API1: ids that cannot be guessed or enumerated)."""
    return uuid.uuid4().hex


def _created() -> Any:
    return Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


def _updated() -> Any:
    return Field(
        default_factory=utcnow,
        sa_type=UTCDateTime,
        nullable=False,
        index=True,
        sa_column_kwargs={"onupdate": utcnow},
    )


def _maybe_time() -> Any:
    return Field(default=None, sa_type=UTCDateTime, nullable=True)


# ---------------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------------


class Job(SQLModel, table=True):
    """A search job: its spec, owner, status and the Optuna study that drives it."""

    __tablename__ = "ffnas_jobs"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    owner_id: str = Field(index=True, max_length=32)
    name: str = Field(max_length=200)
    spec: dict[str, Any] = Field(sa_type=JSON, description="JobSpec as JSON.")
    target: str = Field(index=True, max_length=64)
    evaluator: str = Field(max_length=64)
    strategy: str = Field(max_length=32)
    n_trials: int
    status: str = Field(default="queued", index=True, max_length=16)
    study_name: str | None = Field(default=None, max_length=255)
    error: str | None = Field(default=None, sa_type=Text)
    created_at: dt.datetime = _created()
    updated_at: dt.datetime = _updated()
    started_at: dt.datetime | None = _maybe_time()
    finished_at: dt.datetime | None = _maybe_time()


class Trial(SQLModel, table=True):
    """One evaluation of one design, numbered as in the job's Optuna study."""

    __tablename__ = "ffnas_trials"
    __table_args__ = (
        UniqueConstraint("job_id", "number", name="uq_ffnas_trials_job_number"),
        Index("ix_ffnas_trials_job_state", "job_id", "state"),
    )

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    job_id: str = Field(
        sa_column=Column(
            String(32), ForeignKey("ffnas_jobs.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    number: int
    design: dict[str, Any] = Field(sa_type=JSON, description="FFNDesign as JSON.")
    state: str = Field(default="queued", max_length=16)
    feasible: bool | None = None
    values: dict[str, float] = Field(default_factory=dict, sa_type=JSON)
    constraints: dict[str, float] = Field(default_factory=dict, sa_type=JSON)
    intermediate: list[list[float]] = Field(default_factory=list, sa_type=JSON)
    latency_p20_ms: float | None = None
    latency_p50_ms: float | None = None
    latency_p80_ms: float | None = None
    layer_latency_ms: list[float] | None = Field(default=None, sa_type=JSON)
    target_fingerprint: dict[str, Any] | None = Field(default=None, sa_type=JSON)
    reason: str | None = Field(default=None, max_length=32)
    error: str | None = Field(default=None, sa_type=Text)
    attempt: int = 0
    max_attempts: int = 3
    stop_requested: bool = False
    heartbeat_at: dt.datetime | None = _maybe_time()
    worker: str | None = Field(default=None, max_length=255)
    created_at: dt.datetime = _created()
    updated_at: dt.datetime = _updated()
    started_at: dt.datetime | None = _maybe_time()
    finished_at: dt.datetime | None = _maybe_time()


class Target(SQLModel, table=True):
    """A place trials run: registered by the workers that serve its queue."""

    __tablename__ = "ffnas_targets"

    name: str = Field(primary_key=True, max_length=64)
    fingerprint: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    calibration: dict[str, Any] | None = Field(default=None, sa_type=JSON)
    healthy: bool = True
    status_message: str | None = Field(default=None, sa_type=Text)
    last_seen: dt.datetime = _created()


class LatencyRecord(SQLModel, table=True):
    """A cached timing of one op signature on one target."""

    __tablename__ = "ffnas_latency_records"
    __table_args__ = (
        UniqueConstraint("target", "signature", name="uq_ffnas_latency_records_target_signature"),
    )

    id: int | None = Field(default=None, primary_key=True)
    target: str = Field(max_length=64)
    signature: str = Field(max_length=512)
    p20_ms: float
    p50_ms: float
    p80_ms: float
    samples: int
    method: str = Field(max_length=64)
    measured_at: dt.datetime = _created()


class ApiToken(SQLModel, table=True):
    """A bearer token: only its SHA-256 is stored; the secret is shown once at creation."""

    __tablename__ = "ffnas_api_tokens"

    id: int | None = Field(default=None, primary_key=True)
    owner_id: str = Field(index=True, max_length=32)
    name: str = Field(max_length=200)
    token_hash: str = Field(unique=True, max_length=64)
    created_at: dt.datetime = _created()


# ---------------------------------------------------------------------------------------
# API shapes (responses). Inputs are `JobSpec` and query parameters.
# ---------------------------------------------------------------------------------------


class _Public(BaseModel):
    model_config = ConfigDict(frozen=True)


class TrialCounts(_Public):
    queued: int = 0
    running: int = 0
    complete: int = 0
    pruned: int = 0
    failed: int = 0


class JobPublic(_Public):
    id: str
    name: str
    status: JobStatus
    spec: dict[str, Any]
    target: str
    evaluator: str
    strategy: str
    n_trials: int
    counts: TrialCounts
    best: dict[str, float] | None
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    error: str | None


class JobsPublic(_Public):
    data: list[JobPublic]
    count: int


class LatencyPublic(_Public):
    p20_ms: float | None
    p50_ms: float | None
    p80_ms: float | None


class TrialPublic(_Public):
    id: str
    number: int
    state: TrialState
    feasible: bool | None
    values: dict[str, float]
    constraints: dict[str, float]
    intermediate: list[list[float]]
    design: dict[str, Any]
    summary: str
    latency: LatencyPublic | None
    layer_latency_ms: list[float] | None
    reason: str | None
    error: str | None
    attempt: int
    created_at: dt.datetime
    finished_at: dt.datetime | None


class TrialsPublic(_Public):
    data: list[TrialPublic]
    count: int


class ObjectivePublic(_Public):
    name: MetricName
    direction: Literal["minimize", "maximize"]


class HypervolumePoint(_Public):
    number: int
    value: float


class ParetoPublic(_Public):
    objectives: list[ObjectivePublic]
    points: list[TrialPublic]
    hypervolume: list[HypervolumePoint]
    reference_point: list[float]


class LossyItemPublic(_Public):
    layer: int | None
    knob: str
    value: Any
    reason: str
    severity: str | None = None


class ExportPublic(_Public):
    filename: str
    content: str
    lossy: list[LossyItemPublic]


class TargetPublic(_Public):
    name: str
    fingerprint: dict[str, Any]
    calibration: dict[str, Any] | None
    healthy: bool
    status_message: str | None
    last_seen: dt.datetime


class TargetsPublic(_Public):
    data: list[TargetPublic]
    count: int


class TokenPublic(_Public):
    """One API token of the caller, never its hash or secret; `current` marks the token the
    request was made with."""

    id: int
    name: str
    created_at: dt.datetime
    current: bool


class TokensPublic(_Public):
    data: list[TokenPublic]
    count: int
