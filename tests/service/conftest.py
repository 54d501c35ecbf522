"""Fixtures of the service tests: an app on a temporary SQLite file or on a PostgreSQL
database created for this test session (unique name, dropped at the end).

`service_env` points `Settings` (through the environment, as in production) at a fresh data
directory and database; `client` is a `TestClient` of `create_app()` on it; `auth` holds the
bearer header of a new owner. Parametrize over backends with the `backend` fixture's params.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine
from sqlalchemy import text
from sqlmodel import SQLModel

from service.core.config import Settings
from service.core.config import get_settings
from service.core.db import get_engine
from service.core.db import init_db
from service.core.db import session_scope

PG_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"
BACKENDS = ["sqlite", "postgresql"]


def _reset_caches() -> None:
    get_settings.cache_clear()
    for engine_url in list(_engines_seen):
        get_engine(engine_url).dispose()
    _engines_seen.clear()
    get_engine.cache_clear()


_engines_seen: set[str] = set()


@pytest.fixture(scope="session")
def pg_database_url() -> Iterator[str]:
    """A PostgreSQL database for this test session; skipped when no server answers."""
    admin = create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")
    name = f"ffnas_test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # no server here: the SQLite half still runs
        admin.dispose()
        pytest.fail(f"PostgreSQL at {PG_SERVER} is not reachable: {exc}")
    try:
        yield f"{PG_SERVER}/{name}"
    finally:
        _reset_caches()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _truncate_pg(url: str) -> None:
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            present = {
                row[0]
                for row in connection.execute(
                    text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
                )
            }
            ours = [t for t in SQLModel.metadata.tables if t in present]
            if ours:
                connection.execute(text(f"TRUNCATE {', '.join(ours)} CASCADE"))
    finally:
        engine.dispose()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@dataclass(frozen=True)
class ServiceEnv:
    settings: Settings
    data_dir: Path
    backend: str


@pytest.fixture
def service_env(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ServiceEnv]:
    """Settings on a fresh data dir and database, schema at head. SQLite unless the test
    also uses `backend` (then both)."""
    backend = request.getfixturevalue("backend") if "backend" in request.fixturenames else "sqlite"
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    monkeypatch.setenv("FFNAS_DATA_DIR", str(data_dir))
    monkeypatch.setenv("FFNAS_BROKER_URL", f"sqla+sqlite:///{data_dir / 'broker.db'}")
    monkeypatch.setenv("FFNAS_EVENT_POLL_INTERVAL_S", "0.05")
    for name in ("FFNAS_URL", "FFNAS_TOKEN", "FFNAS_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    if backend == "postgresql":
        url = request.getfixturevalue("pg_database_url")
        _truncate_pg(url)
        monkeypatch.setenv("FFNAS_DATABASE_URL", url)
    _reset_caches()
    settings = get_settings()
    _engines_seen.add(settings.database_url)
    _configure_celery(settings)
    init_db()
    yield ServiceEnv(settings=settings, data_dir=data_dir, backend=backend)
    _reset_caches()


def _configure_celery(settings: Settings) -> None:
    # The Celery app is built at import from the settings of that moment; point it at this
    # test's broker (the API enqueues controller tasks there; no worker consumes them here).
    try:
        from workers import celery_app
    except ImportError:
        return
    celery_app.configure(celery_app.app, settings)
    # `configure` drops the connection pool; the producer pool built on it is cached too.
    celery_app.app.amqp._producer_pool = None


@pytest.fixture
def client(service_env: ServiceEnv) -> Iterator[TestClient]:
    from service.main import create_app

    with TestClient(create_app()) as test_client:
        yield test_client


def new_owner(name: str = "tester") -> tuple[str, dict[str, str]]:
    """A new owner's id and its bearer header."""
    from service.auth import create_token

    with session_scope() as session:
        owner, token = create_token(session, name)
    return owner, {"Authorization": f"Bearer {token}"}


@pytest.fixture
def auth(service_env: ServiceEnv) -> dict[str, str]:
    return new_owner()[1]


SPACE: dict[str, object] = {
    "name": "tiny",
    "dims": {
        "d_model": 64,
        "n_layers": 4,
        "n_heads": 4,
        "n_kv_heads": 2,
        "vocab": 256,
        "seq_len": 256,
        "dtype": "fp32",
    },
    "tie": "per_layer",
    "layer": {
        "kind": {"choices": ["dense", "noop"]},
        "width": {"low": 64, "high": 256, "step": 64},
    },
}


@pytest.fixture
def job_spec() -> dict[str, object]:
    """A valid job body: analytic evaluator, two objectives, a 4-layer space."""
    return {
        "name": "tiny analytic",
        "space": SPACE,
        "objectives": [{"name": "params"}, {"name": "flops"}],
        "n_trials": 8,
        "max_in_flight": 2,
    }
