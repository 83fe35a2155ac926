"""``hookstream listen``: a local receiver in the spirit of ``stripe listen``.

It verifies both signature schemes on every request — the public docs' ``X-Webhook-Signature``
and the Standard Webhooks ``webhook-signature`` — prints one line per event, and answers with
the chosen status (401 when a signature does not verify), so retries can be watched.
"""

from __future__ import annotations

import hmac
import sys
import time

import orjson
from aiohttp import web

from app.signing import seed_signature, standard_signature
from app.webhooks import secret_key, validate_secret

TOLERANCE_SECONDS = 300


def verify(secret: str, body: bytes, headers: dict[str, str]) -> tuple[bool, bool]:
    """(seed signature ok, Standard Webhooks signature ok) for one request."""
    seed_ok = hmac.compare_digest(
        headers.get("x-webhook-signature", ""), seed_signature(secret, body)
    )
    msg_id = headers.get("webhook-id", "")
    try:
        timestamp = int(headers.get("webhook-timestamp", ""))
    except ValueError:
        return seed_ok, False
    fresh = abs(time.time() - timestamp) <= TOLERANCE_SECONDS
    expected = standard_signature(secret_key(secret), msg_id, timestamp, body)
    offered = headers.get("webhook-signature", "").split()
    std_ok = fresh and any(hmac.compare_digest(sig, expected) for sig in offered)
    return seed_ok, std_ok


def build_receiver(secret: str, status: int, path: str) -> web.Application:
    validate_secret(secret)

    async def receive(request: web.Request) -> web.Response:
        body = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        seed_ok, std_ok = verify(secret, body, headers)
        try:
            event = orjson.loads(body)
            what = f"{event.get('type')} {event.get('id')}"
        except orjson.JSONDecodeError:
            what = "(not JSON)"
        attempt = headers.get("x-webhook-attempt", "?")
        verdict = "verified" if seed_ok and std_ok else "SIGNATURE MISMATCH"
        answer = status if seed_ok and std_ok else 401
        print(
            f"[receiver] {what} attempt {attempt} delivery {headers.get('x-webhook-id', '?')}"
            f" — signatures {verdict} → {answer}",
            flush=True,
        )
        return web.Response(status=answer, text="OK" if answer < 300 else "rejected")

    app = web.Application()
    app.router.add_post(path, receive)
    return app


def run_listener(*, secret: str, port: int, status: int, path: str) -> None:
    print(f"[receiver] listening on http://127.0.0.1:{port}{path}", file=sys.stderr, flush=True)
    web.run_app(build_receiver(secret, status, path), host="127.0.0.1", port=port, print=None)
