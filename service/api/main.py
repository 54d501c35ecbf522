"""All API routers under `/api/v1`."""

from __future__ import annotations

from fastapi import APIRouter

from service.api.routes import events
from service.api.routes import exports
from service.api.routes import health
from service.api.routes import jobs
from service.api.routes import pareto
from service.api.routes import targets
from service.api.routes import tokens
from service.api.routes import trials

API_PREFIX = "/api/v1"

api_router = APIRouter()
for _module in (jobs, trials, pareto, events, exports, targets, tokens, health):
    api_router.include_router(_module.router)
