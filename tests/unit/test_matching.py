"""② Matching, pure: which active webhooks an event type reaches, in a stable order."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.matching import WebhookIndex
from app.webhooks import Webhook

T0 = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
SECRET = "whsec_" + "A" * 43 + "="


def hook(webhook_id: str, *events: str, active: bool = True, account: str = "default") -> Webhook:
    return Webhook(
        id=webhook_id,
        url=f"https://example.com/{webhook_id}",
        events=events,
        secret=SECRET,
        active=active,
        created_at=T0,
        updated_at=T0,
        account_id=account,
    )


def ids(found: tuple[Webhook, ...]) -> list[str]:
    return [w.id for w in found]


INDEX = [
    hook("hook_exact", "user.created"),
    hook("hook_two", "user.created", "project.created"),
    hook("hook_user", "user.*"),
    hook("hook_all", "*"),
    hook("hook_profile", "user.profile.*"),
    hook("hook_deep", "user.profile.photo.updated"),
    hook("hook_payment", "payment.*", "user.deleted"),
    hook("hook_off", "*", "user.created", active=False),
    hook("hook_test", "webhook.test"),
    hook("hook_webhook_star", "webhook.*"),
]


@pytest.mark.parametrize(
    ("event_type", "expected"),
    [
        ("user.created", ["hook_all", "hook_exact", "hook_two", "hook_user"]),
        ("user.updated", ["hook_all", "hook_user"]),
        ("user.deleted", ["hook_all", "hook_payment", "hook_user"]),
        ("project.created", ["hook_all", "hook_two"]),
        ("project.deleted", ["hook_all"]),
        ("payment.failed", ["hook_all", "hook_payment"]),
        ("user.profile.updated", ["hook_all", "hook_profile", "hook_user"]),
        (
            "user.profile.photo.updated",
            ["hook_all", "hook_deep", "hook_profile", "hook_user"],
        ),
        ("user.profile", ["hook_all", "hook_user"]),  # "user.profile.*" needs one more level
        ("users.created", ["hook_all"]),  # "user.*" is a dotted prefix, not a string prefix
        ("file.uploaded", ["hook_all"]),
        ("webhook.test", []),  # only its own test endpoint sends it; never by wildcard
        ("webhook.other", ["hook_all", "hook_webhook_star"]),
    ],
)
def test_match(event_type: str, expected: list[str]) -> None:
    assert ids(WebhookIndex(INDEX).match(event_type)) == expected


def test_the_order_is_by_id_whatever_the_insertion_order() -> None:
    hooks = [hook(f"hook_{n}", "user.*") for n in ("c", "a", "d", "b")]
    forward = WebhookIndex(hooks).match("user.created")
    backward = WebhookIndex(reversed(hooks)).match("user.created")
    assert ids(forward) == ids(backward) == ["hook_a", "hook_b", "hook_c", "hook_d"]


def test_a_webhook_subscribed_twice_is_matched_once() -> None:
    index = WebhookIndex([hook("hook_1", "user.created", "user.*", "*")])
    assert ids(index.match("user.created")) == ["hook_1"]


def test_inactive_webhooks_are_kept_but_never_matched() -> None:
    index = WebhookIndex([hook("hook_off", "*", active=False)])
    assert len(index) == 1
    assert index.get("hook_off") is not None
    assert index.match("user.created") == ()


def test_put_adds_and_replaces_and_invalidates_the_cache() -> None:
    index = WebhookIndex()
    assert index.match("user.created") == ()
    index.put(hook("hook_1", "user.created"))
    assert ids(index.match("user.created")) == ["hook_1"]
    index.put(hook("hook_1", "project.created"))  # same id: the old subscription is gone
    assert len(index) == 1
    assert index.match("user.created") == ()
    assert ids(index.match("project.created")) == ["hook_1"]
    index.put(hook("hook_1", "project.created", active=False))
    assert index.match("project.created") == ()


def test_replacing_a_wildcard_with_an_exact_type_drops_the_wildcard() -> None:
    index = WebhookIndex([hook("hook_1", "user.*")])
    assert ids(index.match("user.updated")) == ["hook_1"]
    index.put(hook("hook_1", "user.created"))
    assert index.match("user.updated") == ()
    assert ids(index.match("user.created")) == ["hook_1"]


def test_remove() -> None:
    index = WebhookIndex([hook("hook_1", "*"), hook("hook_2", "user.created")])
    assert ids(index.match("user.created")) == ["hook_1", "hook_2"]
    index.remove("hook_1")
    assert ids(index.match("user.created")) == ["hook_2"]
    assert index.get("hook_1") is None
    index.remove("hook_1")  # unknown ids are ignored
    index.remove("hook_never")
    assert len(index) == 1


def test_replace_all_forgets_everything_not_given() -> None:
    index = WebhookIndex([hook("hook_1", "*"), hook("hook_2", "user.created")])
    assert ids(index.match("user.created")) == ["hook_1", "hook_2"]
    index.replace_all([hook("hook_3", "user.*"), hook("hook_2", "project.created")])
    assert len(index) == 2
    assert index.get("hook_1") is None
    assert ids(index.match("user.created")) == ["hook_3"]
    assert ids(index.match("project.created")) == ["hook_2"]
    index.replace_all([])
    assert len(index) == 0
    assert index.match("user.created") == ()


def test_match_returns_the_current_webhook_object() -> None:
    index = WebhookIndex([hook("hook_1", "user.created")])
    newer = hook("hook_1", "user.created")
    index.put(newer)
    assert index.match("user.created")[0] is newer


# ── accounts ──────────────────────────────────────────────────────────────────────────────

TENANTS = [
    hook("hook_a_exact", "user.created", account="acme"),
    hook("hook_a_all", "*", account="acme"),
    hook("hook_b_exact", "user.created", account="globex"),
    hook("hook_b_user", "user.*", account="globex"),
    hook("hook_d_all", "*"),  # the default account's
]


@pytest.mark.parametrize(
    ("account", "event_type", "expected"),
    [
        ("acme", "user.created", ["hook_a_all", "hook_a_exact"]),
        ("acme", "payment.failed", ["hook_a_all"]),
        ("globex", "user.created", ["hook_b_exact", "hook_b_user"]),
        ("globex", "payment.failed", []),
        ("default", "user.created", ["hook_d_all"]),
        ("initech", "user.created", []),  # an account without webhooks
    ],
)
def test_an_event_reaches_only_its_own_accounts_webhooks(
    account: str, event_type: str, expected: list[str]
) -> None:
    assert ids(WebhookIndex(TENANTS).match(event_type, account)) == expected


def test_moving_a_webhook_to_another_account_moves_its_subscriptions() -> None:
    index = WebhookIndex(TENANTS)
    index.match("user.created", "acme")  # fills the cache
    index.put(hook("hook_a_exact", "user.created", account="globex"))
    assert ids(index.match("user.created", "acme")) == ["hook_a_all"]
    assert "hook_a_exact" in ids(index.match("user.created", "globex"))
