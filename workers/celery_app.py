"""The Celery app every ffnas process uses: API (to enqueue), controller and workers.

Queues: ``controller`` (the controller's tasks in `service.tasks`, one process) and
``eval.<target>`` (trials for one target, `workers.tasks.evaluate_trial`). Tasks are routed
by name when they are sent, so the API and the controller never import worker code and
workers never import optuna.

Delivery rules (reliability.md §1): acks late, prefetch 1, re-queue when the pool child
dies, the hard time limit below the broker's visibility timeout and the soft limit 60 s (or
less) before the hard one, no result backend (tasks write rows; nobody waits on a result).
A per-trial attempts cap in the database stops a poison trial from looping.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery
from kombu import Queue

from service.core.config import Settings
from service.core.config import get_settings

__all__ = [
    "CONTROLLER_QUEUE",
    "app",
    "configure",
    "eval_queue",
    "send_task",
    "tune_sqlalchemy_transport",
]

logger = logging.getLogger(__name__)

CONTROLLER_QUEUE = "controller"


def eval_queue(target: str) -> str:
    """The queue that carries trials for `target`."""
    return f"eval.{target}"


def tune_sqlalchemy_transport(polling_interval_s: float) -> None:
    """Make kombu's SQLAlchemy transport poll every `polling_interval_s` seconds.

    The transport polls its message table once a second by default (kombu 5.7
    `virtual.Transport.polling_interval = 1.0`): a no-op round trip took a median 1011 ms.
    The interval cannot go through `broker_transport_options`, because this transport
    forwards every option to `sqlalchemy.create_engine` (TypeError), so it is set on the
    transport class. At 5 ms a no-op round trip took a median 32.7 ms against 1052 ms with
    the default (benchmarks/service.py on the loaded 2-core dev box; performance.md §7 has
    15.5 ms on an idle one).
    """
    from kombu.transport.sqlalchemy import Channel
    from kombu.transport.sqlalchemy import Transport

    Transport.polling_interval = polling_interval_s
    if not getattr(Channel._get_or_create, "_ffnas_race_safe", False):
        Channel._get_or_create = _race_safe_get_or_create(  # type: ignore[method-assign]
            Channel._get_or_create
        )
    if not getattr(Channel._engine_from_config, "_ffnas_wal", False):
        Channel._engine_from_config = _wal_engine_from_config(  # type: ignore[method-assign]
            Channel._engine_from_config
        )


def _wal_engine_from_config(original: Any) -> Any:
    """Open kombu's SQLite broker file in WAL mode with ``synchronous=NORMAL``.

    kombu creates the engine with SQLite's defaults: a rollback journal and an fsync on every
    commit, for every publish and every poll that takes a message. A publish (one INSERT and
    its commit) took a median 2.8 ms on an idle dev box and 13-19 ms while other processes
    used the disk; in WAL mode with NORMAL sync it takes ~0.5 ms, and polling readers no
    longer block the writer. The trade is the one the service's own database makes
    (service.core.db): durable against a crashed process, not against a power cut; a message
    lost that way is re-sent from the database by the controller (`recover`, `reap`).
    """
    from sqlalchemy import event

    def engine_from_config(self: Any) -> Any:
        engine = original(self)
        if engine.dialect.name == "sqlite":
            event.listen(engine, "connect", _broker_sqlite_pragmas)
        return engine

    engine_from_config._ffnas_wal = True  # type: ignore[attr-defined]
    engine_from_config.__wrapped__ = original  # type: ignore[attr-defined]
    return engine_from_config


def _broker_sqlite_pragmas(dbapi_connection: Any, connection_record: Any) -> None:
    del connection_record
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _race_safe_get_or_create(original: Any) -> Any:
    """Wrap kombu's queue-row get-or-create so concurrent processes cannot crash it.

    kombu 5.7 guards the SELECT-then-INSERT of a queue row with a *thread* lock only. When the
    API, the controller worker and an evaluation worker of `ffnas up` declare the same queue
    at once, the loser's INSERT raises `IntegrityError: UNIQUE constraint failed:
    kombu_queue.name` (seen in `ffnas up --demo`: the first job submission failed). The row
    the winner inserted is exactly what the loser wanted, so roll back and read it.
    """
    from sqlalchemy.exc import IntegrityError

    def get_or_create(self: Any, queue: str) -> Any:
        try:
            return original(self, queue)
        except IntegrityError:
            self.session.rollback()
            row = self.session.query(self.queue_cls).filter(self.queue_cls.name == queue).first()
            if row is None:
                raise
            return row

    get_or_create._ffnas_race_safe = True  # type: ignore[attr-defined]
    get_or_create.__wrapped__ = original  # type: ignore[attr-defined]
    return get_or_create


def configure(app: Celery, settings: Settings) -> None:
    """(Re)apply `settings` to `app`; tests call it after changing the environment."""
    visibility = settings.visibility_timeout_s
    transport_options: dict[str, object] = {}
    if settings.broker_url.startswith(("redis://", "rediss://")):
        transport_options = {"visibility_timeout": visibility}
        if settings.broker_key_prefix:
            transport_options["global_keyprefix"] = settings.broker_key_prefix
    app.conf.update(
        broker_url=settings.broker_url,
        broker_transport_options=transport_options,
        broker_connection_retry_on_startup=True,
        result_backend=None,
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        worker_prefetch_multiplier=1,
        task_time_limit=settings.task_time_limit_s,
        task_soft_time_limit=settings.task_soft_time_limit_s,
        task_default_queue=CONTROLLER_QUEUE,
        task_queues=[Queue(CONTROLLER_QUEUE)],
        task_create_missing_queues=True,
        task_serializer="json",
        accept_content=["json"],
        worker_hijack_root_logger=False,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        worker_soft_shutdown_timeout=10.0,
        # After a pool child dies, Celery waits this long for its result before it
        # re-queues the message (default 10 s). Results travel through the database, not
        # the pool pipe, so there is nothing to wait for: 1 s frees the slot sooner.
        worker_lost_wait=1.0,
        # kombu's SQLAlchemy transport has no fanout, which remote control needs.
        worker_enable_remote_control=settings.broker_url.startswith(("redis", "amqp")),
        worker_send_task_events=False,
        broker_connection_timeout=10.0,
        beat_schedule={
            "reap": {
                "task": "service.tasks.reap",
                "schedule": settings.reaper_interval_s,
                "options": {"queue": CONTROLLER_QUEUE, "expires": settings.reaper_interval_s},
            }
        },
    )
    if settings.broker_url.startswith(("sqla+", "sqlalchemy+")):
        tune_sqlalchemy_transport(settings.broker_polling_interval_s)
    # A changed broker URL needs fresh connections, and fresh producers: the producer pool
    # keeps connections to the old broker otherwise. Close the old pools now rather than
    # leave them to the garbage collector, whose late close of a dropped pool's connections
    # once closed a channel under a publish in progress ('NoneType' object has no attribute
    # 'client' from kombu's SQLAlchemy channel, in the test suite, which reconfigures).
    if "amqp" in app.__dict__ and app.amqp._producer_pool is not None:
        app.amqp._producer_pool.force_close_all()
        app.amqp._producer_pool = None
    if app._pool is not None:
        app._pool.force_close_all()
        app._pool = None


def _make_app() -> Celery:
    app = Celery("ffnas", include=[])
    configure(app, get_settings())
    return app


app = _make_app()


def send_task(name: str, args: list[object], *, queue: str) -> None:
    """Enqueue task `name` on `queue` (after the caller's commit: the row must exist)."""
    app.send_task(name, args=args, queue=queue)
