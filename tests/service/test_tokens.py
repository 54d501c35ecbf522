"""Listing and revoking API tokens: the API (owner-scoped) and the server-side CLI."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlmodel import select
from typer.testing import CliRunner

from service import crud
from service.auth import create_token
from service.auth import owner_for_token
from service.cli.main import app as cli
from service.core.db import session_scope
from service.models import ApiToken
from tests.service.conftest import ServiceEnv

API = "/api/v1"


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _token_id(token: str) -> int:
    from service.auth import hash_token

    with session_scope() as session:
        row = session.exec(select(ApiToken).where(ApiToken.token_hash == hash_token(token))).one()
    assert row.id is not None
    return row.id


def _token_exists(token_id: int) -> bool:
    with session_scope() as session:
        return session.get(ApiToken, token_id) is not None


def _run(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args))


def test_list_shows_only_own_tokens_and_never_secrets(
    backend: str, client: TestClient, service_env: ServiceEnv
) -> None:
    with session_scope() as session:
        owner, laptop = create_token(session, "laptop")
        _, ci = create_token(session, "ci", owner_id=owner)
        _, stranger = create_token(session, "stranger")

    response = client.get(f"{API}/tokens", headers=_bearer(laptop))
    assert response.status_code == 200, response.text
    body = response.json()["data"]
    assert response.json()["count"] == 2
    assert [(t["id"], t["name"], t["current"]) for t in body] == [
        (_token_id(laptop), "laptop", True),
        (_token_id(ci), "ci", False),
    ]
    assert all(set(t) == {"id", "name", "created_at", "current"} for t in body)
    with session_scope() as session:
        hashes = [t.token_hash for t in session.exec(select(ApiToken))]
    for secret in (laptop, ci, stranger, *hashes):
        assert secret not in response.text
    # The other token of the same owner sees the same list, marked from its side.
    from_ci = client.get(f"{API}/tokens", headers=_bearer(ci)).json()["data"]
    assert [t["current"] for t in from_ci] == [False, True]
    theirs = client.get(f"{API}/tokens", headers=_bearer(stranger)).json()["data"]
    assert [t["name"] for t in theirs] == ["stranger"]


def test_token_endpoints_need_a_token(client: TestClient, service_env: ServiceEnv) -> None:
    with session_scope() as session:
        _, token = create_token(session, "victim")
    token_id = _token_id(token)
    for method, path in [("GET", "/tokens"), ("DELETE", f"/tokens/{token_id}")]:
        for headers in ({}, _bearer("ffnas_not-a-token")):
            response = client.request(method, f"{API}{path}", headers=headers)
            assert response.status_code == 401, (method, path, response.text)
    assert _token_exists(token_id)


def test_revoked_token_is_refused_at_once_in_this_process(
    backend: str, client: TestClient, service_env: ServiceEnv
) -> None:
    with session_scope() as session:
        owner, keep = create_token(session, "keep")
        _, lost = create_token(session, "lost", owner_id=owner)
    # Used once first, so the per-process cache holds it when it is revoked.
    assert client.get(f"{API}/jobs", headers=_bearer(lost)).status_code == 200
    lost_id = _token_id(lost)

    revoked = client.delete(f"{API}/tokens/{lost_id}", headers=_bearer(keep))
    assert revoked.status_code == 204 and revoked.content == b""
    refused = client.get(f"{API}/jobs", headers=_bearer(lost))
    assert refused.status_code == 401 and refused.json() == {"detail": "invalid bearer token"}
    assert not _token_exists(lost_id)
    listed = client.get(f"{API}/tokens", headers=_bearer(keep)).json()["data"]
    assert [t["name"] for t in listed] == ["keep"]
    # Revoking it again: it is gone, like any unknown id.
    again = client.delete(f"{API}/tokens/{lost_id}", headers=_bearer(keep))
    assert again.status_code == 404


def test_the_token_in_use_can_revoke_itself(client: TestClient, service_env: ServiceEnv) -> None:
    with session_scope() as session:
        _, token = create_token(session, "self")
    headers = _bearer(token)
    [me] = client.get(f"{API}/tokens", headers=headers).json()["data"]
    assert me["current"] is True
    assert client.delete(f"{API}/tokens/{me['id']}", headers=headers).status_code == 204
    assert client.get(f"{API}/tokens", headers=headers).status_code == 401


def test_another_owners_or_an_unknown_token_is_404(
    backend: str, client: TestClient, service_env: ServiceEnv
) -> None:
    with session_scope() as session:
        _, mine = create_token(session, "mine")
        _, theirs = create_token(session, "theirs")
    their_id = _token_id(theirs)
    unknown_id = their_id + 1000
    for token_id in (their_id, unknown_id):
        response = client.delete(f"{API}/tokens/{token_id}", headers=_bearer(mine))
        assert response.status_code == 404, response.text
        assert response.json() == {"detail": f"token {token_id} not found"}
    assert _token_exists(their_id)
    assert client.get(f"{API}/jobs", headers=_bearer(theirs)).status_code == 200
    not_an_id = client.delete(f"{API}/tokens/abc", headers=_bearer(mine))
    assert not_an_id.status_code == 422


def test_revoke_token_is_owner_scoped_and_forgets_the_cache(service_env: ServiceEnv) -> None:
    with session_scope() as session:
        owner, token = create_token(session, "cached")
        other, _ = create_token(session, "other")
        token_id = _token_id(token)
        assert owner_for_token(session, token) == owner  # now cached
        assert crud.revoke_token(session, owner_id=other, token_id=token_id) is False
        assert owner_for_token(session, token) == owner
        assert crud.revoke_token(session, owner_id=owner, token_id=token_id) is True
        assert owner_for_token(session, token) is None
        assert crud.revoke_token(session, owner_id=owner, token_id=token_id) is False
        assert [t.name for t in crud.list_tokens(session, owner_id=owner)] == []
        assert [t.name for t in crud.list_tokens(session, owner_id=None)] == ["other"]


def test_cli_token_list_and_revoke(client: TestClient, service_env: ServiceEnv) -> None:
    with session_scope() as session:
        owner, laptop = create_token(session, "laptop")
        other, ci = create_token(session, "ci-runner")
    laptop_id, ci_id = _token_id(laptop), _token_id(ci)

    listed = _run("token", "list")
    assert listed.exit_code == 0, listed.output
    for text in (owner, other, "laptop", "ci-runner", str(laptop_id), str(ci_id)):
        assert text in listed.stdout
    with session_scope() as session:
        hashes = [t.token_hash for t in session.exec(select(ApiToken))]
    for secret in (laptop, ci, *hashes):
        assert secret not in listed.stdout
    only = _run("token", "list", "--owner", other)
    assert only.exit_code == 0, only.output
    assert "ci-runner" in only.stdout and "laptop" not in only.stdout

    assert client.get(f"{API}/jobs", headers=_bearer(ci)).status_code == 200
    revoked = _run("token", "revoke", str(ci_id))
    assert revoked.exit_code == 0, revoked.output
    assert f"revoked token {ci_id}" in revoked.stdout
    assert not _token_exists(ci_id) and _token_exists(laptop_id)
    # The CLI ran in this process, so this process's cache forgot the token too.
    assert client.get(f"{API}/jobs", headers=_bearer(ci)).status_code == 401

    unknown = _run("token", "revoke", str(ci_id))
    assert unknown.exit_code == 2
    assert f"no API token with id {ci_id}" in unknown.stderr
    assert _token_exists(laptop_id)
