"""Page parameters shared by the list endpoints, bounded by `settings.max_page_size`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends
from fastapi import Query
from fastapi.exceptions import RequestValidationError

from service.core.config import get_settings

__all__ = ["Page", "PageDep"]


@dataclass(frozen=True)
class Page:
    limit: int
    offset: int


# `async`: pure validation, so FastAPI runs it on the event loop instead of a pool thread.
async def get_page(
    limit: Annotated[
        int, Query(ge=1, description="Rows per page (<= FFNAS_MAX_PAGE_SIZE).")
    ] = 100,
    offset: Annotated[int, Query(ge=0, description="Rows to skip.")] = 0,
) -> Page:
    largest = get_settings().max_page_size
    if limit > largest:
        raise RequestValidationError(
            [
                {
                    "loc": ("query", "limit"),
                    "msg": f"`limit <= {largest}` must hold (FFNAS_MAX_PAGE_SIZE), "
                    f"but got {limit}",
                    "type": "less_than_equal",
                    "input": limit,
                }
            ]
        )
    return Page(limit=limit, offset=offset)


PageDep = Annotated[Page, Depends(get_page)]
