"""Bearer tokens: a random secret shown once; only its SHA-256 is stored.

A token names its owner; every job belongs to the owner of the token that submitted it and
is invisible (404) to every other owner. SHA-256 without a salt is enough here because the
secrets are 256-bit random strings, not passwords: there is nothing to brute-force.
"""

from __future__ import annotations

import hashlib
import secrets

from sqlmodel import Session
from sqlmodel import select

from service.models import ApiToken
from service.models import new_id

__all__ = ["TOKEN_PREFIX", "create_token", "hash_token", "owner_for_token"]

TOKEN_PREFIX = "ffnas_"


def hash_token(token: str) -> str:
    """The stored form of a token: SHA-256, hex."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(session: Session, name: str, *, owner_id: str | None = None) -> tuple[str, str]:
    """Store a new token and return ``(owner_id, token)``; the secret is not kept.

    Without `owner_id` the token gets a new owner; with it, the owner gains another token.
    """
    if not name or len(name) > 200:
        raise ValueError(f"`1 <= len(name) <= 200` must hold, but got len(name)={len(name)}")
    owner = owner_id or new_id()
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiToken(owner_id=owner, name=name, token_hash=hash_token(token)))
    session.commit()
    return owner, token


def owner_for_token(session: Session, token: str) -> str | None:
    """The owner of `token`, or None when no such token exists."""
    # The lookup is by hash, so timing reveals nothing about stored secrets.
    row = session.exec(select(ApiToken).where(ApiToken.token_hash == hash_token(token))).first()
    return row.owner_id if row is not None else None
