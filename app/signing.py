"""④ The headers that make a request verifiable: both signature schemes, per attempt.

- ``X-Webhook-Signature``: lowercase hex HMAC-SHA256 of the exact body bytes, keyed with the
  secret *string* (UTF-8), no prefix — what the public docs' Flask and Node.js examples verify.
- Standard Webhooks: ``webhook-id`` (the event id, the same on every attempt),
  ``webhook-timestamp`` (this attempt, Unix seconds) and ``webhook-signature: v1,<base64>`` of
  HMAC-SHA256 over ``{id}.{timestamp}.{body}`` keyed with ``app.webhooks.secret_key``.

During a rotation's grace period (``app.webhooks.rotated``) ``webhook-signature`` carries one
``v1,`` entry per live secret, current first, space-separated (the spec lets a verifier accept
any of them), and ``X-Webhook-Signature-Previous`` the seed-style hex signature of each previous
secret, space-separated: a receiver still holding the old secret checks that header until it
switches. ``X-Webhook-Signature`` is always the current secret's.

Keys are prepared once per webhook version (``KeyCache``): an HMAC object keyed and ready, which
each attempt copies, so an attempt pays only for hashing its body.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from app import __version__
from app.webhooks import Webhook, secret_key

USER_AGENT = f"Hookstream/{__version__}"
PREVIOUS_SIGNATURE_HEADER = "X-Webhook-Signature-Previous"
# Header names whose values are signatures; never logged, never stored.
SIGNATURE_HEADERS = frozenset(
    {"x-webhook-signature", "webhook-signature", PREVIOUS_SIGNATURE_HEADER.lower()}
)


def seed_signature(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def standard_signature(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


@dataclass(frozen=True, slots=True)
class SigningKeys:
    """A webhook's live secrets as keyed HMAC objects (current first), valid until
    ``valid_until`` (Unix seconds: the next expiry of a previous secret; None: no expiry)."""

    seed: tuple[hmac.HMAC, ...]  # keyed with each secret string
    standard: tuple[hmac.HMAC, ...]  # keyed with each secret_key
    valid_until: float | None

    @classmethod
    def of(cls, webhook: Webhook, now: float) -> SigningKeys:
        live = webhook.live_previous_secrets(datetime.fromtimestamp(now, UTC))
        secrets = (webhook.secret, *(p.secret for p in live))
        return cls(
            seed=tuple(hmac.new(s.encode(), digestmod=hashlib.sha256) for s in secrets),
            standard=tuple(hmac.new(secret_key(s), digestmod=hashlib.sha256) for s in secrets),
            valid_until=min((p.expires_at.timestamp() for p in live), default=None),
        )

    @classmethod
    def of_secret(cls, secret: str) -> SigningKeys:
        return cls(
            (hmac.new(secret.encode(), digestmod=hashlib.sha256),),
            (hmac.new(secret_key(secret), digestmod=hashlib.sha256),),
            None,
        )


class KeyCache:
    """Signing keys per webhook, rebuilt only when the webhook changes (the index holds a new
    object) or a previous secret's grace ends. Owned by one event loop; not thread-safe."""

    MAX_ENTRIES = 100_000  # beyond this (deleted webhooks linger) it starts afresh

    def __init__(self) -> None:
        self._keys: dict[str, tuple[Webhook, SigningKeys]] = {}

    def get(self, webhook: Webhook, now: float) -> SigningKeys:
        cached = self._keys.get(webhook.id)
        if cached is not None and cached[0] is webhook:
            keys = cached[1]
            if keys.valid_until is None or now < keys.valid_until:
                return keys
        keys = SigningKeys.of(webhook, now)
        if len(self._keys) >= self.MAX_ENTRIES:
            self._keys.clear()
        self._keys[webhook.id] = (webhook, keys)
        return keys


def _hex(key: hmac.HMAC, body: bytes) -> str:
    mac = key.copy()
    mac.update(body)
    return mac.hexdigest()


def _v1(key: hmac.HMAC, signed: bytes) -> str:
    mac = key.copy()
    mac.update(signed)
    return "v1," + base64.b64encode(mac.digest()).decode()


def attempt_headers(
    *,
    body: bytes,
    event_id: str,
    event_type: str,
    delivery_id: str,
    attempt: int,
    timestamp: int,
    secret: str | None = None,
    keys: SigningKeys | None = None,
    custom: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Every header of one attempt. ``timestamp`` is taken per attempt (Unix seconds).
    Signed with ``keys`` (a webhook's, from ``KeyCache``) or else the one ``secret``.
    ``custom`` (the webhook's own headers) come first; Hookstream's are set after them, so
    none of its own can be overridden (``validate_headers`` refuses those names anyway)."""
    if keys is None:
        assert secret is not None, "attempt_headers needs keys or a secret"
        keys = SigningKeys.of_secret(secret)
    signed = f"{event_id}.{timestamp}.".encode() + body
    headers = dict(custom) if custom else {}
    headers |= {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Webhook-Signature": _hex(keys.seed[0], body),
        "X-Webhook-Id": delivery_id,
        "X-Webhook-Event": event_type,
        "X-Webhook-Attempt": str(attempt),
        "webhook-id": event_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(_v1(key, signed) for key in keys.standard),
    }
    if len(keys.seed) > 1:
        headers[PREVIOUS_SIGNATURE_HEADER] = " ".join(_hex(k, body) for k in keys.seed[1:])
    return headers


REDACTED = "[redacted]"


def loggable_headers(
    headers: dict[str, str], custom: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The request headers with signatures removed and the webhook's custom headers' values
    redacted (they often carry credentials): what an attempt record may keep."""
    return {
        k: REDACTED if custom and k in custom else v
        for k, v in headers.items()
        if k.lower() not in SIGNATURE_HEADERS
    }
