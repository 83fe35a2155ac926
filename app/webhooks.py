"""② Webhooks: the subscription (url, event types, secret, active) and its secret format.

A secret is ``whsec_`` + base64 of 24 to 64 random bytes (the Standard Webhooks format). The
``X-Webhook-Signature`` header is keyed with the whole secret *string* (as the public docs'
examples do); the Standard Webhooks ``webhook-signature`` is keyed with the decoded bytes.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime

import orjson

from app.accounts import DEFAULT_ACCOUNT
from app.errors import InvalidWebhook

SECRET_PREFIX = "whsec_"
SECRET_MIN_BYTES = 24
SECRET_MAX_BYTES = 64
SECRET_DEFAULT_BYTES = 32
TEST_EVENT_TYPE = "webhook.test"

_EVENT_PATTERN = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
_WILDCARD_PATTERN = re.compile(r"^(\*|[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*\.\*)$")


def new_webhook_id() -> str:
    return "hook_" + secrets.token_hex(12)


def generate_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_DEFAULT_BYTES)).decode()


def secret_key(secret: str) -> bytes:
    """The decoded key bytes of a valid secret (the Standard Webhooks HMAC key)."""
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)


def validate_secret(secret: str) -> str:
    """Return ``secret`` if it is ``whsec_`` + base64 of 24–64 bytes; else InvalidWebhook."""
    if not secret.startswith(SECRET_PREFIX):
        raise InvalidWebhook("secret", "must start with whsec_ (whsec_ + base64 of 24-64 bytes)")
    try:
        key = secret_key(secret)
    except (binascii.Error, ValueError):
        raise InvalidWebhook("secret", "the part after whsec_ is not valid base64") from None
    if not SECRET_MIN_BYTES <= len(key) <= SECRET_MAX_BYTES:
        raise InvalidWebhook(
            "secret",
            f"decodes to {len(key)} bytes; it must be {SECRET_MIN_BYTES} to {SECRET_MAX_BYTES}",
        )
    return secret


def is_event_pattern(text: str) -> bool:
    """An exact dotted type (``user.created``) or a wildcard (``user.*``, ``*``)."""
    return bool(_EVENT_PATTERN.fullmatch(text) or _WILDCARD_PATTERN.fullmatch(text))


def validate_events(events: list[str], catalogue: tuple[str, ...]) -> list[str]:
    """Non-empty, each a known type or a wildcard that matches at least one known type."""
    if not events:
        raise InvalidWebhook("events", "must list at least one event type")
    known = {*catalogue, TEST_EVENT_TYPE}
    out: list[str] = []
    for index, pattern in enumerate(events):
        if not isinstance(pattern, str) or not is_event_pattern(pattern):
            raise InvalidWebhook(f"events[{index}]", f"{pattern!r} is not an event type")
        if "*" not in pattern and pattern not in known:
            raise InvalidWebhook(f"events[{index}]", f"unknown event type {pattern!r}")
        if "*" in pattern and not any(pattern_matches(pattern, t) for t in known):
            raise InvalidWebhook(f"events[{index}]", f"{pattern!r} matches no known event type")
        if pattern not in out:
            out.append(pattern)
    return out


def pattern_matches(pattern: str, event_type: str) -> bool:
    if pattern == "*":
        return True
    if pattern.endswith(".*"):
        return event_type.startswith(pattern[:-1])
    return pattern == event_type


@dataclass(frozen=True, slots=True)
class Webhook:
    id: str
    url: str
    events: tuple[str, ...]
    secret: str
    active: bool
    created_at: datetime
    updated_at: datetime
    description: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    account_id: str = DEFAULT_ACCOUNT  # the owner (app.accounts); rows from before: default

    def subscribes_to(self, event_type: str) -> bool:
        # webhook.test reaches a webhook only through its own test endpoint, never by wildcard.
        if event_type == TEST_EVENT_TYPE:
            return False
        return any(pattern_matches(p, event_type) for p in self.events)


def webhook_to_json(webhook: Webhook) -> bytes:
    """The value published on the compacted webhooks topic (secret included: workers sign)."""
    return orjson.dumps(
        {
            "id": webhook.id,
            "url": webhook.url,
            "events": list(webhook.events),
            "secret": webhook.secret,
            "active": webhook.active,
            "created_at": webhook.created_at,
            "updated_at": webhook.updated_at,
            "description": webhook.description,
            "metadata": webhook.metadata,
            "account_id": webhook.account_id,
        }
    )


def webhook_from_json(raw: bytes) -> Webhook:
    obj = orjson.loads(raw)
    return Webhook(
        id=obj["id"],
        url=obj["url"],
        events=tuple(obj["events"]),
        secret=obj["secret"],
        active=bool(obj["active"]),
        created_at=datetime.fromisoformat(obj["created_at"]),
        updated_at=datetime.fromisoformat(obj["updated_at"]),
        description=obj.get("description"),
        metadata=dict(obj.get("metadata") or {}),
        account_id=obj.get("account_id") or DEFAULT_ACCOUNT,
    )
