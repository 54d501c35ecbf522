"""A real ffnas stack for end-to-end tests: database, broker, Celery worker processes.

`Stack` points the settings at a fresh SQLite file + SQLAlchemy broker (the embedded
default) or at a fresh PostgreSQL database + Redis (a unique key prefix per stack), runs
the migrations, and starts `celery worker` subprocesses for the controller and evaluation
queues with short heartbeats, so recovery paths run in seconds.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS = "redis://127.0.0.1:6379/0"

# Recovery in seconds: beats every 0.3 s, stale after 1.5 s, reaper every 0.5 s.
FAST_ENV = {
    "FFNAS_HEARTBEAT_INTERVAL_S": "0.3",
    "FFNAS_HEARTBEAT_GRACE_S": "1.5",
    "FFNAS_REAPER_INTERVAL_S": "0.5",
    "FFNAS_BROKER_POLLING_INTERVAL_S": "0.005",
    "FFNAS_TASK_SOFT_TIME_LIMIT_S": "20",
    "FFNAS_TASK_TIME_LIMIT_S": "25",
    "FFNAS_VISIBILITY_TIMEOUT_S": "30",
}


def postgres_available() -> bool:
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN, connect_timeout=2):
            return True
    except Exception:  # noqa: BLE001
        return False


def redis_available() -> bool:
    try:
        import redis

        return bool(redis.Redis.from_url(REDIS, socket_timeout=2).ping())
    except Exception:  # noqa: BLE001
        return False


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """A new, empty PostgreSQL database; dropped afterwards."""
    import psycopg

    name = f"ffnas_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        from service.core.db import get_engine

        get_engine.cache_clear()
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _apply_settings(env: dict[str, str]) -> None:
    from service.core.config import get_settings
    from service.core.db import get_engine
    from service.strategies import rdb_storage
    from workers.celery_app import app
    from workers.celery_app import configure

    os.environ.update(env)
    get_settings.cache_clear()
    get_engine.cache_clear()
    rdb_storage.cache_clear()
    configure(app, get_settings())


class Stack:
    """Settings, schema and worker processes of one test stack."""

    def __init__(self, tmp: Path, *, database_url: str, broker_url: str, prefix: str) -> None:
        self.tmp = tmp
        self.env = {
            **FAST_ENV,
            "FFNAS_DATA_DIR": str(tmp),
            "FFNAS_DATABASE_URL": database_url,
            "FFNAS_BROKER_URL": broker_url,
            "FFNAS_BROKER_KEY_PREFIX": prefix,
        }
        self._saved = {k: os.environ.get(k) for k in self.env}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        _apply_settings(self.env)
        from service.core.db import init_db

        init_db()

    def set_env(self, **values: str) -> None:
        """Change settings for this process and for workers started afterwards."""
        self.env.update(values)
        _apply_settings(self.env)

    def start(
        self,
        name: str,
        *,
        queues: str,
        pool: str = "solo",
        concurrency: int = 1,
        app: str = "workers.tasks",
        beat: bool = False,
    ) -> subprocess.Popen[bytes]:
        """Start `celery -A app worker` on `queues` as process `name`."""
        args = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            app,
            "worker",
            "-Q",
            queues,
            "-P",
            pool,
            "-c",
            str(concurrency),
            "-n",
            f"{name}-{uuid.uuid4().hex[:6]}@%h",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-l",
            "INFO",
        ]
        if beat:
            args += ["-B", "-s", str(self.tmp / f"beat-{name}")]
        log = (self.tmp / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            args,
            cwd=REPO,
            env={**os.environ, **self.env},
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        self.procs[name] = proc
        return proc

    def start_controller(self) -> subprocess.Popen[bytes]:
        return self.start("controller", queues="controller", app="service.tasks", beat=True)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs.pop(name)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        proc.wait(timeout=30)

    def log(self, name: str) -> str:
        path = self.tmp / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def close(self) -> None:
        for name in list(self.procs):
            self.kill(name, signal.SIGKILL)
        for key, value in self._saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        from service.core.config import get_settings
        from service.core.db import get_engine

        get_engine.cache_clear()
        get_settings.cache_clear()


def wait_for(
    predicate: Callable[[], Any], *, timeout: float, what: str, stack: Stack | None = None
) -> Any:
    """Poll `predicate` until truthy; fail with the worker logs after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    logs = ""
    if stack is not None:
        for name in ("controller", "worker", "worker2"):
            logs += f"\n--- {name} ---\n" + stack.log(name)[-4000:]
    pytest.fail(f"timed out after {timeout} s waiting for {what}{logs}")


@contextlib.contextmanager
def sqlite_stack(tmp: Path) -> Iterator[Stack]:
    stack = Stack(
        tmp,
        database_url=f"sqlite:///{tmp / 'ffnas.db'}",
        broker_url=f"sqla+sqlite:///{tmp / 'broker.db'}",
        prefix="",
    )
    try:
        yield stack
    finally:
        stack.close()


@contextlib.contextmanager
def server_stack(tmp: Path, database_url: str) -> Iterator[Stack]:
    """PostgreSQL database `database_url` + Redis with a key prefix unique to this stack."""
    prefix = f"ffnas-test-{uuid.uuid4().hex[:10]}:"
    stack = Stack(tmp, database_url=database_url, broker_url=REDIS, prefix=prefix)
    try:
        yield stack
    finally:
        stack.close()
        import redis

        client = redis.Redis.from_url(REDIS)
        keys = list(client.scan_iter(match=f"{prefix}*"))
        if keys:
            client.delete(*keys)
