"""Controller tasks (queue ``controller``), run by one controller worker process.

Each takes an id, is idempotent, and never waits on another task. `reap` runs periodically
(Celery beat embedded in the controller worker, every `Settings.reaper_interval_s`) and once
when the controller starts (`recover`), which is how a restarted controller resumes its
jobs from the database.
"""

from __future__ import annotations

import logging
from typing import Any

from celery.signals import worker_ready

from service import controller
from workers.celery_app import CONTROLLER_QUEUE
from workers.celery_app import app

__all__ = [
    "app",
    "check_prune",
    "delete_job",
    "reap",
    "record",
    "recover",
    "resume_job",
    "start_job",
    "stop_job",
]

logger = logging.getLogger(__name__)


@app.task(name="service.tasks.start_job", acks_late=True, ignore_result=True)
def start_job(job_id: str) -> None:
    controller.start_job(job_id)


@app.task(name="service.tasks.record", acks_late=True, ignore_result=True)
def record(trial_id: str) -> None:
    controller.record(trial_id)


@app.task(name="service.tasks.check_prune", acks_late=True, ignore_result=True)
def check_prune(trial_id: str) -> None:
    controller.check_prune(trial_id)


@app.task(name="service.tasks.stop_job", acks_late=True, ignore_result=True)
def stop_job(job_id: str) -> None:
    controller.run_stop(job_id)


@app.task(name="service.tasks.resume_job", acks_late=True, ignore_result=True)
def resume_job(job_id: str) -> None:
    controller.run_resume(job_id)


@app.task(name="service.tasks.delete_job", acks_late=True, ignore_result=True)
def delete_job(job_id: str) -> None:
    controller.run_delete(job_id)


@app.task(name="service.tasks.reap", ignore_result=True)
def reap() -> dict[str, int]:
    stats = controller.reap()
    if any(stats.values()):
        logger.info("reap: %s", stats)
    return stats


@app.task(name="service.tasks.recover", ignore_result=True)
def recover() -> None:
    controller.recover()


@worker_ready.connect
def _on_controller_ready(sender: Any = None, **kwargs: Any) -> None:
    # Only the worker that consumes the controller queue recovers jobs.
    del kwargs
    queues = {q.name for q in sender.app.amqp.queues.consume_from.values()} if sender else set()
    if CONTROLLER_QUEUE in queues:
        app.send_task("service.tasks.recover", queue=CONTROLLER_QUEUE)
