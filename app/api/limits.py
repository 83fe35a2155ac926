"""The request body limit: past ``api.max_body_bytes`` a request gets 413, never parsed whole.

A declared ``Content-Length`` over the limit is refused before anything reads the body (and
before authentication: the size alone decides, as at a proxy). A body without one (chunked)
is counted as the route reads it; the read that passes the limit raises ``BodyTooLarge``, so
at most the limit plus one chunk (the server's read size, 64 KB in uvicorn) is ever taken in.
Either way the answer is the one error shape, with ``Connection: close``: the rest of the
body is never read, so the connection cannot carry another request.

(FastAPI's own ``max_body_size`` checks Content-Length only once a route reads the body and
answers in plain text otherwise, so the API keeps this small middleware instead.)
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.errors import error_response

CLOSE = {"Connection": "close"}


def too_large_message(limit: int) -> str:
    return f"the request body is larger than {limit} bytes"


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` once the body passes the limit.

    An HTTPException, because FastAPI re-raises those from its body parsing (anything else it
    turns into a 400), so the app's handler answers it in the error shape.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(413, too_large_message(limit), headers=CLOSE)


class BodyLimit:
    """ASGI middleware enforcing ``limit`` bytes per request body."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.limit:
            await self._refuse(scope, receive, send)
            return

        taken = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal taken
            message = await receive()
            if message["type"] == "http.request":
                taken += len(message.get("body", b""))
                if taken > self.limit:
                    raise BodyTooLarge(self.limit)
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, watched_send)
        except BodyTooLarge:
            # Read outside a route (the app's handlers answer those read inside one).
            if started:
                raise
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(413, too_large_message(self.limit), field="body", headers=CLOSE)
        await response(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    value = Headers(scope=scope).get("content-length")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None  # the server refuses a malformed one; counting still applies
