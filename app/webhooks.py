"""② Webhooks: the subscription (url, event types, secret, active) and its secret format.

Secrets, the docs' way: a supplied secret is any string of 8 to 128 visible ASCII characters
(``!`` to ``~``: no whitespace, nothing a shell, an env file or a header tool could mangle),
``whsec_`` or not — the public docs' own ``whsec_abc123...`` and a secret a customer already
uses elsewhere both work. A generated secret is ``whsec_`` + base64 of 32 random bytes.

What each signature is keyed with:

- ``X-Webhook-Signature`` (the docs' Flask and Node.js examples): the secret *string*, UTF-8.
- Standard Webhooks ``webhook-signature``: for a **whsec_-base64** secret — ``whsec_`` then
  standard base64 (``A–Z a–z 0–9 + /``, padding optional) of at least one byte — the decoded
  bytes, which is what ``standardwebhooks.Webhook(secret)`` derives; for **any other** secret
  the UTF-8 bytes of the whole string, prefix included (``Webhook(secret.encode())`` in
  Python, ``new Webhook(secret, {format: "raw"})`` in the JavaScript library).
  ``secret_key`` is that rule; ``secret_scheme`` names which side of it a secret is on.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import orjson

from app.accounts import DEFAULT_ACCOUNT
from app.errors import InvalidWebhook
from app.filters import Filter, stored_filter
from app.lifecycle import LIFECYCLE_EVENT_TYPES, OPERATOR_PREFIX

SECRET_PREFIX = "whsec_"
SECRET_MIN_LENGTH = 8  # characters of a supplied secret
SECRET_MAX_LENGTH = 128
SECRET_DEFAULT_BYTES = 32
# Standard base64, padding optional: what the standardwebhooks libraries decode after whsec_.
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")
_VISIBLE_ASCII = re.compile(r"[!-~]*")
TEST_EVENT_TYPE = "webhook.test"
# Operator events (app.lifecycle) as a webhook subscribes to them: hookstream.webhook.disabled…
OPERATOR_EVENT_TYPES = tuple(OPERATOR_PREFIX + t for t in LIFECYCLE_EVENT_TYPES)

_EVENT_PATTERN = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
_WILDCARD_PATTERN = re.compile(r"^(\*|[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*\.\*)$")


def new_webhook_id() -> str:
    return "hook_" + secrets.token_hex(12)


def generate_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_DEFAULT_BYTES)).decode()


def _decoded(secret: str) -> bytes | None:
    """The decoded bytes of a whsec_-base64 secret, None for any other secret."""
    if not secret.startswith(SECRET_PREFIX):
        return None
    rest = secret[len(SECRET_PREFIX) :]
    if not _BASE64.fullmatch(rest):
        return None
    try:
        key = base64.b64decode(rest + "=" * (-len(rest) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None  # e.g. a length of 4n+1: no base64 at all
    return key or None


def secret_key(secret: str) -> bytes:
    """The Standard Webhooks HMAC key of a secret: the decoded bytes of a whsec_-base64
    secret, else the secret's UTF-8 bytes (see the module docstring)."""
    decoded = _decoded(secret)
    return decoded if decoded is not None else secret.encode()


def secret_scheme(secret: str) -> str:
    """``base64`` (the key is the decoded part after whsec_) or ``utf8`` (the whole string)."""
    return "base64" if _decoded(secret) is not None else "utf8"


def validate_secret(secret: str) -> str:
    """Return ``secret`` if it is 8–128 visible ASCII characters; else InvalidWebhook."""
    if not SECRET_MIN_LENGTH <= len(secret) <= SECRET_MAX_LENGTH:
        raise InvalidWebhook(
            "secret",
            f"is {len(secret)} characters; it must be {SECRET_MIN_LENGTH} to {SECRET_MAX_LENGTH}",
        )
    if not _VISIBLE_ASCII.fullmatch(secret):
        raise InvalidWebhook(
            "secret", "must be visible ASCII characters (! to ~), without whitespace"
        )
    return secret


# Custom headers: RFC 9110 token names; values of visible ASCII, spaces and tabs (no CR/LF,
# so no header injection). Hookstream's own headers and the transport's cannot be set.
MAX_CUSTOM_HEADERS = 20
MAX_HEADER_VALUE = 1000
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}")
_HEADER_VALUE = re.compile(r"[\t\x20-\x7e]*")
_RESERVED_HEADERS = frozenset(
    {"content-type", "content-length", "content-encoding", "transfer-encoding", "host",
     "user-agent", "connection", "keep-alive", "te", "trailer", "upgrade", "expect",
     "proxy-authorization", "proxy-connection"}
)  # fmt: skip
_RESERVED_PREFIXES = ("x-webhook-", "webhook-", "hookstream-")


def validate_headers(headers: dict[str, str]) -> dict[str, str]:
    """Custom headers a webhook's requests carry; InvalidWebhook naming the bad one."""
    if len(headers) > MAX_CUSTOM_HEADERS:
        raise InvalidWebhook("headers", f"at most {MAX_CUSTOM_HEADERS} headers")
    seen: set[str] = set()
    for name, value in headers.items():
        where = f"headers.{name}"
        lower = name.lower()
        if not _HEADER_NAME.fullmatch(name):
            raise InvalidWebhook(where, "is not a header name (letters, digits, - and _)")
        if lower in _RESERVED_HEADERS or lower.startswith(_RESERVED_PREFIXES):
            raise InvalidWebhook(where, "is set by Hookstream and cannot be overridden")
        if lower in seen:
            raise InvalidWebhook(where, "is given twice (header names ignore case)")
        seen.add(lower)
        if len(value) > MAX_HEADER_VALUE or not _HEADER_VALUE.fullmatch(value):
            raise InvalidWebhook(
                where, f"must be at most {MAX_HEADER_VALUE} visible ASCII characters"
            )
    return dict(headers)


def is_event_pattern(text: str) -> bool:
    """An exact dotted type (``user.created``) or a wildcard (``user.*``, ``*``)."""
    return bool(_EVENT_PATTERN.fullmatch(text) or _WILDCARD_PATTERN.fullmatch(text))


def validate_events(events: list[str], catalogue: tuple[str, ...]) -> list[str]:
    """Non-empty, each a known type or a wildcard that matches at least one known type."""
    if not events:
        raise InvalidWebhook("events", "must list at least one event type")
    known = {*catalogue, TEST_EVENT_TYPE, *OPERATOR_EVENT_TYPES}
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
class PreviousSecret:
    """A secret replaced by a rotation: it keeps signing beside the current one until
    ``expires_at`` (the grace period), so receivers can switch without a failed delivery."""

    secret: str = field(repr=False)
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Webhook:
    id: str
    url: str
    events: tuple[str, ...]
    secret: str = field(repr=False)
    active: bool
    created_at: datetime
    updated_at: datetime
    description: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    account_id: str = DEFAULT_ACCOUNT  # the owner (app.accounts); rows from before: default
    # Newest first; expired ones are dropped at the next rotation (signers skip them anyway).
    previous_secrets: tuple[PreviousSecret, ...] = ()
    # Why Hookstream disabled it (auto-disable), None when active or paused by the API.
    disabled_reason: str | None = None
    disabled_at: datetime | None = None
    # Custom headers on every request (validate_headers); never Hookstream's own.
    headers: dict[str, str] = field(default_factory=dict)
    # Deliveries per second at most (app.worker.ratelimit); None: no limit.
    rate_limit: int | None = None
    filter: Filter | None = None  # on the event's data, besides the types (app.filters)

    def live_previous_secrets(self, now: datetime) -> tuple[PreviousSecret, ...]:
        """The previous secrets still within their grace period at ``now``."""
        return tuple(p for p in self.previous_secrets if p.expires_at > now)

    def subscribes_to(self, event_type: str) -> bool:
        # webhook.test reaches a webhook only through its own test endpoint, never by wildcard.
        if event_type == TEST_EVENT_TYPE:
            return False
        if event_type.startswith(OPERATOR_PREFIX):
            # Operator events reach only webhooks that name them (hookstream.… or
            # hookstream.*): never a customer's "*".
            return any(
                p.startswith(OPERATOR_PREFIX) and pattern_matches(p, event_type)
                for p in self.events
            )
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
            "previous_secrets": [
                {"secret": p.secret, "expires_at": p.expires_at} for p in webhook.previous_secrets
            ],
            "disabled_reason": webhook.disabled_reason,
            "disabled_at": webhook.disabled_at,
            "headers": webhook.headers,
            "rate_limit": webhook.rate_limit,
            "filter": webhook.filter.source if webhook.filter is not None else None,
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
        previous_secrets=tuple(
            PreviousSecret(p["secret"], datetime.fromisoformat(p["expires_at"]))
            for p in obj.get("previous_secrets") or ()
        ),
        disabled_reason=obj.get("disabled_reason"),
        headers=dict(obj.get("headers") or {}),
        rate_limit=obj.get("rate_limit"),
        disabled_at=(
            datetime.fromisoformat(obj["disabled_at"]) if obj.get("disabled_at") else None
        ),
        filter=stored_filter(obj.get("filter")),
    )


def rotated(
    webhook: Webhook, new_secret: str, now: datetime, grace: timedelta, keep: int
) -> Webhook:
    """``webhook`` with ``new_secret`` current and the old one signing beside it until
    ``now + grace``; at most ``keep`` previous secrets stay (the newest), expired ones go.
    A zero grace or ``keep`` of 0 replaces the secret outright."""
    previous: list[PreviousSecret] = []
    if grace > timedelta(0) and keep > 0 and webhook.secret != new_secret:
        previous.append(PreviousSecret(webhook.secret, now + grace))
    previous += [
        p
        for p in webhook.live_previous_secrets(now)
        if p.secret not in (new_secret, webhook.secret)
    ]
    return replace(
        webhook, secret=new_secret, previous_secrets=tuple(previous[:keep]), updated_at=now
    )
