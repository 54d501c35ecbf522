"""The reaper deletes messages kombu's SQLAlchemy transport delivered (it never does), and
nothing else: pending messages stay and are still delivered, in order."""

from __future__ import annotations

import datetime as dt

import pytest
from kombu import Connection
from sqlalchemy import text

from service import controller
from service.core.config import get_settings
from service.core.db import get_engine
from service.core.sqltypes import utcnow
from tests.service.conftest import ServiceEnv


def _rows(broker_url: str) -> dict[bool, int]:
    engine = get_engine(broker_url.split("+", 1)[1])
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT visible, count(*) FROM kombu_message GROUP BY visible")
        ).all()
    return {bool(visible): int(n) for visible, n in rows}


def test_purge_deletes_delivered_messages_past_the_retention(service_env: ServiceEnv) -> None:
    url = service_env.settings.broker_url
    assert controller.purge_delivered_messages() == 0  # no table yet: nothing was ever sent
    with Connection(url) as connection:
        queue = connection.SimpleQueue("purge-test")
        for i in range(5):
            queue.put({"i": i})
        for i in range(3):
            message = queue.get(timeout=10)
            assert message.payload == {"i": i}
            message.ack()
        assert _rows(url) == {False: 3, True: 2}
        # Delivered a moment ago: inside the retention, so kept.
        assert controller.purge_delivered_messages() == 0
        retention = get_settings().broker_delivered_retention_s
        later = utcnow() + dt.timedelta(seconds=retention + 1)
        assert controller.purge_delivered_messages(now=later) == 3
        assert _rows(url) == {True: 2}
        # The pending messages are untouched and still come in order.
        assert [queue.get(timeout=10).payload for _ in range(2)] == [{"i": 3}, {"i": 4}]
        queue.close()


def test_reap_purges(service_env: ServiceEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FFNAS_BROKER_DELIVERED_RETENTION_S", "0")
    get_settings.cache_clear()
    url = get_settings().broker_url
    with Connection(url) as connection:
        queue = connection.SimpleQueue("purge-test")
        queue.put({"i": 0})
        queue.get(timeout=10).ack()
        queue.close()
    assert _rows(url) == {False: 1}
    assert controller.reap()["purged"] == 1
    assert _rows(url) == {}
