"""API keys: ``Authorization: Bearer <key>`` on every ``/v1`` route.

Keys are held as SHA-256 digests only, also in memory. A presented key is hashed and compared
in constant time with *every* configured digest (no early exit), then, if none matched, looked
up in the store (keys made by ``hookstream apikey create``; the store hashes and does a point
lookup). Every refusal has the same body, so a caller learns nothing about which keys exist.

Authentication runs before the request body is read (``AuthenticatedRoute``), so an anonymous
caller gets the 401 and never a validation error about a body it should not be sending.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from fastapi.security import HTTPBearer
from pydantic import SecretStr

from app.api.errors import Unauthorized, Unavailable
from app.api.ports import ApiKeyRepo

log = logging.getLogger(__name__)

MAX_KEY_LENGTH = 512

# Only documents the scheme in OpenAPI (the check itself is AuthenticatedRoute's).
bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="An API key from HOOKSTREAM_API_KEYS or `hookstream apikey create`.",
)


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def bearer_token(authorization: str | None) -> str | None:
    """The key of an ``Authorization: Bearer <key>`` header, or None if absent or malformed."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > MAX_KEY_LENGTH:
        return None
    if not token.isascii() or not token.isprintable() or " " in token:
        return None
    return token


class ApiKeyAuth:
    """Accepts the configured keys (held as digests) and the keys the store knows."""

    def __init__(self, configured: Iterable[SecretStr], stored: ApiKeyRepo | None) -> None:
        self._digests = tuple(_digest(key.get_secret_value()) for key in configured)
        self._stored = stored

    def matches_configured(self, key: str) -> bool:
        presented = _digest(key)
        matched = False
        for digest in self._digests:
            matched |= hmac.compare_digest(presented, digest)
        return matched

    async def check(self, authorization: str | None) -> None:
        """Return if the header carries a valid key; else raise Unauthorized (401)."""
        key = bearer_token(authorization)
        if key is None:
            raise Unauthorized()
        if self.matches_configured(key):
            return
        if self._stored is not None:
            try:
                known = await self._stored.exists(key)
            except Exception as exc:
                log.warning("API key lookup failed: %s", type(exc).__name__)
                raise Unavailable("cannot check the API key right now") from None
            if known:
                return
        raise Unauthorized()


def get_auth(request: Request) -> ApiKeyAuth:
    auth: ApiKeyAuth = request.app.state.auth
    return auth


class AuthenticatedRoute(APIRoute):
    """An APIRoute that checks the API key before FastAPI reads or validates anything."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def authenticated(request: Request) -> Response:
            await get_auth(request).check(request.headers.get("authorization"))
            return await handler(request)

        return authenticated
