"""The ceilings: the fastest each part can go alone, measured in the same run as the pipeline.

Each ceiling runs in a fresh interpreter (``python -m bench.ceilings NAME CONFIG_JSON``, one
JSON line out) so that event loops, imports and garbage never carry over. Every HTTP ceiling
sends the same 1 KB event body with the same headers the worker sends (both signatures
computed per request, as the worker does) to the same receiver (nginx), ``concurrency`` in
flight, for ``warmup + seconds``; only completions after the warm-up count.

    H_aiohttp_uvloop   raw aiohttp ClientSession on uvloop
    H_aiohttp_asyncio  raw aiohttp on the standard asyncio loop (the worker's loop)
    H_httpx_aiohttp    httpx.AsyncClient over the httpx-aiohttp transport (uvloop)
    H_httpx            httpx.AsyncClient with its own transport (uvloop)
    sender             the shipped AiohttpSender.send (literal-host SSRF check, per-webhook and
                       overall gates, deadline, capped read, classify), 64 webhooks, asyncio
    sender_uvloop      the same on uvloop
    sender_1hook       the same with one webhook: its per-webhook limit (16) binds, as in
                       scenario 1
    K_consume          a plain confluent-kafka consume() loop over a pre-filled topic
    C_insert           prepared attempt-row inserts, ``concurrency`` async in flight
    C_record           DeliveryRepository.record (the worker's 7-statement batch), in flight
    S_sign             build_event (orjson) + attempt_headers (both signatures), no I/O
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

SECRET = "whsec_" + "QmVuY2htYXJrU2VjcmV0S2V5MDEyMzQ1Njc4OQ=="
HTTP = (
    "H_aiohttp_uvloop",
    "H_aiohttp_asyncio",
    "H_httpx_aiohttp",
    "H_httpx",
    "sender",
    "sender_uvloop",
    "sender_1hook",
)
ALL = (*HTTP, "K_consume", "C_insert", "C_record", "S_sign")
UNITS = {"K_consume": "msg/s", "C_insert": "rows/s", "C_record": "records/s", "S_sign": "ops/s"}


def unit(name: str) -> str:
    return UNITS.get(name, "req/s")


def _event_body(size: int = 1024) -> tuple[str, bytes]:
    from app.events import build_event
    from bench.producer import padding_for

    pad = padding_for(size)
    event = build_event(
        "evt_ceiling_000000", "user.created", "2026-01-15T12:30:00Z", {"pad": pad, "seq": 1}
    )
    return event.id, event.body


def _headers(event_id: str, body: bytes, n: int) -> dict[str, str]:
    from app.signing import attempt_headers

    headers = attempt_headers(
        secret=SECRET,
        body=body,
        event_id=event_id,
        event_type="user.created",
        delivery_id=f"del_ceiling_{n}",
        attempt=1,
        timestamp=int(time.time()),
    )
    headers["Accept-Encoding"] = "identity"
    return headers


async def _closed_loop(
    one: Callable[[int], Awaitable[bool]], concurrency: int, warmup: float, seconds: float
) -> dict[str, Any]:
    """``concurrency`` tasks calling ``one`` back to back; rate after the warm-up."""
    start = time.monotonic()
    measure_from, stop_at = start + warmup, start + warmup + seconds
    counted = errors = 0
    n = 0

    async def worker() -> None:
        nonlocal counted, errors, n
        while time.monotonic() < stop_at:
            n += 1
            ok = await one(n)
            if time.monotonic() >= measure_from:
                if ok:
                    counted += 1
                else:
                    errors += 1

    tasks = [asyncio.create_task(worker()) for _ in range(concurrency)]
    _, pending = await asyncio.wait(tasks, timeout=warmup + seconds + 15)
    for t in pending:
        t.cancel()
    elapsed = min(time.monotonic(), stop_at + 15) - measure_from
    return {"rate": counted / max(elapsed, 1e-9), "count": counted, "errors": errors,
            "seconds": round(elapsed, 3), "concurrency": concurrency}  # fmt: skip


async def _http(name: str, cfg: dict[str, Any]) -> dict[str, Any]:
    url, conc = cfg["url"], cfg["concurrency"]
    event_id, body = _event_body()
    warmup, seconds = cfg["warmup"], cfg["seconds"]
    if name.startswith("H_aiohttp"):
        import aiohttp

        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=conc), auto_decompress=False
        ) as session:

            async def one(n: int) -> bool:
                try:
                    async with session.post(
                        url, data=body, headers=_headers(event_id, body, n)
                    ) as r:
                        await r.read()
                        return r.status < 300
                except Exception:
                    return False

            return await _closed_loop(one, conc, warmup, seconds)
    if name.startswith("H_httpx"):
        import httpx

        limits = httpx.Limits(max_connections=conc, max_keepalive_connections=conc)
        if name == "H_httpx_aiohttp":
            from httpx_aiohttp import AiohttpTransport

            client = httpx.AsyncClient(transport=AiohttpTransport(), limits=limits, timeout=30)
        else:
            client = httpx.AsyncClient(limits=limits, timeout=30, trust_env=False)
        async with client:

            async def one(n: int) -> bool:
                try:
                    r = await client.post(url, content=body, headers=_headers(event_id, body, n))
                    return r.status_code < 300
                except Exception:
                    return False

            return await _closed_loop(one, conc, warmup, seconds)
    # the shipped sender
    import ipaddress

    from app.delivery import AiohttpSender, AttemptRequest, Delivered
    from app.settings import DeliverySettings

    sender = AiohttpSender(
        DeliverySettings(concurrency=conc), (ipaddress.ip_network("127.0.0.0/8"),)
    )
    hooks = 1 if name == "sender_1hook" else conc

    async def one(n: int) -> bool:
        request = AttemptRequest(
            url=url, body=body, headers=_headers(event_id, body, n)
        , webhook_id=f"hook_{n % hooks}")  # fmt: skip
        return isinstance(await sender.send(request), Delivered)

    try:
        result = await _closed_loop(one, conc, warmup, seconds)
    finally:
        await sender.close()
    result["webhooks"] = hooks
    return result


def _k_consume(cfg: dict[str, Any]) -> dict[str, Any]:
    from confluent_kafka import Consumer

    consumer = Consumer(
        {
            "bootstrap.servers": cfg["bootstrap"],
            "group.id": f"bench-kconsume-{os.getpid()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([cfg["topic"]])
    total, bytes_ = cfg["count"], 0
    got = 0
    first: float | None = None
    deadline = time.monotonic() + cfg["seconds"] + 20  # includes the group join
    measure_until = None
    while got < total and time.monotonic() < deadline:
        batch = consumer.consume(num_messages=1000, timeout=0.5)
        for msg in batch:
            if msg.error():
                continue
            if first is None:
                first = time.monotonic()
                measure_until = first + cfg["seconds"]
            got += 1
            bytes_ += len(msg.value() or b"")
        if measure_until is not None and time.monotonic() > measure_until:
            break
    end = time.monotonic()
    consumer.close()
    elapsed = end - (first or end)
    return {"rate": got / max(elapsed, 1e-9), "count": got, "errors": 0,
            "seconds": round(elapsed, 3), "bytes": bytes_}  # fmt: skip


async def _cassandra(name: str, cfg: dict[str, Any]) -> dict[str, Any]:
    from datetime import UTC, datetime

    from app.deliveries import DeliveryStatus
    from app.settings import Settings
    from app.store import Store
    from app.store.records import AttemptRecord, DeliveryRecord
    from app.store.session import aexecute

    settings = Settings()  # from HOOKSTREAM_ variables set by the parent
    store = await Store.connect(settings)
    repo = store.deliveries
    headers = {"Content-Type": "application/json", "User-Agent": "Hookstream/bench"}
    token = os.getpid()
    now = datetime.now(UTC)

    def records(n: int) -> tuple[DeliveryRecord, AttemptRecord]:
        did = f"del_bench_{token}_{n}"
        attempt = AttemptRecord(did, 1, now, 3, "success", 204, None, "", headers)
        delivery = DeliveryRecord(
            did, f"hook_bench_{n % 64}", f"evt_bench_{n}", "user.created",
            DeliveryStatus.SUCCESS, 1, now, now, 204, None, now, None,
        )  # fmt: skip
        return delivery, attempt

    if name == "C_insert":
        # The attempts table's row, prepared here (not through the repository's privates).
        statement = store.session.prepare(
            f"INSERT INTO {settings.cassandra.keyspace}.attempts (delivery_id, number, "
            "started_at, duration_ms, outcome, status_code, error, response_excerpt, "
            "request_headers) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) USING TTL 86400"
        )

        async def one(n: int) -> bool:
            a = records(n)[1]
            values = (a.delivery_id, a.number, a.started_at, a.duration_ms, a.outcome,
                      a.status_code, a.error, a.response_excerpt, a.request_headers)  # fmt: skip
            try:
                await aexecute(store.session, statement, values)
                return True
            except Exception:
                return False
    else:

        async def one(n: int) -> bool:
            try:
                await repo.record(*records(n))
                return True
            except Exception:
                return False

    try:
        return await _closed_loop(one, cfg["concurrency"], cfg["warmup"], cfg["seconds"])
    finally:
        await store.close()


def _s_sign(cfg: dict[str, Any]) -> dict[str, Any]:
    from app.events import build_event
    from app.signing import attempt_headers

    _, body = _event_body()
    data = {"pad": "x" * (len(body) - 120), "seq": 1}
    start = time.monotonic()
    measure_from, stop_at = start + cfg["warmup"], start + cfg["warmup"] + cfg["seconds"]
    n = counted = 0
    while True:
        now = time.monotonic()
        if now >= stop_at:
            break
        for _ in range(200):
            n += 1
            event = build_event(f"evt_sign_{n}", "user.created", "2026-01-15T12:30:00Z", data)
            attempt_headers(
                secret=SECRET, body=event.body, event_id=event.id, event_type=event.type,
                delivery_id=f"del_{n}", attempt=1, timestamp=1_760_000_000,
            )  # fmt: skip
        if now >= measure_from:
            counted += 200
    elapsed = time.monotonic() - measure_from
    return {"rate": counted / elapsed, "count": counted, "errors": 0, "seconds": round(elapsed, 3)}


def measure_here(name: str, cfg: dict[str, Any]) -> dict[str, Any]:
    if name == "S_sign":
        return _s_sign(cfg)
    if name == "K_consume":
        return _k_consume(cfg)
    uv = name.endswith("uvloop") or name in ("H_httpx_aiohttp", "H_httpx")
    coro = _cassandra(name, cfg) if name.startswith("C_") else _http(name, cfg)
    if uv:
        import uvloop

        return uvloop.run(coro)
    return asyncio.run(coro)


def measure(name: str, cfg: dict[str, Any], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run one ceiling in a fresh interpreter; returns its JSON (``error`` set on failure)."""
    limit = cfg["warmup"] + cfg["seconds"] + 60
    try:
        done = subprocess.run(
            [sys.executable, "-m", "bench.ceilings", name, json.dumps(cfg)],
            capture_output=True,
            check=False,
            timeout=limit,
            env={**os.environ, **(env or {})},
            cwd=Path(__file__).resolve().parent.parent,
        )
    except subprocess.TimeoutExpired:
        return {"rate": None, "error": f"timed out after {limit:.0f} s"}
    lines = done.stdout.decode().strip().splitlines()
    if done.returncode != 0 or not lines:
        return {"rate": None, "error": done.stderr.decode()[-800:]}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


if __name__ == "__main__":
    which, config = sys.argv[1], json.loads(sys.argv[2])
    print(json.dumps(measure_here(which, config)))
