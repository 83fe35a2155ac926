"""④ The headers that make a request verifiable: both signature schemes, per attempt.

- ``X-Webhook-Signature``: lowercase hex HMAC-SHA256 of the exact body bytes, keyed with the
  secret *string* (UTF-8), no prefix — what the public docs' Flask and Node.js examples verify.
- Standard Webhooks: ``webhook-id`` (the event id, the same on every attempt),
  ``webhook-timestamp`` (this attempt, Unix seconds) and ``webhook-signature: v1,<base64>`` of
  HMAC-SHA256 over ``{id}.{timestamp}.{body}`` keyed with the decoded secret bytes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from app import __version__
from app.webhooks import secret_key

USER_AGENT = f"Hookstream/{__version__}"
# Header names whose values are signatures; never logged, never stored.
SIGNATURE_HEADERS = frozenset({"x-webhook-signature", "webhook-signature"})


def seed_signature(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def standard_signature(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def attempt_headers(
    *,
    secret: str,
    body: bytes,
    event_id: str,
    event_type: str,
    delivery_id: str,
    attempt: int,
    timestamp: int,
) -> dict[str, str]:
    """Every header of one attempt. ``timestamp`` is taken per attempt (Unix seconds)."""
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Webhook-Signature": seed_signature(secret, body),
        "X-Webhook-Id": delivery_id,
        "X-Webhook-Event": event_type,
        "X-Webhook-Attempt": str(attempt),
        "webhook-id": event_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": standard_signature(secret_key(secret), event_id, timestamp, body),
    }


def loggable_headers(headers: dict[str, str]) -> dict[str, str]:
    """The request headers with signatures removed: what an attempt record may keep."""
    return {k: v for k, v in headers.items() if k.lower() not in SIGNATURE_HEADERS}
