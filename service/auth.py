"""Bearer tokens: a random secret shown once; only its SHA-256 is stored.

A token names its owner; every job belongs to the owner of the token that submitted it and
is invisible (404) to every other owner. SHA-256 without a salt is enough here because the
secrets are 256-bit random strings, not passwords: there is nothing to brute-force.

Known tokens are remembered per process for `TOKEN_CACHE_TTL_S` (see `owner_for_token`).
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
    "hash_token",
    "owner_for_token",
]

TOKEN_PREFIX = "ffnas_"

# Every API request authenticates; the token query was ~22% of an API worker's busy CPU
# under 50 concurrent clients (py-spy, benchmarks/service.py). A token found in the database
# is trusted for this long without asking again. Tokens are never revoked today; should a
# row be deleted, this bounds how long a process still accepts it. Unknown tokens are never
# cached: each one is looked up, so a new token works at once and a wrong one always fails.
TOKEN_CACHE_TTL_S = 10.0
TOKEN_CACHE_MAX_ENTRIES = 1024

# (database URL, token hash) -> (owner, monotonic expiry); the URL keeps processes that talk
# to several databases (tests) from answering one database's token from another's.
_KNOWN: OrderedDict[tuple[Hashable, str], tuple[str, float]] = OrderedDict()
_KNOWN_LOCK = threading.Lock()


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
    owner = session.exec(select(ApiToken.owner_id).where(ApiToken.token_hash == digest)).first()
    with _KNOWN_LOCK:
        if owner is None:
            _KNOWN.pop(key, None)
            return None
        _KNOWN[key] = (owner, now + TOKEN_CACHE_TTL_S)
        _KNOWN.move_to_end(key)
        while len(_KNOWN) > TOKEN_CACHE_MAX_ENTRIES:
            _KNOWN.popitem(last=False)
    return owner


def clear_token_cache() -> None:
    """Forget every remembered token (the next lookup of each asks the database)."""
    with _KNOWN_LOCK:
        _KNOWN.clear()
