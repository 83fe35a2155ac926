"""④ What goes into one attempt and what comes out: typed outcomes, not flags.

    AttemptResult
    ├── Delivered   the receiver answered 2xx
    ├── Failed      sent (or tried to), did not succeed; ``kind`` says why — retry on schedule
    └── Refused     never sent: the SSRF guard or the URL refused it — record, do not retry

``Failed.kind`` is the category the worker decides on; ``error`` is for humans only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum


@dataclass(frozen=True, slots=True)
class AttemptRequest:
    """One POST to make. ``webhook_id`` keys the per-webhook concurrency limit.

    ``headers`` hold the signature headers: the sender never logs them.
    """

    url: str
    body: bytes
    headers: Mapping[str, str]
    webhook_id: str


class FailureKind(StrEnum):
    HTTP_STATUS = "http_status"  # a final status other than 2xx/3xx/410
    GONE = "gone"  # 410 Gone: the receiver asks to stop; the worker may disable the webhook
    REDIRECT = "redirect"  # 3xx: redirects are never followed
    TIMEOUT = "timeout"  # the attempt deadline (or the connect timeout) passed
    CONNECT = "connect"  # DNS failure, refused, reset or closed connection
    TLS = "tls"  # handshake or certificate verification failed
    PROTOCOL = "protocol"  # unparseable response: bad status line, oversized headers, ...


Headers = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Delivered:
    status: int
    duration_ms: int
    excerpt: str  # at most response_excerpt_bytes of the body, decoded with errors="replace"
    headers: Headers = field(default=())  # the first response headers, capped


@dataclass(frozen=True, slots=True)
class Failed:
    kind: FailureKind
    status: int | None  # None when no status line arrived
    error: str  # short, human-readable; never contains request headers
    duration_ms: int
    excerpt: str = ""
    retry_after: timedelta | None = None  # from 429/503 Retry-After, clamped; never earlier
    headers: Headers = field(default=())


@dataclass(frozen=True, slots=True)
class Refused:
    """Not sent, no connection opened: recorded as a failed attempt that is not retried."""

    reason: str


AttemptResult = Delivered | Failed | Refused
