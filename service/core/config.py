"""The one settings object of ffnas: every process (API, controller, workers, CLI) reads it.

Values come from the environment (prefix ``FFNAS_``, e.g. ``FFNAS_DATABASE_URL``) or a
``.env`` file in the working directory. Nothing else in the project reads ``os.environ``
for configuration. Call `get_settings()` (cached) at use time; tests clear its cache after
changing the environment.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices
from pydantic import Field
from pydantic import model_validator
from pydantic_settings import BaseSettings
from pydantic_settings import SettingsConfigDict

__all__ = ["Settings", "get_settings", "settings"]

_SQL_SCHEMES = ("sqlite", "postgresql")


class Settings(BaseSettings):
    """Service configuration, checked once at start-up."""

    model_config = SettingsConfigDict(
        env_prefix="FFNAS_",
        env_file=".env",
        env_ignore_empty=True,
        extra="ignore",
        populate_by_name=True,
    )

    # --- where things live ---------------------------------------------------------------
    data_dir: Path = Field(
        default=Path(".ffnas"),
        description="Directory of the embedded default's files (SQLite DBs, logs); made "
        "absolute against the working directory.",
    )
    database_url: str = Field(
        default="",
        description="SQLAlchemy URL; empty means a SQLite file `ffnas.db` in data_dir. "
        "`postgresql://` URLs are rewritten to use psycopg 3.",
    )
    broker_url: str = Field(
        default="",
        description="Celery broker URL; empty means `sqla+sqlite:///<data_dir>/broker.db`.",
    )
    # --- client side (CLI, Python client) ------------------------------------------------
    api_url: str = Field(
        default="http://127.0.0.1:8000",
        validation_alias=AliasChoices("FFNAS_URL", "FFNAS_API_URL", "api_url"),
        description="Base URL of the API that client commands talk to (FFNAS_URL).",
    )
    token: str | None = Field(
        default=None,
        validation_alias=AliasChoices("FFNAS_TOKEN", "token"),
        description="Bearer token that client commands send (FFNAS_TOKEN).",
    )
    client_timeout_s: float = Field(default=30.0, gt=0)
    # --- API limits (OWASP API4: every resource has a bound) ----------------------------
    max_body_bytes: int = Field(default=1 << 20, gt=0, description="Largest request body.")
    max_n_trials: int = Field(default=100_000, gt=0)
    max_in_flight: int = Field(default=64, gt=0)
    max_space_layers: int = Field(
        default=512, gt=0, description="Largest n_layers a search space or library may have."
    )
    max_page_size: int = Field(default=1000, gt=0, description="Largest `limit` of a list.")
    # --- Celery delivery rules (reliability.md §1-2) ------------------------------------
    task_soft_time_limit_s: float = Field(default=3300.0, gt=0)
    task_time_limit_s: float = Field(default=3500.0, gt=0)
    visibility_timeout_s: float = Field(
        default=3600.0,
        gt=0,
        description="Broker redelivery timeout; must exceed the hard task time limit, or a "
        "still-running task is delivered a second time.",
    )
    broker_key_prefix: str = Field(
        default="",
        max_length=64,
        description="Prefix of every Redis key the broker uses (kombu `global_keyprefix`), "
        "so several deployments or test runs can share one Redis.",
    )
    broker_polling_interval_s: float = Field(
        default=0.005,
        gt=0,
        description="SQLAlchemy-transport poll period; 5 ms keeps dispatch overhead small.",
    )
    broker_delivered_retention_s: float = Field(
        default=60.0,
        ge=0,
        description="The SQLAlchemy transport keeps every delivered message as a hidden row "
        "and never reads it again; the reaper deletes those delivered longer ago than this.",
    )
    heartbeat_interval_s: float = Field(default=10.0, gt=0)
    heartbeat_grace_s: float = Field(
        default=60.0, gt=0, description="A RUNNING trial whose heartbeat is older is stale."
    )
    reaper_interval_s: float = Field(
        default=15.0,
        gt=0,
        description="How often the controller re-queues or fails trials whose worker went "
        "silent, and tops up running jobs (a restarted controller resumes through it).",
    )
    # --- API behaviour ------------------------------------------------------------------
    api_workers: int = Field(
        default=2,
        ge=1,
        description="uvicorn worker processes `ffnas up` runs. On the 2-core dev box, 50 "
        "concurrent clients listing jobs and fronts: 1 worker ~580 req/s, p99 ~140-170 ms; "
        "2 workers ~900-1050 req/s, p99 ~110-130 ms (benchmarks/service.py).",
    )
    event_poll_interval_s: float = Field(
        default=0.5, gt=0, description="How often the SSE stream polls the DB for changes."
    )
    sqlite_busy_timeout_s: float = Field(default=30.0, gt=0)

    @model_validator(mode="after")
    def _fill_paths(self) -> Settings:
        # Defaults that depend on data_dir are filled here, so every reader of
        # `database_url` / `broker_url` sees a complete URL. PostgreSQL goes through psycopg 3.
        self.data_dir = self.data_dir.expanduser().resolve()
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir / 'ffnas.db'}"
        for prefix in ("postgresql://", "postgres://"):
            if self.database_url.startswith(prefix):
                self.database_url = "postgresql+psycopg://" + self.database_url[len(prefix) :]
        if not self.broker_url:
            self.broker_url = f"sqla+sqlite:///{self.data_dir / 'broker.db'}"
        return self

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if not (self.task_soft_time_limit_s < self.task_time_limit_s < self.visibility_timeout_s):
            raise ValueError(
                "`task_soft_time_limit_s < task_time_limit_s < visibility_timeout_s` must hold "
                "(a task still running past the visibility timeout is delivered twice), but got "
                f"task_soft_time_limit_s={self.task_soft_time_limit_s}, "
                f"task_time_limit_s={self.task_time_limit_s}, "
                f"visibility_timeout_s={self.visibility_timeout_s}"
            )
        if self.heartbeat_grace_s <= 2 * self.heartbeat_interval_s:
            raise ValueError(
                "`heartbeat_grace_s > 2 * heartbeat_interval_s` must hold (one late beat must "
                f"not fail a trial), but got heartbeat_grace_s={self.heartbeat_grace_s}, "
                f"heartbeat_interval_s={self.heartbeat_interval_s}"
            )
        scheme = self.database_url.split(":", 1)[0].split("+", 1)[0]
        if scheme not in _SQL_SCHEMES:
            raise ValueError(
                f"`database_url` must be a sqlite:// or postgresql:// URL, but got "
                f"scheme {scheme!r}"
            )
        return self


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once from the environment and `.env`."""
    return Settings()


settings = get_settings()
