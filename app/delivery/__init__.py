"""④ HTTP delivery: send one attempt, classify its outcome, guard against SSRF.

No Kafka and no CQL here. The worker builds one ``AiohttpSender`` per process and calls
``send(AttemptRequest)``; the API calls ``validate_url`` when a webhook is registered.

    outcomes.py   AttemptRequest in; Delivered | Failed(kind) | Refused out
    responses.py  pure: classify(status, headers, now), parse_retry_after
    ssrf.py       pure: which resolved addresses may be reached
    resolver.py   the aiohttp resolver that enforces ssrf.py on every resolved address
    urls.py       validate_url at registration; IP literals checked again at send time
    sender.py     Sender (the interface) and AiohttpSender
"""

from app.delivery.outcomes import (
    AttemptRequest,
    AttemptResult,
    Delivered,
    Failed,
    FailureKind,
    Refused,
)
from app.delivery.responses import Verdict, classify, parse_retry_after
from app.delivery.sender import AiohttpSender, Sender
from app.delivery.ssrf import DestinationRefused, check_addresses, refusal_reason
from app.delivery.urls import validate_url

__all__ = [
    "AiohttpSender",
    "AttemptRequest",
    "AttemptResult",
    "Delivered",
    "DestinationRefused",
    "Failed",
    "FailureKind",
    "Refused",
    "Sender",
    "Verdict",
    "check_addresses",
    "classify",
    "parse_retry_after",
    "refusal_reason",
    "validate_url",
]
