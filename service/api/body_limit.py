"""An ASGI middleware that refuses request bodies over a size limit with 413.

Starlette reads bodies without a bound (Kludex/starlette #2155), so one request could
exhaust memory (OWASP API4). The declared ``Content-Length`` is checked before anything is
read, and the bytes actually received are counted, so a chunked or lying client is cut off
too. Run a reverse proxy with its own limit in front in production as well.
"""

from __future__ import annotations

import json

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp
from starlette.types import Message
from starlette.types import Receive
from starlette.types import Scope
from starlette.types import Send

__all__ = ["BodySizeLimitMiddleware", "BodyTooLarge"]


class BodyTooLarge(HTTPException):
    """Raised from `receive` once the limit is passed.

    It is an `HTTPException` so that FastAPI's body parsing re-raises it as is (it turns
    other exceptions into 400) and the app's handler answers 413 with a JSON detail.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(
            status_code=413,
            detail=f"request body must be at most {limit} bytes (FFNAS_MAX_BODY_BYTES)",
        )


class BodySizeLimitMiddleware:
    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        if max_bytes <= 0:
            raise ValueError(f"`max_bytes > 0` must hold, but got max_bytes={max_bytes}")
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                if not value.isdigit() or int(value) > self.max_bytes:
                    await self._reject(send)
                    return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if started:
                raise
            await self._reject(send)

    async def _reject(self, send: Send) -> None:
        body = json.dumps({"detail": BodyTooLarge(self.max_bytes).detail}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
