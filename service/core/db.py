"""Engines, sessions and schema set-up for SQLite (embedded default) and PostgreSQL.

SQLite gets WAL journal mode (readers never block the single writer), a 30 s busy timeout
(writers from the API, controller and workers queue instead of failing with "database is
locked") and `check_same_thread=False` (FastAPI runs sync routes in a thread pool).
PostgreSQL goes through psycopg 3 (`postgresql+psycopg://`). The schema is owned by
Alembic: `init_db()` runs `upgrade head`, serialised across processes.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy import create_engine
from sqlalchemy import event
from sqlalchemy import make_url
from sqlalchemy import text
from sqlmodel import Session

from service.core.config import get_settings

__all__ = [
    "ALEMBIC_INI",
    "VERSION_TABLE",
    "alembic_config",
    "get_engine",
    "get_session",
    "init_db",
    "make_engine",
    "session_scope",
]

logger = logging.getLogger(__name__)

ALEMBIC_INI = Path(__file__).resolve().parents[1] / "alembic.ini"
# Optuna's RDB storage, which lives in the same database, stamps its own schema revision in
# the default `alembic_version` table; ours must not share it.
VERSION_TABLE = "ffnas_alembic_version"
# Any constant works; it only has to be the same in every process that migrates.
_PG_MIGRATION_LOCK = 0x0FF7A5


def make_engine(url: str, **kwargs: Any) -> Engine:
    """A new engine for `url` with the per-backend settings above.

    The pool never makes a checkout wait (`max_overflow=-1`): FastAPI runs a request's sync
    dependencies and handler in separate thread-pool hops, and a request holds its session's
    connection between hops. With a bounded pool (SQLAlchemy's default 5 + 10) and 40 pool
    threads, 50 concurrent clients deadlocked until the 30 s pool timeout: every thread sat
    in checkout while the connection holders waited for a thread. Idle connections above
    `pool_size` are closed on return.
    """
    # 64 kept: with 10, 50 concurrent API clients made the pool close and reopen connections
    # (each open runs the four PRAGMAs below): ~650 opens per 2000 requests.
    kwargs.setdefault("pool_size", 64)
    kwargs.setdefault("max_overflow", -1)
    sa_url = make_url(url)
    if sa_url.get_backend_name() == "sqlite":
        busy_s = get_settings().sqlite_busy_timeout_s
        if sa_url.database and sa_url.database != ":memory:":
            Path(sa_url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": busy_s},
            **kwargs,
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, connection_record: Any) -> None:
            del connection_record
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={int(busy_s * 1000)}")
            cursor.execute("PRAGMA foreign_keys=ON")
            # WAL + NORMAL is durable against application crashes (not power loss) and
            # avoids an fsync per commit.
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)


@lru_cache(maxsize=8)
def get_engine(url: str | None = None) -> Engine:
    """The process-wide engine for `url` (default: `settings.database_url`)."""
    return make_engine(url or get_settings().database_url)


def get_session() -> Iterator[Session]:
    """FastAPI dependency: one session per request."""
    with Session(get_engine()) as session:
        yield session


@contextlib.contextmanager
def session_scope(url: str | None = None) -> Iterator[Session]:
    """A session for code outside a request (tasks, CLI); commits are explicit."""
    with Session(get_engine(url)) as session:
        yield session


def alembic_config(url: str) -> Any:
    """An Alembic `Config` for our migrations, pointed at `url`."""
    from alembic.config import Config

    config = Config(str(ALEMBIC_INI))
    config.set_main_option("script_location", str(ALEMBIC_INI.parent / "migrations"))
    # `%` is ConfigParser's interpolation character; URLs may contain it (passwords).
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def init_db(url: str | None = None) -> None:
    """Bring the schema to the newest revision (`alembic upgrade head`).

    Several processes start together under `ffnas up` (API, controller, worker); the upgrade
    is serialised with a file lock (SQLite) or an advisory lock (PostgreSQL), so the second
    process finds the schema at head and does nothing.
    """
    from alembic import command

    url = url or get_settings().database_url
    sa_url = make_url(url)
    config = alembic_config(url)
    if sa_url.get_backend_name() == "sqlite":
        database = sa_url.database
        if not database or database == ":memory:":
            command.upgrade(config, "head")
            return
        lock_path = Path(database).with_name(Path(database).name + ".migrate.lock")
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with _file_lock(lock_path):
            command.upgrade(config, "head")
        return
    engine = get_engine(url)
    with engine.connect() as connection:
        connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
        connection.commit()  # the lock is session-level; start the migration afresh
        try:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
            connection.commit()
        finally:
            connection.execute(
                text("SELECT pg_advisory_unlock(:key)"), {"key": _PG_MIGRATION_LOCK}
            )
            connection.commit()
    logger.info("database schema at head: %s", sa_url.render_as_string(hide_password=True))


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # Windows: no fcntl; a single process is the norm there.
        yield
        return
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
