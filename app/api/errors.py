"""The API's one error shape, and the handlers that turn every failure into it.

Every 4xx and 5xx body is ``{"error": {"type", "message", "field"}}``: FastAPI's own request
validation errors, malformed JSON, unknown routes (404), wrong methods (405), our domain errors
(``InvalidWebhook`` → 422, ``NotFound`` → 404) and anything unexpected (500, logged once).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.errors import HandOffError, InvalidWebhook, NotFound

log = logging.getLogger(__name__)

# The error types a client can branch on; documented in OpenAPI through ErrorDetail.type.
ERROR_TYPES: dict[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    500: "internal_error",
    503: "service_unavailable",
}

UNAUTHORIZED_MESSAGE = "missing or invalid API key; send Authorization: Bearer <key>"

# A value echoed in an error message (an id from the path, say) is cut to this many
# characters: a 100 KB path must not come back as a 100 KB error.
ECHO_CHARS = 64
# No message is longer than this, whatever a library put in it (a backstop for echo()).
MESSAGE_CHARS = 1024


def echo(value: str) -> str:
    """``value`` quoted for an error message, cut to ECHO_CHARS characters and ``…``."""
    if len(value) <= ECHO_CHARS:
        return repr(value)
    return repr(value[:ECHO_CHARS]) + "…"


class ErrorDetail(BaseModel):
    type: str = Field(
        description="Machine-readable category: validation_error, not_found, unauthorized, "
        "method_not_allowed, service_unavailable, internal_error, …",
        examples=["validation_error"],
    )
    message: str = Field(description="What went wrong, for humans.")
    field: str | None = Field(
        description="The offending request field (`url`, `events[0]`, `metadata.team`, "
        "`limit`, `cursor`), or null when the error is not about one field.",
        examples=["url"],
    )


class ErrorResponse(BaseModel):
    """The body of every 4xx and 5xx response."""

    error: ErrorDetail


class ApiError(Exception):
    """An error response raised from a route: status, type, message and optional field."""

    def __init__(
        self,
        status_code: int,
        message: str,
        *,
        field: str | None = None,
        type: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.field = field
        self.type = type or ERROR_TYPES.get(status_code, "error")
        self.headers = headers or {}


class Unauthorized(ApiError):
    def __init__(self) -> None:
        super().__init__(401, UNAUTHORIZED_MESSAGE)


class Unavailable(ApiError):
    def __init__(self, message: str) -> None:
        super().__init__(503, message)


_DESCRIPTIONS = {
    401: "Missing or invalid API key (`Authorization: Bearer <key>`). The body is identical "
    "for a missing, malformed, unknown or revoked key.",
    403: "The account is disabled, or an account key named another account in "
    "`Hookstream-Account`.",
    404: "Unknown (or deleted) id, or an id of another account (never told apart).",
    429: "Too many requests for this API key (`HOOKSTREAM_API__RATE_LIMIT` per second, per "
    "replica); `Retry-After` says when to try again.",
    422: "A request field is invalid; `error.field` names it (`url`, `events[0]`, `limit`, "
    "`cursor`, …).",
    413: "The request body is larger than `HOOKSTREAM_API__MAX_BODY_BYTES` (1 MiB by "
    "default); it was refused before being read.",
    503: "Cassandra or Kafka did not answer. Retry later. For test and retry, the message says "
    "what became of the attempt: withdrawn (not sent, unless Kafka had stored it just before "
    "it stopped answering) or still queued; repeating a recover is safe.",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` for the given error statuses, all with the ErrorResponse body."""
    return {
        code: {"model": ErrorResponse, "description": _DESCRIPTIONS.get(code, "Error.")}
        for code in codes
    }


def error_body(type: str, message: str, field: str | None = None) -> dict[str, Any]:
    if len(message) > MESSAGE_CHARS:
        message = message[:MESSAGE_CHARS] + "…"
    return {"error": {"type": type, "message": message, "field": field}}


def error_response(
    status_code: int,
    message: str,
    *,
    field: str | None = None,
    type: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    kind = type or ERROR_TYPES.get(status_code, "error")
    return JSONResponse(error_body(kind, message, field), status_code=status_code, headers=headers)


def field_name(loc: Sequence[int | str]) -> str | None:
    """``("body", "url")`` → ``url``; ``("body", "events", 0)`` → ``events[0]``;
    ``("query", "limit")`` → ``limit``; ``("body", "metadata", "team")`` → ``metadata.team``."""
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header", "cookie"):
        source = parts.pop(0)
        if not parts:
            return str(source)
    name = ""
    for part in parts:
        if part == "[key]":  # pydantic's marker for an invalid dict key
            continue
        if isinstance(part, int):
            name += f"[{part}]"
        else:
            name += f".{part}" if name else str(part)
    return name or None


def validation_message(error: dict[str, Any]) -> str:
    if error.get("type") == "json_invalid":
        detail = (error.get("ctx") or {}).get("error", "")
        return f"the request body is not valid JSON ({detail})" if detail else "invalid JSON"
    message = str(error.get("msg", "invalid value"))
    # pydantic prefixes messages raised by validators; the prefix says nothing to an API user.
    return message.removeprefix("Value error, ")


def _validation_field(error: dict[str, Any]) -> str | None:
    if error.get("type") == "json_invalid":
        return "body"
    return field_name(error.get("loc", ()))


async def _on_api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else {}
    headers.update(exc.headers)
    return error_response(
        exc.status_code, exc.message, field=exc.field, type=exc.type, headers=headers
    )


async def _on_validation(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    if not errors:
        return error_response(422, "invalid request")
    first = errors[0]
    return error_response(422, validation_message(first), field=_validation_field(first))


async def _on_invalid_webhook(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, InvalidWebhook)
    return error_response(422, exc.message, field=exc.field)


async def _on_not_found(_request: Request, exc: Exception) -> JSONResponse:
    return error_response(404, str(exc) or "not found")


async def _on_http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400:
        # FastAPI's "error parsing the body" (e.g. undecodable bytes): the same category as
        # malformed JSON, so the same answer, a 422 naming the body.
        return error_response(422, "the request body could not be parsed", field="body")
    if exc.status_code == 413:  # app.api.limits.BodyTooLarge, raised while a route reads
        return error_response(413, str(exc.detail), field="body", headers=dict(exc.headers or {}))
    message = {
        404: "no such route",
        405: "method not allowed on this route",
    }.get(exc.status_code, str(exc.detail))
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = _allowed_methods(request) or headers.get("Allow", "")
    return error_response(exc.status_code, message, headers=headers)


def _allowed_methods(request: Request) -> str | None:
    """Every method of the path (Starlette's Allow names only the first route it tried)."""
    template = getattr(request.scope.get("route"), "path", None)
    operations = request.app.openapi().get("paths", {}).get(template) if template else None
    if not operations:
        return None
    return ", ".join(sorted(method.upper() for method in operations))


async def _on_hand_off(request: Request, exc: Exception) -> JSONResponse:
    log.warning("%s %s: %s", request.method, request.url.path, exc)
    return error_response(503, "a backing service (Kafka or Cassandra) is unavailable")


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal error")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _on_api_error)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(InvalidWebhook, _on_invalid_webhook)
    app.add_exception_handler(NotFound, _on_not_found)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    app.add_exception_handler(HandOffError, _on_hand_off)
    app.add_exception_handler(Exception, _on_unexpected)
