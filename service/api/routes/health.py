"""Liveness and database reachability, without authentication (load balancers probe it)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi import HTTPException
from sqlalchemy import text

from service.api.deps import SessionDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz(session: SessionDep) -> dict[str, str]:
    try:
        session.exec(text("SELECT 1"))  # type: ignore[call-overload]
    except Exception as exc:
        raise HTTPException(status_code=503, detail=f"database unreachable: {exc}") from exc
    return {"status": "ok", "database": "ok"}
