"""Secret rotation: the previous secrets a rotation keeps, and the headers signed with them."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks import Webhook as StandardWebhook
from standardwebhooks.webhooks import WebhookVerificationError

from app.signing import (
    PREVIOUS_SIGNATURE_HEADER,
    KeyCache,
    attempt_headers,
    loggable_headers,
)
from app.webhooks import (
    PreviousSecret,
    Webhook,
    generate_secret,
    rotated,
    webhook_from_json,
    webhook_to_json,
)

T0 = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
GRACE = timedelta(hours=24)
BODY = b'{"id":"evt_1","type":"user.created","created_at":"2026-01-15T12:00:00Z","data":{}}'


def hook(secret: str = "whsec_abc123...") -> Webhook:
    return Webhook("hook_1", "https://a.example/", ("*",), secret, True, T0, T0)


def headers(webhook: Webhook, now: datetime, cache: KeyCache | None = None) -> dict[str, str]:
    return attempt_headers(
        keys=(cache or KeyCache()).get(webhook, now.timestamp()),
        body=BODY,
        event_id="evt_1",
        event_type="user.created",
        delivery_id="del_1",
        attempt=1,
        timestamp=int(now.timestamp()),
    )


def seed_hex(secret: str) -> str:
    return hmac.new(secret.encode(), BODY, hashlib.sha256).hexdigest()


def test_a_rotation_keeps_the_old_secret_for_the_grace_period() -> None:
    new = generate_secret()
    after = rotated(hook(), new, T0, GRACE, keep=3)
    assert after.secret == new
    assert after.previous_secrets == (PreviousSecret("whsec_abc123...", T0 + GRACE),)
    assert after.updated_at == T0


def test_at_most_keep_previous_secrets_stay_newest_first_and_expired_ones_go() -> None:
    webhook = hook("secret-0-abcdef")
    for n in range(1, 6):
        webhook = rotated(webhook, f"secret-{n}-abcdef", T0 + timedelta(hours=n), GRACE, keep=3)
    assert [p.secret for p in webhook.previous_secrets] == [
        "secret-4-abcdef",
        "secret-3-abcdef",
        "secret-2-abcdef",
    ]
    later = rotated(webhook, "secret-6-abcdef", T0 + timedelta(hours=29), GRACE, keep=3)
    # At 29 h secrets 2, 3 and 4 (expiring at 26, 27 and 28 h) are past their grace: only the
    # just-replaced secret-5 stays.
    assert [p.secret for p in later.previous_secrets] == ["secret-5-abcdef"]


@pytest.mark.parametrize(("grace", "keep"), [(timedelta(0), 3), (GRACE, 0)])
def test_no_grace_or_nothing_kept_replaces_the_secret_outright(grace: timedelta, keep: int) -> None:
    assert rotated(hook(), generate_secret(), T0, grace, keep).previous_secrets == ()


def test_rotating_back_to_a_previous_secret_does_not_list_it_twice() -> None:
    once = rotated(hook("first-secret"), "second-secret", T0, GRACE, keep=3)
    back = rotated(once, "first-secret", T0 + timedelta(minutes=1), GRACE, keep=3)
    assert back.secret == "first-secret"
    assert [p.secret for p in back.previous_secrets] == ["second-secret"]


def test_previous_secrets_travel_on_the_webhooks_topic_and_stay_out_of_repr() -> None:
    after = rotated(hook(), generate_secret(), T0, GRACE, keep=3)
    assert webhook_from_json(webhook_to_json(after)) == after
    assert "whsec_abc123" not in repr(after)
    assert after.secret not in repr(after)


def test_during_the_grace_both_secrets_sign_and_after_it_only_the_new() -> None:
    # A one-minute grace starting now: both attempts stay within the library's 5 min tolerance.
    now = datetime.now(UTC)
    grace = timedelta(minutes=1)
    old, new = "whsec_abc123...", generate_secret()
    after = rotated(hook(old), new, now, grace, keep=3)
    cache = KeyCache()

    during = headers(after, now + grace - timedelta(seconds=1), cache)
    assert during["X-Webhook-Signature"] == seed_hex(new)
    assert during[PREVIOUS_SIGNATURE_HEADER] == seed_hex(old)
    assert len(during["webhook-signature"].split(" ")) == 2
    # Standard Webhooks receivers holding either secret verify (old is not whsec_-base64:
    # its key is its UTF-8 bytes).
    for verifier in (StandardWebhook(new), StandardWebhook(old.encode())):
        assert verifier.verify(BODY, during) == json.loads(BODY)

    expired = headers(after, now + grace, cache)  # the same cache: its keys expire too
    assert expired["X-Webhook-Signature"] == seed_hex(new)
    assert PREVIOUS_SIGNATURE_HEADER not in expired
    assert len(expired["webhook-signature"].split(" ")) == 1
    StandardWebhook(new).verify(BODY, expired)
    with pytest.raises(WebhookVerificationError):
        StandardWebhook(old.encode()).verify(BODY, expired)


def test_the_previous_signature_header_is_never_logged() -> None:
    after = rotated(hook(), generate_secret(), T0, GRACE, keep=3)
    logged = loggable_headers(headers(after, T0))
    assert PREVIOUS_SIGNATURE_HEADER not in logged
    assert "webhook-signature" not in logged and "X-Webhook-Signature" not in logged


def test_the_key_cache_rebuilds_only_for_a_new_webhook_version() -> None:
    cache = KeyCache()
    webhook = hook()
    first = cache.get(webhook, T0.timestamp())
    assert cache.get(webhook, T0.timestamp() + 60) is first
    assert cache.get(rotated(webhook, "another-secret", T0, GRACE, 3), T0.timestamp()) is not first
