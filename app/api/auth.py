"""API keys: ``Authorization: Bearer <key>`` on every ``/v1`` route, and the account it acts in.

Two kinds of keys:

- **Operator keys** (``HOOKSTREAM_API_KEYS``, held as SHA-256 digests only, also in memory):
  they manage accounts and act for any account — the one named in the ``Hookstream-Account``
  header, or the default account without it. So a single-team install keeps working with no
  account step: its configured key acts in the default account, as before accounts existed.
- **Account keys** (``hookstream apikey create --account`` or ``POST /v1/keys``): they act only
  in their own account; the header is ignored for them (refused if it names another account).

A presented key is hashed and compared in constant time with *every* operator digest (no early
exit), then, if none matched, looked up in the store — on every request, no cache, so a
revoked key is refused by every API replica from its next request on. The acting account's
standing is cached for at most a second (``AccountCache``): disabling an account takes effect
within a second too. Every refusal of a key has the same body, so a caller learns nothing about
which keys exist; a disabled account answers 403.

Authentication runs before the request body is read (``AuthenticatedRoute``), so an anonymous
caller gets the 401 and never a validation error about a body it should not be sending. The
per-key rate limit (``app.api.ratelimit``) runs right after it.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from fastapi import Request, Response
from fastapi.routing import APIRoute
from fastapi.security import HTTPBearer
from pydantic import SecretStr

from app.accounts import DEFAULT_ACCOUNT, Account, is_account_id
from app.api.errors import ApiError, Unauthorized, Unavailable, echo, error_responses
from app.api.ratelimit import RateLimiter
from app.store.api_keys import StoredKey

log = logging.getLogger(__name__)

MAX_KEY_LENGTH = 512
ACCOUNT_HEADER = "hookstream-account"  # an operator key's choice of account
ACCOUNT_TTL_S = 1.0  # an account's standing is reread at least this often


class _DocumentedBearer(HTTPBearer):
    """The scheme for OpenAPI only: FastAPI still calls it on every ``/v1`` request, and
    HTTPBearer would parse the header into a model nobody reads (AuthenticatedRoute checks
    the key, before this runs)."""

    async def __call__(self, request: Request) -> None:  # type: ignore[override]
        return None


# Only documents the scheme in OpenAPI (the check itself is AuthenticatedRoute's).
bearer_scheme = _DocumentedBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="An operator key (HOOKSTREAM_API_KEYS; choose the account with the "
    "`Hookstream-Account` header) or an account key (`hookstream apikey create`).",
)


class KeyStore(Protocol):
    async def lookup(self, key: str) -> StoredKey | None: ...


class AccountStore(Protocol):
    async def get(self, account_id: str) -> Account | None: ...


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the account the request acts in, and whether it holds an operator key.

    ``rate_key`` names the key for the rate limit (a digest prefix, never the key)."""

    account_id: str
    operator: bool
    rate_key: str
    key_id: str | None = None  # an account key's id


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


class AccountCache:
    """Accounts by id for at most ``ttl`` seconds each (None, "no such account", included)."""

    def __init__(self, store: AccountStore | None, ttl: float = ACCOUNT_TTL_S) -> None:
        self._store = store
        self._ttl = ttl
        self._seen: dict[str, tuple[float, Account | None]] = {}

    async def get(self, account_id: str) -> Account | None:
        now = time.monotonic()
        hit = self._seen.get(account_id)
        if hit is not None and now - hit[0] < self._ttl:
            return hit[1]
        account = await self._store.get(account_id) if self._store is not None else None
        if len(self._seen) > 10_000:
            self._seen.clear()
        self._seen[account_id] = (now, account)
        return account


class ApiKeyAuth:
    """Accepts the operator keys (held as digests) and the account keys the store knows."""

    def __init__(
        self,
        configured: Iterable[SecretStr],
        stored: KeyStore | None,
        accounts: AccountStore | None = None,
        limiter: RateLimiter | None = None,
    ) -> None:
        self._digests = tuple(_digest(key.get_secret_value()) for key in configured)
        self._stored = stored
        self._accounts = AccountCache(accounts)
        self.limiter = limiter

    def matches_configured(self, key: str) -> bool:
        presented = _digest(key)
        matched = False
        for digest in self._digests:
            matched |= hmac.compare_digest(presented, digest)
        return matched

    async def check(
        self, authorization: str | None, account_header: str | None = None
    ) -> Principal:
        """The caller, if the header carries a valid key; else Unauthorized (401). An
        operator naming an unknown account gets 404, a disabled account 403."""
        key = bearer_token(authorization)
        if key is None:
            raise Unauthorized()
        rate_key = _digest(key).hex()[:16]
        if self.matches_configured(key):
            account = DEFAULT_ACCOUNT if not account_header else account_header.strip()
            await self._require_active(account, named=True)
            return Principal(account, operator=True, rate_key=rate_key)
        stored = await self._lookup(key)
        if stored is None:
            raise Unauthorized()
        if account_header and account_header.strip() != stored.account_id:
            raise ApiError(403, "an account key acts only in its own account", field=ACCOUNT_HEADER)
        await self._require_active(stored.account_id, named=False)
        return Principal(stored.account_id, operator=False, rate_key=rate_key, key_id=stored.id)

    async def _lookup(self, key: str) -> StoredKey | None:
        if self._stored is None:
            return None
        try:
            return await self._stored.lookup(key)
        except Exception as exc:
            log.warning("API key lookup failed: %s", type(exc).__name__)
            raise Unavailable("cannot check the API key right now") from None

    async def _require_active(self, account_id: str, *, named: bool) -> None:
        if account_id == DEFAULT_ACCOUNT:
            return
        if not is_account_id(account_id):
            raise ApiError(422, f"{echo(account_id)} is not an account id", field=ACCOUNT_HEADER)
        try:
            account = await self._accounts.get(account_id)
        except Exception as exc:
            log.warning("account lookup failed: %s", type(exc).__name__)
            raise Unavailable("cannot check the account right now") from None
        if account is None:
            if named:
                raise ApiError(404, f"no account {echo(account_id)}", field=ACCOUNT_HEADER)
            raise Unauthorized()  # a key of an account that is gone
        if not account.active:
            raise ApiError(403, f"account {echo(account_id)} is disabled", type="account_disabled")


def get_auth(request: Request) -> ApiKeyAuth:
    auth: ApiKeyAuth = request.app.state.auth
    return auth


async def get_principal(request: Request) -> Principal:
    """The caller of an ``AuthenticatedRoute`` (set before the route's dependencies run).
    ``async`` so that FastAPI calls it on the loop, not in its thread pool."""
    principal: Principal = request.state.principal
    return principal


class AuthenticatedRoute(APIRoute):
    """An APIRoute that checks the API key (and the rate limit) before FastAPI reads or
    validates anything. Every such route can answer 429, so each documents it."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        responses = dict(kwargs.get("responses") or {})
        responses.setdefault(429, error_responses(429)[429])
        kwargs["responses"] = responses
        super().__init__(path, endpoint, **kwargs)

    def admit(self, principal: Principal) -> None:
        """Raise an ApiError if this caller may not use the route (every key may here)."""

    def request_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """What runs once the caller is admitted: FastAPI's handler (dependencies, validation,
        the endpoint). A route class may answer some requests without it (``LogPageRoute``)."""
        return super().get_route_handler()

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = self.request_handler()

        async def authenticated(request: Request) -> Response:
            auth = get_auth(request)
            principal = await auth.check(
                request.headers.get("authorization"), request.headers.get(ACCOUNT_HEADER)
            )
            if auth.limiter is not None:
                auth.limiter.take(principal.rate_key)
            self.admit(principal)
            request.state.principal = principal
            return await handler(request)

        return authenticated


class OperatorRoute(AuthenticatedRoute):
    """Account management: operator keys only. An account key gets 404, as for a route that
    does not exist for it (and nothing about other accounts)."""

    def admit(self, principal: Principal) -> None:
        if not principal.operator:
            raise ApiError(404, "not found")
