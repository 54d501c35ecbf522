"""Bearer tokens: a random secret shown once; only its SHA-256 is stored.

A token names its owner; every job belongs to the owner of the token that submitted it and
is invisible (404) to every other owner. SHA-256 without a salt is enough here because the
secrets are 256-bit random strings, not passwords: there is nothing to brute-force.

Known tokens are remembered per process for `TOKEN_CACHE_TTL_S` (see `owner_for_token`).
A token is revoked by deleting its row (`service.crud.revoke_token`, `DELETE
/api/v1/tokens/{id}`, `ffnas token revoke`). The revoking process forgets the token at once
(`forget_token_hash`); every other process (the other API workers, or all of them when the
CLI revokes) keeps accepting it until its cache entry expires: at most `TOKEN_CACHE_TTL_S`.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Hashable

from sqlmodel import Session
from sqlmodel import select

from service.models import ApiToken
from service.models import new_id

__all__ = [
    "TOKEN_CACHE_MAX_ENTRIES",
    "TOKEN_CACHE_TTL_S",
    "TOKEN_PREFIX",
    "clear_token_cache",
    "create_token",
    "forget_token_hash",
    "hash_token",
    "owner_for_token",
]

TOKEN_PREFIX = "ffnas_"

# Every API request authenticates; the token query was ~22% of an API worker's busy CPU
# under 50 concurrent clients (py-spy, benchmarks/service.py). A token found in the database
# is trusted for this long without asking again, so a token revoked by another process is
# still accepted here for at most this long (the revoking process forgets it at once). Unknown
# tokens are never cached: each one is looked up, so a new token works at once and a wrong
# one always fails.
TOKEN_CACHE_TTL_S = 10.0
TOKEN_CACHE_MAX_ENTRIES = 1024

# (database URL, token hash) -> (owner, monotonic expiry); the URL keeps processes that talk
# to several databases (tests) from answering one database's token from another's.
_KNOWN: OrderedDict[tuple[Hashable, str], tuple[str, float]] = OrderedDict()
_KNOWN_LOCK = threading.Lock()
# Bumped by every `forget_token_hash`. A lookup that began before a revocation must not cache
# what it read: the row may have been deleted between its query and its insert into `_KNOWN`.
_forgotten = 0


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
    """The owner of `token`, or None when no such token exists.

    A token found in the database is remembered for `TOKEN_CACHE_TTL_S`; a token not found
    is asked for again on every call.
    """
    # The lookup is by hash, so timing reveals nothing about stored secrets.
    digest = hash_token(token)
    key = (session.get_bind().engine.url, digest)
    now = time.monotonic()
    with _KNOWN_LOCK:
        hit = _KNOWN.get(key)
        if hit is not None and hit[1] > now:
            return hit[0]
        forgotten_before = _forgotten
    owner = session.exec(select(ApiToken.owner_id).where(ApiToken.token_hash == digest)).first()
    with _KNOWN_LOCK:
        if owner is None:
            _KNOWN.pop(key, None)
            return None
        if _forgotten != forgotten_before:
            # A token was revoked while this lookup ran: answer from the read, remember nothing.
            return owner
        _KNOWN[key] = (owner, now + TOKEN_CACHE_TTL_S)
        _KNOWN.move_to_end(key)
        while len(_KNOWN) > TOKEN_CACHE_MAX_ENTRIES:
            _KNOWN.popitem(last=False)
    return owner


def clear_token_cache() -> None:
    """Forget every remembered token (the next lookup of each asks the database)."""
    with _KNOWN_LOCK:
        _KNOWN.clear()


def forget_token_hash(token_hash: str) -> None:
    """Drop the token with SHA-256 `token_hash` from this process's cache.

    Called after the token's row is deleted, so this process refuses it on its next use.
    Other processes are not told: they refuse it once their entry expires, within
    `TOKEN_CACHE_TTL_S`. The entry is dropped for every database URL; a hash names one secret,
    so this costs another process-local database only a fresh lookup.
    """
    global _forgotten
    with _KNOWN_LOCK:
        _forgotten += 1
        for key in [key for key in _KNOWN if key[1] == token_hash]:
            del _KNOWN[key]
