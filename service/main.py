"""The FastAPI application: `create_app()`, and `app` for `uvicorn service.main:app`.

OpenAPI docs at `/docs`, the REST API under `/api/v1`, `/healthz` for probes, and the
dashboard's static files at `/` (mounted last so the API routes win).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from service.api import main as api_main
from service.api.body_limit import BodySizeLimitMiddleware
from service.api.routes import health
from service.core.config import get_settings
from service.core.db import init_db

__all__ = ["app", "create_app"]

logger = logging.getLogger(__name__)


def create_app(*, migrate: bool = True) -> FastAPI:
    """A new application on the current settings.

    With `migrate`, start-up brings the database schema to head (idempotent, and serialised
    across processes), so `uvicorn service.main:app` works on an empty data directory.
    """
    settings = get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        del app
        if migrate:
            await run_in_threadpool(init_db)
        yield

    app = FastAPI(
        title="ffnas",
        summary="Architecture search for the FFN layers of transformer LMs.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.include_router(api_main.api_router, prefix=api_main.API_PREFIX)
    app.include_router(health.router)  # `/healthz` at the root too, for probes

    from dashboards.app import mount_dashboard

    mount_dashboard(app)
    return app


app = create_app()
