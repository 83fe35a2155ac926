"""Custom headers per webhook: what may be set, and that Hookstream's own always win."""

from __future__ import annotations

import pytest

from app.errors import InvalidWebhook
from app.signing import REDACTED, attempt_headers, loggable_headers
from app.webhooks import validate_headers


def test_valid_custom_headers() -> None:
    headers = {"Authorization": "Bearer abc.def", "X-Tenant": "acme", "X_Trace": "a\tb c"}
    assert validate_headers(headers) == headers
    assert validate_headers({}) == {}


@pytest.mark.parametrize(
    ("headers", "field", "says"),
    [
        ({"Content-Type": "text/plain"}, "headers.Content-Type", "cannot be overridden"),
        ({"x-webhook-signature": "forged"}, "headers.x-webhook-signature", "cannot be"),
        ({"Webhook-Id": "evt_1"}, "headers.Webhook-Id", "cannot be overridden"),
        ({"Hookstream-Account": "other"}, "headers.Hookstream-Account", "cannot be"),
        ({"Host": "evil.example"}, "headers.Host", "cannot be overridden"),
        ({"Bad Name": "x"}, "headers.Bad Name", "not a header name"),
        ({"X-Inject": "a\r\nX-Other: b"}, "headers.X-Inject", "visible ASCII"),
        ({"X-Long": "x" * 1001}, "headers.X-Long", "at most 1000"),
        ({"X-A": "1", "x-a": "2"}, "headers.x-a", "twice"),
        ({f"X-{i}": "v" for i in range(21)}, "headers", "at most 20"),
    ],
    ids=["content-type", "signature", "webhook-id", "account", "host", "space", "crlf", "long",
         "twice", "too-many"],
)  # fmt: skip
def test_refused_custom_headers(headers: dict[str, str], field: str, says: str) -> None:
    with pytest.raises(InvalidWebhook) as caught:
        validate_headers(headers)
    assert caught.value.field == field and says in caught.value.message


def test_custom_headers_are_sent_never_override_and_are_redacted_in_the_log() -> None:
    custom = {"Authorization": "Bearer endpoint-token", "User-Agent": "not ours"}
    headers = attempt_headers(
        secret="my-shared-secret", body=b"{}", event_id="evt_1", event_type="user.created",
        delivery_id="del_1", attempt=1, timestamp=1, custom=custom,
    )  # fmt: skip
    assert headers["Authorization"] == "Bearer endpoint-token"
    assert headers["User-Agent"].startswith("Hookstream/")  # ours wins (and is refused anyway)
    logged = loggable_headers(headers, custom)
    assert logged["Authorization"] == REDACTED
    assert "endpoint-token" not in str(logged) and "X-Webhook-Signature" not in logged
