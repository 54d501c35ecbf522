"""Two processes declaring the same queue on kombu's SQLAlchemy transport at once.

`ffnas up` starts the API and two Celery workers together; each declares the shared queues on
the embedded SQLite broker. kombu guards its SELECT-then-INSERT of the queue row with a thread
lock only, so when another process inserts the row in between, the INSERT fails with
`IntegrityError` (seen as a failed first submission in `ffnas up --demo`). The test commits a
real competing row from a second connection exactly between the SELECT and the INSERT.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from kombu import Connection
from sqlalchemy import event
from sqlalchemy.exc import IntegrityError

from workers.celery_app import tune_sqlalchemy_transport


def _channel_with_competitor(tmp_path: Path, queue: str) -> Any:
    url = f"sqlite:///{tmp_path / 'broker.db'}"
    conn = Connection(f"sqla+{url}")
    channel = conn.default_channel
    channel._get_or_create("warm-up")  # creates kombu's tables
    table = channel.queue_cls.__table__
    competitor = sa.create_engine(url)

    def insert_first(*_: Any) -> None:
        # Another process wins the race: its row lands after our SELECT missed it.
        with competitor.begin() as other:
            other.execute(table.insert().values(name=queue))

    event.listen(channel.session, "before_flush", insert_first, once=True)
    return conn, channel


def test_race_safe_get_or_create_returns_the_winners_row(tmp_path: Path) -> None:
    tune_sqlalchemy_transport(0.005)
    conn, channel = _channel_with_competitor(tmp_path, "controller")
    with conn:
        row = type(channel)._get_or_create(channel, "controller")
        assert row.name == "controller"
        rows = channel.session.query(channel.queue_cls).filter_by(name="controller").count()
        assert rows == 1


def test_kombu_alone_loses_the_same_race(tmp_path: Path) -> None:
    tune_sqlalchemy_transport(0.005)
    conn, channel = _channel_with_competitor(tmp_path, "controller")
    original = type(channel)._get_or_create.__wrapped__
    with conn, pytest.raises(IntegrityError, match="kombu_queue.name"):
        original(channel, "controller")
