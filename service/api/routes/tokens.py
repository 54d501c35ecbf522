"""API tokens of the caller's owner: list and revoke (creation is server-side only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from fastapi import HTTPException
from fastapi import Path
from fastapi import Response

from service import crud
from service.api.deps import BearerCredentials
from service.api.deps import CurrentOwner
from service.api.deps import SessionDep
from service.auth import hash_token
from service.models import TokenPublic
from service.models import TokensPublic

router = APIRouter(prefix="/tokens", tags=["tokens"])

TokenId = Annotated[int, Path(description="The token id (from `GET /tokens`).")]


@router.get("", response_model=TokensPublic)
def list_tokens(
    session: SessionDep, owner: CurrentOwner, credentials: BearerCredentials
) -> TokensPublic:
    """The caller's tokens, oldest first; `current` marks the one this request used."""
    # `CurrentOwner` already refused a request without credentials; FastAPI resolves the
    # bearer dependency once per request, so these are the credentials it checked.
    current = hash_token(credentials.credentials) if credentials is not None else None
    tokens = [
        TokenPublic(
            id=token.id,
            name=token.name,
            created_at=token.created_at,
            current=token.token_hash == current,
        )
        for token in crud.list_tokens(session, owner_id=owner)
        if token.id is not None  # always set on a stored row; narrows the type
    ]
    return TokensPublic(data=tokens, count=len(tokens))


@router.delete("/{token_id}", status_code=204, response_class=Response)
def revoke_token(session: SessionDep, owner: CurrentOwner, token_id: TokenId) -> Response:
    """Revoke one of the caller's tokens, the one in use included; 404 for any other id.

    This API process refuses the token at once; other API worker processes may accept it
    for up to `TOKEN_CACHE_TTL_S` (10 s) more.
    """
    if not crud.revoke_token(session, owner_id=owner, token_id=token_id):
        # Another owner's token answers like a missing one (never 403: no leak).
        raise HTTPException(status_code=404, detail=f"token {token_id} not found")
    return Response(status_code=204)
