"""The API's limits through the real server: ``hookstream api`` (uvicorn) as a process against
the real Cassandra and Kafka, spoken to over raw sockets so the test decides exactly which
bytes of a request are ever sent.

A body past ``api.max_body_bytes`` (the 1 MiB default here) is answered 413 in the error shape
without being read: for a declared Content-Length before one byte of it is sent, for a
chunked body that never ends after the limit is passed. A long id is not echoed back whole.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import orjson
import pytest

from app.settings import Settings
from tests.support import API_KEY, Role, api_ready, eventually, pipeline_settings, prepare

pytestmark = pytest.mark.integration

LIMIT = 1_048_576  # the documented default of HOOKSTREAM_API__MAX_BODY_BYTES
READ_TIMEOUT = 10.0


@pytest.fixture(scope="module")
async def api(stack_settings: Settings) -> AsyncIterator[Settings]:
    settings = pipeline_settings(stack_settings, uuid.uuid4().hex[:10])
    assert settings.api.max_body_bytes == LIMIT
    await asyncio.to_thread(prepare, settings)
    role = Role("api", settings).start()
    client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.api.port}", trust_env=False)
    try:
        await eventually(lambda: api_ready(client), timeout=90, what="the API to be ready")
        yield settings
    finally:
        await client.aclose()
        await role.astop()


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    closed: bool  # the server closed the connection after answering


async def read_answer(reader: asyncio.StreamReader) -> Answer:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT)
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines if x)}
    body = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), READ_TIMEOUT)
    try:
        closed = (await asyncio.wait_for(reader.read(1), READ_TIMEOUT)) == b""
    except ConnectionResetError:
        # Closed too: a server that closes with unread request bytes in its receive buffer
        # (the rest of a refused body) makes the kernel answer with a reset, not a FIN.
        closed = True
    return Answer(int(status_line.split()[1]), headers, body, closed)


def request_head(settings: Settings, method: str, path: str, *headers: str) -> bytes:
    lines = [
        f"{method} {path} HTTP/1.1",
        f"Host: 127.0.0.1:{settings.api.port}",
        f"Authorization: Bearer {API_KEY}",
        "Content-Type: application/json",
        *headers,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def assert_too_large(answer: Answer) -> None:
    assert answer.status == 413, answer
    assert answer.headers["content-type"] == "application/json"
    assert orjson.loads(answer.body) == {
        "error": {
            "type": "payload_too_large",
            "message": f"the request body is larger than {LIMIT} bytes",
            "field": "body",
        }
    }
    assert answer.headers["connection"] == "close"
    assert answer.closed


async def test_a_10_mb_content_length_is_refused_before_its_body_is_sent(api: Settings) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", api.api.port)
    try:
        # Only the head: the answer comes back although not one byte of the body was sent.
        writer.write(request_head(api, "POST", "/v1/webhooks", "Content-Length: 10485760"))
        await writer.drain()
        assert_too_large(await read_answer(reader))
    finally:
        writer.close()


async def test_a_chunked_body_is_refused_once_past_the_limit_though_it_never_ends(
    api: Settings,
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", api.api.port)
    chunk = b" " * 65536
    try:
        writer.write(request_head(api, "POST", "/v1/webhooks", "Transfer-Encoding: chunked"))
        # The limit plus one chunk, and no final zero-length chunk: a server reading the whole
        # body would wait here forever; the answer proves it stopped at the limit.
        for _ in range(LIMIT // len(chunk) + 1):
            writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        await writer.drain()
        assert_too_large(await read_answer(reader))
    finally:
        writer.close()


async def test_a_body_of_exactly_the_limit_is_accepted(api: Settings) -> None:
    document = orjson.dumps({"url": "http://127.0.0.1:9/hook", "events": ["user.created"]})
    body = document + b" " * (LIMIT - len(document))
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{api.api.port}", trust_env=False, timeout=READ_TIMEOUT
    ) as client:
        response = await client.post(
            "/v1/webhooks",
            content=body,
            headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"},
        )
    assert response.status_code == 201, response.text


async def test_a_long_id_is_cut_in_the_404(api: Settings) -> None:
    # 10 KB: the longest the server's HTTP parser (h11, 16 KB per request head) lets through.
    huge = "h" * 10_000
    reader, writer = await asyncio.open_connection("127.0.0.1", api.api.port)
    try:
        writer.write(request_head(api, "GET", f"/v1/webhooks/{huge}", "Connection: close"))
        await writer.drain()
        answer = await read_answer(reader)
    finally:
        writer.close()
    assert answer.status == 404
    error = orjson.loads(answer.body)["error"]
    assert error == {"type": "not_found", "message": f"no webhook {'h' * 64!r}…", "field": None}
