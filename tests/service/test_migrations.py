"""`alembic upgrade head` on an empty database gives exactly the tables of `service.models`."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine
from sqlalchemy import inspect
from sqlalchemy import text
from sqlmodel import SQLModel

import service.models  # noqa: F401  (registers the tables)
from service.core.db import VERSION_TABLE
from service.core.db import alembic_config
from service.core.db import init_db
from service.core.db import make_engine
from tests.service.conftest import PG_SERVER


def _diffs(url: str) -> list[object]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection,
                opts={
                    "compare_type": True,
                    "version_table": VERSION_TABLE,
                    "include_name": lambda name, type_, parents: (
                        type_ != "table" or name in SQLModel.metadata.tables
                    ),
                },
            )
            return list(compare_metadata(context, SQLModel.metadata))
    finally:
        engine.dispose()


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'empty.db'}"
    base = request.getfixturevalue("pg_database_url")
    # A second, empty database next to the session one (dropped by this fixture's caller).
    name = base.rsplit("/", 1)[1] + "_mig"
    admin = create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        from service.core.db import get_engine

        get_engine.cache_clear()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    request.addfinalizer(drop)
    return f"{PG_SERVER}/{name}"


def test_upgrade_head_matches_models(empty_url: str) -> None:
    init_db(empty_url)
    assert _diffs(empty_url) == []
    assert set(SQLModel.metadata.tables) | {VERSION_TABLE} == _tables(empty_url)
    init_db(empty_url)  # idempotent: already at head
    assert _diffs(empty_url) == []


def test_downgrade_to_base_removes_our_tables(empty_url: str) -> None:
    init_db(empty_url)
    command.downgrade(alembic_config(empty_url), "base")
    assert _tables(empty_url) <= {VERSION_TABLE}
    init_db(empty_url)
    assert _diffs(empty_url) == []


def test_coexists_with_optuna_storage(empty_url: str) -> None:
    """Optuna stamps `alembic_version` in the same database; our revision lives elsewhere and
    Optuna's tables are neither tracked nor dropped by our migrations."""
    import optuna

    storage = optuna.storages.RDBStorage(empty_url)
    optuna.create_study(study_name="probe", storage=storage)
    storage.engine.dispose()
    init_db(empty_url)
    tables = _tables(empty_url)
    assert {"studies", "trials", "alembic_version", VERSION_TABLE} <= tables
    assert "ffnas_jobs" in tables and "ffnas_trials" in tables
    assert _diffs(empty_url) == []
    # Optuna still reads its study after our migration ran.
    assert optuna.load_study(study_name="probe", storage=empty_url).study_name == "probe"


def test_concurrent_init_db_is_serialised(tmp_path: Path) -> None:
    """`ffnas up` starts API, controller and worker together; each runs init_db."""
    url = f"sqlite:///{tmp_path / 'race.db'}"
    errors: list[BaseException] = []

    def run() -> None:
        try:
            init_db(url)
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert _diffs(url) == []
