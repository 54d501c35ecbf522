"""Bearer tokens: shown once, stored as SHA-256, scoped to their owner."""

from __future__ import annotations

import hashlib

import pytest
from fastapi.testclient import TestClient
from sqlmodel import col
from sqlmodel import delete
from sqlmodel import select

from service.auth import TOKEN_PREFIX
from service.auth import create_token
from service.auth import hash_token
from service.auth import owner_for_token
from service.core.db import session_scope
from service.models import ApiToken
from tests.service.conftest import ServiceEnv
from tests.service.rows import add_job


def test_token_is_stored_only_as_its_hash(backend: str, service_env: ServiceEnv) -> None:
    with session_scope() as session:
        owner, token = create_token(session, "laptop")
        rows = session.exec(select(ApiToken)).all()
    assert token.startswith(TOKEN_PREFIX) and len(token) > 40
    assert len(rows) == 1
    assert rows[0].token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in {rows[0].token_hash, rows[0].name, rows[0].owner_id}
    with session_scope() as session:
        assert owner_for_token(session, token) == owner
        assert owner_for_token(session, token + "x") is None


def test_each_token_is_a_new_owner_unless_told(service_env: ServiceEnv) -> None:
    with session_scope() as session:
        a, token_a = create_token(session, "a")
        b, token_b = create_token(session, "b")
        a2, token_a2 = create_token(session, "a-second", owner_id=a)
    assert a != b and a2 == a
    assert len({token_a, token_b, token_a2}) == 3
    with pytest.raises(ValueError, match="len\\(name\\) <= 200"):
        with session_scope() as session:
            create_token(session, "x" * 201)


def test_second_token_of_an_owner_sees_the_same_jobs(
    client: TestClient, service_env: ServiceEnv
) -> None:
    with session_scope() as session:
        owner, first = create_token(session, "first")
        _, second = create_token(session, "second", owner_id=owner)
        _, stranger = create_token(session, "stranger")
    job_id = add_job(owner)

    def job_ids(token: str) -> list[str]:
        body = client.get("/api/v1/jobs", headers={"Authorization": f"Bearer {token}"}).json()
        return [job["id"] for job in body["data"]]

    assert job_ids(first) == [job_id] and job_ids(second) == [job_id]
    assert job_ids(stranger) == []


def test_token_cache_remembers_known_tokens_for_the_ttl_only(
    service_env: ServiceEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    from service import auth

    now = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    auth.clear_token_cache()
    with session_scope() as session:
        owner, token = create_token(session, "cached")
        assert owner_for_token(session, token) == owner
        # Revoked behind the cache's back: still accepted within the TTL, refused after it.
        session.exec(delete(ApiToken).where(col(ApiToken.owner_id) == owner))  # type: ignore[call-overload]
        session.commit()
        now[0] += auth.TOKEN_CACHE_TTL_S - 0.5
        assert owner_for_token(session, token) == owner
        now[0] += 1.0
        assert owner_for_token(session, token) is None
        assert owner_for_token(session, token) is None  # and it stays refused


def test_unknown_tokens_are_never_cached(
    client: TestClient, service_env: ServiceEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    from service import auth

    auth.clear_token_cache()
    with session_scope() as session:
        assert owner_for_token(session, "ffnas_late") is None
        # The same token stored after a failed lookup works at once.
        session.add(ApiToken(owner_id="o" * 32, name="late", token_hash=hash_token("ffnas_late")))
        session.commit()
        assert owner_for_token(session, "ffnas_late") == "o" * 32
        _, good = create_token(session, "good")
    # Through the API: a remembered token does not let a wrong one in.
    ok = client.get("/api/v1/jobs", headers={"Authorization": f"Bearer {good}"})
    bad = client.get("/api/v1/jobs", headers={"Authorization": f"Bearer {good}x"})
    assert ok.status_code == 200 and bad.status_code == 401
    # The cache is bounded: the oldest tokens go first.
    monkeypatch.setattr(auth, "TOKEN_CACHE_MAX_ENTRIES", 2)
    with session_scope() as session:
        tokens = [create_token(session, f"t{k}")[1] for k in range(3)]
        for token in tokens:
            assert owner_for_token(session, token) is not None
    assert len(auth._KNOWN) == 2
