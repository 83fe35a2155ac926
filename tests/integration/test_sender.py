"""AiohttpSender against real local HTTP servers: aiohttp.web receivers for well-behaved
answers, raw asyncio socket servers (which count accepted connections) for misbehaving ones.

No mocks of the HTTP layer. Time is compressed through settings (a 1 s attempt deadline).
"""

from __future__ import annotations

import asyncio
import ipaddress
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import timedelta
from pathlib import Path
from types import TracebackType

import pytest
from aiohttp import web

from app.delivery import (
    AiohttpSender,
    AttemptRequest,
    AttemptResult,
    Delivered,
    DestinationRefused,
    Failed,
    FailureKind,
    Refused,
)
from app.delivery.resolver import GuardedResolver
from app.settings import DeliverySettings

pytestmark = pytest.mark.integration

SETTINGS = DeliverySettings.model_validate(
    {
        "attempt_timeout": 1.0,
        "connect_timeout": 1.0,
        "response_max_bytes": 65536,
        "response_excerpt_bytes": 64,
        "concurrency": 16,
        "per_webhook_concurrency": 4,
    }
)
LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"),)
BODY = b'{"id":"evt_1","type":"user.created","data":{"name":"\xc3\xa9"}}'
HEADERS = {
    "Content-Type": "application/json",
    "User-Agent": "Hookstream/test",
    "X-Webhook-Signature": "00ff",
}


def attempt(url: str, webhook_id: str = "hook_a") -> AttemptRequest:
    return AttemptRequest(url=url, body=BODY, headers=HEADERS, webhook_id=webhook_id)


async def wait_until(condition: Callable[[], bool], within: float = 5.0, what: str = "") -> None:
    """Poll a condition with a deadline; fail with what was awaited."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what or condition}")
        await asyncio.sleep(0.005)


# --- receivers ----------------------------------------------------------------------------

RawHandler = Callable[["RawServer", asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class RawServer:
    """A TCP listener on 127.0.0.1 that counts accepted connections and requests."""

    def __init__(self, handler: RawHandler, ssl_context: ssl.SSLContext | None = None) -> None:
        self._handler = handler
        self._ssl = ssl_context
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.accepts = 0
        self.requests: list[bytes] = []  # request heads received
        self.release = asyncio.Event()  # handlers that hold a request wait for this

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def __aenter__(self) -> RawServer:
        self._server = await asyncio.start_server(self._on_client, "127.0.0.1", 0, ssl=self._ssl)
        return self

    async def __aexit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepts += 1
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._handler(self, reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass  # the client went away, or the test is over
        finally:
            self._tasks.discard(task)
            writer.close()

    async def read_request(self, reader: asyncio.StreamReader) -> bytes:
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        body = await reader.readexactly(length)
        self.requests.append(head)
        return body


async def answer_ok(srv: RawServer, reader: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
    await srv.read_request(reader)
    w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
    await w.drain()


async def never_answer(
    srv: RawServer, reader: asyncio.StreamReader, _w: asyncio.StreamWriter
) -> None:
    await srv.read_request(reader)
    await asyncio.Event().wait()


async def answer_when_released(
    srv: RawServer, reader: asyncio.StreamReader, w: asyncio.StreamWriter
) -> None:
    await srv.read_request(reader)
    await srv.release.wait()
    w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nslow")
    await w.drain()


async def drip_body(srv: RawServer, reader: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
    await srv.read_request(reader)
    w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
    for _ in range(1000):
        w.write(b".")
        await w.drain()
        await asyncio.sleep(0.2)  # the receiver's pace, not test synchronization


async def garbage_status(
    srv: RawServer, reader: asyncio.StreamReader, w: asyncio.StreamWriter
) -> None:
    await srv.read_request(reader)
    w.write(b"HTTP/1.1 OK-ish totally\r\n\r\n")
    await w.drain()
    await asyncio.Event().wait()


async def huge_header(
    srv: RawServer, reader: asyncio.StreamReader, w: asyncio.StreamWriter
) -> None:
    await srv.read_request(reader)
    w.write(b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 100_000 + b"\r\nContent-Length: 0\r\n\r\n")
    await w.drain()
    await asyncio.Event().wait()


class Receiver:
    """An aiohttp.web receiver recording what it was sent."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, str], bytes]] = []
        self.huge_sent = 0
        self.huge_done = asyncio.Event()
        self.redirect_to = ""
        self.port = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def _record(self, request: web.Request) -> None:
        self.seen.append((request.path, dict(request.headers), await request.read()))

    async def ok(self, request: web.Request) -> web.Response:
        await self._record(request)
        return web.Response(text="accepted: " + "x" * 200)

    async def no_content(self, request: web.Request) -> web.Response:
        await self._record(request)
        return web.Response(status=204)

    async def fail(self, request: web.Request) -> web.Response:
        await self._record(request)
        return web.Response(status=500, text="boom")

    async def throttled(self, request: web.Request) -> web.Response:
        await self._record(request)
        return web.Response(status=429, headers={"Retry-After": "120"}, text="slow down")

    async def gone(self, request: web.Request) -> web.Response:
        await self._record(request)
        return web.Response(status=410)

    async def redirect(self, request: web.Request) -> web.Response:
        await self._record(request)
        return web.Response(status=302, headers={"Location": self.redirect_to})

    async def huge(self, request: web.Request) -> web.StreamResponse:
        """About 1 GB, chunked, no Content-Length; stops when the client goes away."""
        await self._record(request)
        response = web.StreamResponse(status=200)
        await response.prepare(request)
        chunk = b"y" * 65536
        try:
            while self.huge_sent < 1 << 30:
                await response.write(chunk)
                self.huge_sent += len(chunk)
        except (ConnectionError, RuntimeError):
            pass
        finally:
            self.huge_done.set()
        return response


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/ok", rec.ok)
    app.router.add_post("/no-content", rec.no_content)
    app.router.add_post("/fail", rec.fail)
    app.router.add_post("/throttled", rec.throttled)
    app.router.add_post("/gone", rec.gone)
    app.router.add_post("/redirect", rec.redirect)
    app.router.add_post("/huge", rec.huge)
    runner = web.AppRunner(app, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    rec.port = runner.addresses[0][1]
    yield rec
    await runner.cleanup()


@pytest.fixture
async def sender() -> AsyncIterator[AiohttpSender]:
    """A sender allowed to reach loopback, as in local development."""
    s = AiohttpSender(SETTINGS, LOOPBACK)
    yield s
    await s.close()


@pytest.fixture
async def strict_sender() -> AsyncIterator[AiohttpSender]:
    """A sender with the production default: no allowed networks."""
    s = AiohttpSender(SETTINGS)
    yield s
    await s.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    yield


# --- outcomes -----------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "status"), [("/ok", 200), ("/no-content", 204)])
async def test_2xx_is_delivered_with_the_exact_body(
    sender: AiohttpSender, receiver: Receiver, path: str, status: int
) -> None:
    result = await sender.send(attempt(receiver.url(path)))

    assert isinstance(result, Delivered), result
    assert result.status == status
    assert 0 <= result.duration_ms < 1000
    assert len(receiver.seen) == 1
    seen_path, headers, body = receiver.seen[0]
    assert (seen_path, body) == (path, BODY)
    assert headers["X-Webhook-Signature"] == "00ff"
    assert headers["Content-Type"] == "application/json"
    assert headers["Accept-Encoding"] == "identity"
    if status == 200:
        assert result.excerpt == ("accepted: " + "x" * 200)[: SETTINGS.response_excerpt_bytes]
        assert ("Content-Type", "text/plain; charset=utf-8") in result.headers


async def test_500_is_an_http_status_failure(sender: AiohttpSender, receiver: Receiver) -> None:
    result = await sender.send(attempt(receiver.url("/fail")))

    assert isinstance(result, Failed), result
    assert (result.kind, result.status, result.excerpt) == (FailureKind.HTTP_STATUS, 500, "boom")
    assert result.retry_after is None


async def test_429_carries_retry_after(sender: AiohttpSender, receiver: Receiver) -> None:
    result = await sender.send(attempt(receiver.url("/throttled")))

    assert isinstance(result, Failed), result
    assert (result.kind, result.status) == (FailureKind.HTTP_STATUS, 429)
    assert result.retry_after == timedelta(seconds=120)


async def test_410_is_gone(sender: AiohttpSender, receiver: Receiver) -> None:
    result = await sender.send(attempt(receiver.url("/gone")))

    assert isinstance(result, Failed), result
    assert (result.kind, result.status) == (FailureKind.GONE, 410)


async def test_redirect_is_a_failure_and_never_followed(
    sender: AiohttpSender, receiver: Receiver
) -> None:
    async with RawServer(answer_ok) as target:
        receiver.redirect_to = f"http://127.0.0.1:{target.port}/"
        result = await sender.send(attempt(receiver.url("/redirect")))

        assert isinstance(result, Failed), result
        assert (result.kind, result.status) == (FailureKind.REDIRECT, 302)
        assert target.accepts == 0
        # The counter works: a direct request to the target is seen.
        assert isinstance(await sender.send(attempt(receiver.redirect_to)), Delivered)
        assert target.accepts == 1


async def test_silent_receiver_times_out_within_the_deadline(sender: AiohttpSender) -> None:
    async with RawServer(never_answer) as silent:
        started = time.monotonic()
        result = await asyncio.wait_for(
            sender.send(attempt(f"http://127.0.0.1:{silent.port}/")), timeout=5
        )
        elapsed = time.monotonic() - started

        assert isinstance(result, Failed), result
        assert result.kind is FailureKind.TIMEOUT
        assert result.status is None
        assert len(silent.requests) == 1  # it was sent, then nothing came back
        assert SETTINGS.attempt_timeout * 0.9 <= elapsed < SETTINGS.attempt_timeout + 1.0


async def test_dripping_body_hits_the_total_deadline(sender: AiohttpSender) -> None:
    # One byte every 0.2 s: a per-read timeout would never fire; the total deadline must.
    async with RawServer(drip_body) as drip:
        started = time.monotonic()
        result = await asyncio.wait_for(
            sender.send(attempt(f"http://127.0.0.1:{drip.port}/")), timeout=5
        )
        elapsed = time.monotonic() - started

        assert isinstance(result, Failed), result
        assert result.kind is FailureKind.TIMEOUT
        assert result.status == 200  # the status line had arrived
        assert elapsed < SETTINGS.attempt_timeout + 1.0


async def test_huge_body_is_read_only_up_to_the_cap(
    sender: AiohttpSender, receiver: Receiver
) -> None:
    result = await sender.send(attempt(receiver.url("/huge")))

    assert isinstance(result, Delivered), result
    assert result.status == 200
    assert result.excerpt == "y" * SETTINGS.response_excerpt_bytes
    # The sender closed the connection instead of draining it: the receiver stops early.
    await asyncio.wait_for(receiver.huge_done.wait(), timeout=5)
    assert receiver.huge_sent < 64 * 1024 * 1024


async def test_connection_refused_is_a_connect_failure(sender: AiohttpSender) -> None:
    result = await sender.send(attempt(f"http://127.0.0.1:{free_port()}/"))

    assert isinstance(result, Failed), result
    assert (result.kind, result.status) == (FailureKind.CONNECT, None)


@pytest.mark.parametrize("handler", [garbage_status, huge_header], ids=["status", "headers"])
async def test_unparseable_response_is_a_protocol_failure(
    sender: AiohttpSender, handler: RawHandler
) -> None:
    async with RawServer(handler) as bad:
        result = await sender.send(attempt(f"http://127.0.0.1:{bad.port}/"))

        assert isinstance(result, Failed), result
        assert result.kind is FailureKind.PROTOCOL
        assert bad.accepts == 1


@pytest.fixture
def self_signed(tmp_path: Path) -> ssl.SSLContext:
    """A server TLS context with a self-signed certificate for another name."""
    # openssl ships with every Debian image this project supports; a missing one is a failure.
    assert shutil.which("openssl"), "the TLS test needs the openssl command"
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=receiver.example", "-addext", "subjectAltName=DNS:receiver.example",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


async def test_untrusted_certificate_is_a_tls_failure(
    sender: AiohttpSender, self_signed: ssl.SSLContext
) -> None:
    async with RawServer(answer_ok, ssl_context=self_signed) as tls:
        result = await sender.send(attempt(f"https://127.0.0.1:{tls.port}/"))

        assert isinstance(result, Failed), result
        assert result.kind is FailureKind.TLS
        assert "certificate" in result.error.lower()
        assert tls.requests == []  # verification failed before any request was sent


# --- SSRF ---------------------------------------------------------------------------------

LOOPBACK_SPELLINGS = ["127.0.0.1", "2130706433", "127.1", "0x7f000001", "017700000001"]


@pytest.mark.parametrize("host", [*LOOPBACK_SPELLINGS, "localhost", "[::ffff:127.0.0.1]"])
async def test_loopback_is_refused_without_a_connection(
    strict_sender: AiohttpSender, host: str
) -> None:
    async with RawServer(answer_ok) as listener:
        result = await strict_sender.send(attempt(f"http://{host}:{listener.port}/"))

        assert isinstance(result, Refused), result
        assert "loopback" in result.reason
        assert listener.accepts == 0


@pytest.mark.parametrize("host", LOOPBACK_SPELLINGS)
async def test_loopback_is_sent_when_allowed(sender: AiohttpSender, host: str) -> None:
    async with RawServer(answer_ok) as listener:
        result = await sender.send(attempt(f"http://{host}:{listener.port}/"))

        assert isinstance(result, Delivered), result
        assert result.status == 200
        assert listener.accepts == 1


async def test_resolver_refuses_every_address_of_a_name() -> None:
    resolver = GuardedResolver()
    try:
        with pytest.raises(DestinationRefused, match="loopback"):
            await resolver.resolve("localhost", 80, socket.AF_UNSPEC)
    finally:
        await resolver.close()
    allowed = GuardedResolver([*LOOPBACK, ipaddress.ip_network("::1/128")])
    try:
        results = await allowed.resolve("localhost", 80, socket.AF_UNSPEC)
    finally:
        await allowed.close()
    assert results
    assert {ipaddress.ip_address(r["host"]).is_loopback for r in results} == {True}


async def test_proxy_environment_is_ignored(
    sender: AiohttpSender, receiver: Receiver, monkeypatch: pytest.MonkeyPatch, no_proxy_env: None
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, dead)

    result = await sender.send(attempt(receiver.url("/ok")))

    assert isinstance(result, Delivered), result
    assert len(receiver.seen) == 1


# --- fairness -----------------------------------------------------------------------------


async def test_a_slow_webhook_does_not_delay_a_fast_one(receiver: Receiver) -> None:
    # Overall 4 slots, 2 per webhook: without the per-webhook limit, 6 slow attempts would
    # hold all 4 shared slots and the fast webhook would wait for the slow receiver.
    settings = SETTINGS.model_copy(
        update={"concurrency": 4, "per_webhook_concurrency": 2, "attempt_timeout": 30.0}
    )
    sender = AiohttpSender(settings, LOOPBACK)
    try:
        async with RawServer(answer_when_released) as slow:
            slow_url = f"http://127.0.0.1:{slow.port}/"
            slow_tasks = [
                asyncio.create_task(sender.send(attempt(slow_url, "hook_slow"))) for _ in range(6)
            ]
            await wait_until(lambda: len(slow.requests) == 2, what="2 slow requests in flight")

            fast: list[AttemptResult] = await asyncio.wait_for(
                asyncio.gather(
                    *(sender.send(attempt(receiver.url("/ok"), "hook_fast")) for _ in range(8))
                ),
                timeout=5,
            )

            assert all(isinstance(r, Delivered) for r in fast), fast
            assert not any(t.done() for t in slow_tasks)
            assert len(slow.requests) == 2  # the slow webhook never exceeded its limit
            assert sender.in_flight("hook_slow") == 6
            assert sender.in_flight("hook_fast") == 0  # idle gates are dropped

            slow.release.set()
            results = await asyncio.wait_for(asyncio.gather(*slow_tasks), timeout=10)
            assert all(isinstance(r, Delivered) and r.excerpt == "slow" for r in results)
            assert sender.in_flight("hook_slow") == 0
    finally:
        await sender.close()


async def serve_once_then_reset(
    server: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """Answer the first request keep-alive, then reset the connection on the next one: what a
    receiver that closed an idle keep-alive connection looks like to the pooled client."""
    await server.read_request(reader)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok")
    await writer.drain()
    await server.read_request(reader)
    writer.transport.abort()


async def always_reset(
    server: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    await server.read_request(reader)
    writer.transport.abort()


async def test_a_stale_keep_alive_reset_is_retried_once_at_once(sender: AiohttpSender) -> None:
    async with RawServer(serve_once_then_reset) as flaky:
        url = f"http://127.0.0.1:{flaky.port}/"
        first = await sender.send(attempt(url))
        second = await sender.send(attempt(url))  # reuses the pooled, now stale connection

        assert isinstance(first, Delivered), first
        assert isinstance(second, Delivered), second
        assert flaky.accepts == 2  # the instant retry opened a fresh connection
        assert len(flaky.requests) == 3


async def test_a_receiver_that_always_resets_is_not_retried_twice(sender: AiohttpSender) -> None:
    async with RawServer(always_reset) as broken:
        result = await sender.send(attempt(f"http://127.0.0.1:{broken.port}/"))

        assert isinstance(result, Failed), result
        assert result.kind is FailureKind.CONNECT
        assert len(broken.requests) == 2  # the attempt and its one instant retry
