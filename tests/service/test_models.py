"""JobSpec rules, settings checks, and the timestamp columns."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import update

from service.core.config import Settings
from service.core.db import session_scope
from service.models import Job
from service.models import Trial
from service.spec import JobSpec
from tests.service.conftest import SPACE
from tests.service.conftest import ServiceEnv
from tests.service.rows import add_job
from tests.service.rows import add_trial

BASE: dict[str, Any] = {
    "name": "spec",
    "space": SPACE,
    "objectives": [{"name": "params"}],
    "n_trials": 10,
}


def errors_of(data: dict[str, Any]) -> list[dict[str, Any]]:
    with pytest.raises(ValidationError) as info:
        JobSpec.model_validate(data)
    return info.value.errors()


def test_valid_spec_fills_defaults() -> None:
    spec = JobSpec.model_validate(BASE)
    assert spec.strategy.name == "tpe" and spec.strategy.pruner == "none"
    assert spec.evaluator.name == "analytic" and spec.target == "cpu"
    assert spec.max_in_flight == 4 and spec.max_attempts == 3
    assert spec.objective_names == ("params",) and spec.directions == ("minimize",)
    # The stored JSON validates back to the same spec (the controller re-reads it).
    assert JobSpec.model_validate(json.loads(spec.model_dump_json())) == spec


@pytest.mark.parametrize(
    "extra",
    [
        {"owner_id": "x"},
        {"status": "running"},
        {"attempts": 0},
        {"strategy": {"name": "tpe", "owner": 1}},
        {"objectives": [{"name": "params", "weight": 2}]},
        {"evaluator": {"name": "analytic", "state": "complete"}},
    ],
)
def test_unknown_fields_are_forbidden_at_every_level(extra: dict[str, Any]) -> None:
    errors = errors_of({**BASE, **extra})
    assert any(e["type"] == "extra_forbidden" for e in errors), errors


def _msg(errors: list[dict[str, Any]]) -> str:
    return " | ".join(e["msg"] for e in errors)


def test_space_xor_library_and_exact() -> None:
    assert "exactly one of `space` and `library`" in _msg(errors_of({**BASE, "space": None}))
    library = {"layer_0": {"a": {"stats": {"runtime_ms": 1.0}, "metrics": {"kl_div": 0.0}}}}
    both = errors_of({**BASE, "library": library})
    assert "exactly one of `space` and `library`" in _msg(both)
    exact_with_space = errors_of({**BASE, "strategy": {"name": "exact"}})
    assert "`library` goes with strategy 'exact'" in _msg(exact_with_space)
    no_exact = errors_of({**BASE, "space": None, "library": library})
    assert "but got strategy='tpe' with library" in _msg(no_exact)
    ok = JobSpec.model_validate(
        {**BASE, "space": None, "library": library, "strategy": {"name": "exact"}}
    )
    assert ok.library == library


def test_invalid_library_names_the_field() -> None:
    errors = errors_of(
        {**BASE, "space": None, "library": {"layer_0": 5}, "strategy": {"name": "exact"}}
    )
    assert errors[0]["loc"] == ("library",) and "invalid block library" in errors[0]["msg"]


def test_pruner_rules() -> None:
    no_reports = errors_of({**BASE, "strategy": {"pruner": "median"}})
    assert "needs an evaluator that reports intermediate values" in _msg(no_reports)
    proxy: dict[str, Any] = {"name": "proxy"}
    two = [{"name": "bpb"}, {"name": "params"}]
    multi = errors_of(
        {**BASE, "evaluator": proxy, "objectives": two, "strategy": {"pruner": "hyperband"}}
    )
    assert "pruner 'hyperband' needs exactly 1 objective" in _msg(multi)
    dominated = errors_of(
        {**BASE, "evaluator": proxy, "objectives": two, "strategy": {"pruner": "dominated"}}
    )
    assert "needs exactly 2 objectives including 'latency_ms'" in _msg(dominated)
    ok = JobSpec.model_validate(
        {
            **BASE,
            "evaluator": proxy,
            "objectives": [{"name": "bpb"}, {"name": "latency_ms"}],
            "strategy": {"pruner": "dominated"},
        }
    )
    assert ok.strategy.pruner == "dominated"


def test_limits_come_from_settings(
    service_env: ServiceEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    from service.core.config import get_settings

    monkeypatch.setenv("FFNAS_MAX_N_TRIALS", "50")
    monkeypatch.setenv("FFNAS_MAX_SPACE_LAYERS", "2")
    get_settings.cache_clear()
    errors = errors_of({**BASE, "n_trials": 51})
    by_field = {e["loc"][0]: e["msg"] for e in errors}
    assert "`n_trials <= 50` must hold (server limit FFNAS_MAX_N_TRIALS)" in by_field["n_trials"]
    assert "`dims.n_layers <= 2` must hold" in by_field["space"]
    too_long = errors_of({**BASE, "trial_time_limit_s": 86000})
    assert "FFNAS_TASK_SOFT_TIME_LIMIT_S" in _msg(too_long)


def test_settings_checks_at_start_up(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="task_soft_time_limit_s < task_time_limit_s"):
        Settings(task_time_limit_s=4000, visibility_timeout_s=3600)
    with pytest.raises(ValidationError, match="heartbeat_grace_s > 2 \\* heartbeat_interval_s"):
        Settings(heartbeat_interval_s=10, heartbeat_grace_s=15)
    with pytest.raises(ValidationError, match="sqlite:// or postgresql://"):
        Settings(database_url="mysql://x/y")
    settings = Settings(data_dir=tmp_path / "d", database_url="postgresql://u@h/db")
    assert settings.database_url == "postgresql+psycopg://u@h/db"
    assert settings.broker_url == f"sqla+sqlite:///{tmp_path / 'd' / 'broker.db'}"
    default = Settings(data_dir=tmp_path)
    assert default.database_url == f"sqlite:///{tmp_path / 'ffnas.db'}"


def test_updated_at_moves_on_orm_and_core_updates(backend: str, service_env: ServiceEnv) -> None:
    job_id = add_job("0" * 32)
    trial_id = add_trial(job_id, 0, state="running")
    with session_scope() as session:
        trial = session.get(Trial, trial_id)
        assert trial is not None
        first = trial.updated_at
        assert first.tzinfo is not None and first.utcoffset() == dt.timedelta(0)
        time.sleep(0.01)
        trial.state = "complete"
        session.commit()
        second = trial.updated_at
        assert second > first
        time.sleep(0.01)
        # Core UPDATE, as the controller and workers write: the column's onupdate fires too.
        session.execute(update(Job).where(Job.id == job_id).values(status="completed"))
        session.execute(update(Trial).where(Trial.id == trial_id).values(attempt=2))
        session.commit()
        session.expire_all()
        trial = session.get(Trial, trial_id)
        job = session.get(Job, job_id)
        assert trial is not None and job is not None
        assert trial.updated_at > second and job.updated_at > job.created_at


def test_naive_datetimes_are_refused(service_env: ServiceEnv) -> None:
    job_id = add_job("0" * 32)
    with session_scope() as session:
        job = session.get(Job, job_id)
        assert job is not None
        job.started_at = dt.datetime(2026, 1, 1)  # no tzinfo
        with pytest.raises(Exception, match="timezone-aware"):
            session.commit()
