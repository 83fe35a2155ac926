"""④ Send one attempt over HTTP and turn whatever happens into an ``AttemptResult``.

``Sender`` is the interface the worker uses; ``AiohttpSender`` is the hot-path implementation
(httpx's async pool collapses under concurrency, see ARCHITECTURE.md). One sender, hence one
``ClientSession`` and one keep-alive pool, per process; the session is created lazily inside
the running loop.

What one attempt is:

- admitted under the webhook's own limit first, then the process-wide limit, so the requests
  of a slow webhook wait for *their* slots without holding any shared one;
- refused before any connection when the URL's host is an IP literal the SSRF guard refuses
  (aiohttp does not call the resolver for literals), or when the resolver refuses the name's
  addresses (``GuardedResolver``) — a ``Refused``, never retried;
- one deadline (``attempt_timeout``, aiohttp's own ``total``) over connect, send, status,
  headers and body, plus ``connect_timeout`` for opening the socket; no redirects, no
  proxies from the environment, no cookies, ``Accept-Encoding: identity`` and no
  decompression;
- at most ``response_max_bytes`` of body read; a connection with unread body is closed, not
  pooled.

The sender logs nothing: request headers carry signatures, and the caller logs the outcome.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import aiohttp
from aiohttp import http_exceptions
from multidict import CIMultiDict
from yarl import URL

from app.delivery.outcomes import (
    AttemptRequest,
    AttemptResult,
    Delivered,
    Failed,
    FailureKind,
    Headers,
    Refused,
)
from app.delivery.resolver import GuardedResolver
from app.delivery.responses import classify
from app.delivery.ssrf import DestinationRefused, IPNetwork
from app.delivery.urls import check_literal_host
from app.settings import DeliverySettings

MAX_STORED_HEADERS = 32
MAX_STORED_HEADER_CHARS = 256


class Sender(Protocol):
    """Sends attempts; safe to call concurrently from many tasks of one event loop."""

    async def send(self, request: AttemptRequest) -> AttemptResult:
        """Make one attempt. Never raises for anything the receiver or network does; only
        ``asyncio.CancelledError`` (and programming errors) escape."""
        ...

    async def close(self) -> None:
        """Close pooled connections; the sender must not be used afterwards."""
        ...


URL_CACHE_SIZE = 4096  # distinct webhook URLs kept checked; the cache restarts when full


@dataclass(slots=True)
class _Gate:
    semaphore: asyncio.Semaphore
    users: int = 0  # tasks holding or waiting for the semaphore; the gate is dropped at 0


class AiohttpSender:
    """The ``Sender`` on aiohttp. Build once per process; ``close()`` on shutdown."""

    def __init__(
        self, settings: DeliverySettings, allowed_networks: Sequence[IPNetwork] = ()
    ) -> None:
        self._settings = settings
        self._allowed = tuple(allowed_networks)
        self._session: aiohttp.ClientSession | None = None
        self._overall: asyncio.Semaphore | None = None
        self._gates: dict[str, _Gate] = {}
        self._urls: dict[str, URL | Refused] = {}  # bounded by URL_CACHE_SIZE
        self._full = _deadline(settings.attempt_timeout, settings.connect_timeout)

    async def send(self, request: AttemptRequest) -> AttemptResult:
        checked = self._urls.get(request.url)
        if checked is None:
            checked = self._check_url(request.url)
            if len(self._urls) >= URL_CACHE_SIZE:
                self._urls.clear()
            self._urls[request.url] = checked
        if isinstance(checked, Refused):
            return checked
        url = checked
        gate = self._gates.get(request.webhook_id)
        if gate is None:
            gate = _Gate(asyncio.Semaphore(self._settings.per_webhook_concurrency))
            self._gates[request.webhook_id] = gate
        gate.users += 1
        try:
            async with gate.semaphore, self._overall_semaphore():
                return await self._attempt(url, request)
        finally:
            gate.users -= 1
            if gate.users == 0:
                del self._gates[request.webhook_id]

    def _check_url(self, raw: str) -> URL | Refused:
        """The URL as sent, or why it is refused before any resolving: a pure function of
        the string and the allowed networks, so ``send`` keeps its answer per URL (parsing
        and the literal-host check were ~2 % of a delivery). Names are still resolved and
        checked on every connection (``GuardedResolver``)."""
        try:
            url = check_literal_host(URL(raw), self._allowed)
        except ValueError as exc:
            return Refused(str(exc))
        if url.scheme not in ("http", "https") or not url.raw_host:
            return Refused("not an absolute http(s) URL")
        if url.raw_user is not None or url.raw_password is not None:
            return Refused("URL contains user info")
        return url

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def in_flight(self, webhook_id: str) -> int:
        """Attempts of this webhook holding or waiting for a slot (for metrics and tests)."""
        gate = self._gates.get(webhook_id)
        return 0 if gate is None else gate.users

    def _overall_semaphore(self) -> asyncio.Semaphore:
        if self._overall is None:
            self._overall = asyncio.Semaphore(self._settings.concurrency)
        return self._overall

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            s = self._settings
            connector = aiohttp.TCPConnector(
                limit=s.concurrency,
                limit_per_host=0,  # per-webhook gates bound each receiver instead
                resolver=GuardedResolver(self._allowed),
                ssl=True,  # always verify, against the URL's host name
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=self._full,
                trust_env=False,  # HTTP(S)_PROXY / NO_PROXY in the environment are ignored
                auto_decompress=False,
                cookie_jar=aiohttp.DummyCookieJar(),  # nothing from one receiver to the next
                raise_for_status=False,
            )
        return self._session

    async def _attempt(self, url: URL, request: AttemptRequest) -> AttemptResult:
        s = self._settings
        headers = CIMultiDict(request.headers)
        headers["Accept-Encoding"] = "identity"  # with auto_decompress off: no gzip bombs
        started = time.monotonic()
        status: int | None = None
        timeout = self._full  # the whole deadline; an instant retry gets what is left of it
        retried = False
        while True:
            try:
                # One deadline, aiohttp's own ``total``: it covers connecting, sending, the
                # status, the headers and every body read until the connection is released.
                # (An asyncio.timeout around it as well cost 5-7 µs an attempt.)
                async with self._client().post(
                    url, data=request.body, headers=headers, allow_redirects=False,
                    timeout=timeout,
                ) as response:  # fmt: skip
                    status = response.status
                    stored = _stored_headers(response.headers.items())
                    body = await _read_capped(response, s.response_max_bytes)
                    verdict = classify(
                        status, response.headers, datetime.now(UTC), s.max_retry_after
                    )
                break
            except DestinationRefused as exc:
                return Refused(exc.reason)
            except Exception as exc:
                if not retried and _stale_connection(exc, status, started):
                    # A pooled keep-alive connection the receiver had already closed: one
                    # immediate retry on a fresh connection, within the same attempt (as Svix):
                    # what is left of the deadline is the retry's.
                    left = s.attempt_timeout - (time.monotonic() - started)
                    timeout = _deadline(max(left, 0.001), s.connect_timeout)
                    retried = True
                    continue
                kind = _failure_kind(exc)
                if kind is None:
                    raise
                error = _describe(exc, s.attempt_timeout)
                return Failed(kind, status, error, _elapsed_ms(started))
        excerpt = body[: s.response_excerpt_bytes].decode("utf-8", errors="replace")
        duration_ms = _elapsed_ms(started)
        if verdict.failure is None:
            return Delivered(status, duration_ms, excerpt, stored)
        return Failed(
            verdict.failure,
            status,
            f"HTTP {status}",
            duration_ms,
            excerpt,
            verdict.retry_after,
            stored,
        )


# An instant retry is only for a reset that came at once, before any response arrived.
STALE_RESET_WINDOW_S = 1.0


def _deadline(total: float, connect: float) -> aiohttp.ClientTimeout:
    # ``ceil_threshold`` above the deadline: aiohttp rounds longer timeouts up to a whole
    # second (to share timers); an attempt's deadline is exact.
    return aiohttp.ClientTimeout(total=total, sock_connect=connect, ceil_threshold=total + 1)


def _stale_connection(exc: BaseException, status: int | None, started: float) -> bool:
    # Disconnected or reset on an established connection; a failed connect is not "stale".
    reset = isinstance(exc, aiohttp.ServerDisconnectedError) or (
        isinstance(exc, aiohttp.ClientOSError) and not isinstance(exc, aiohttp.ClientConnectorError)
    )
    return reset and status is None and time.monotonic() - started < STALE_RESET_WINDOW_S


async def _read_capped(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """Up to ``limit`` body bytes; if more remain, close the connection instead of pooling
    it (a half-read connection cannot be reused, and reading the rest could be endless)."""
    chunks: list[bytes] = []
    remaining = limit
    while remaining > 0:
        chunk = await response.content.read(remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    if not response.content.at_eof():
        response.close()
    return b"".join(chunks)


def _stored_headers(items: Iterable[tuple[str, str]]) -> Headers:
    out: list[tuple[str, str]] = []
    for name, value in items:
        if len(out) == MAX_STORED_HEADERS:
            break
        out.append((name[:MAX_STORED_HEADER_CHARS], value[:MAX_STORED_HEADER_CHARS]))
    return tuple(out)


def _failure_kind(exc: BaseException) -> FailureKind | None:
    """The category of an exception raised while attempting; ``None``: not ours to absorb.

    Order matters: aiohttp's timeout and TLS errors are also connection errors.
    """
    if isinstance(exc, TimeoutError):  # asyncio.TimeoutError and aiohttp's ServerTimeoutError
        return FailureKind.TIMEOUT
    if isinstance(exc, aiohttp.ClientSSLError | ssl.SSLError):
        return FailureKind.TLS
    if isinstance(exc, aiohttp.ClientConnectorError):
        # aiohttp wraps some TLS failures in a plain connector error; look underneath.
        if isinstance(exc.os_error, ssl.SSLError):
            return FailureKind.TLS
        return FailureKind.CONNECT
    if isinstance(
        exc,
        aiohttp.ClientResponseError
        | aiohttp.ClientPayloadError
        | http_exceptions.HttpProcessingError
        | aiohttp.InvalidURL,
    ):
        return FailureKind.PROTOCOL
    if isinstance(exc, aiohttp.ClientConnectionError | OSError):
        return FailureKind.CONNECT  # reset, server disconnected, ...
    if isinstance(exc, aiohttp.ClientError):
        return FailureKind.PROTOCOL
    return None


def _describe(exc: BaseException, attempt_timeout: float) -> str:
    text = str(exc)
    if not text and isinstance(exc, TimeoutError):
        text = f"no complete response within the {attempt_timeout:g} s attempt deadline"
    return f"{type(exc).__name__}: {text or 'no detail'}"[:500]


def _elapsed_ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)
