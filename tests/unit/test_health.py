"""Endpoint health (app.health): the fold of attempts, the success-rate windows, and the
auto-disable policy, as tables."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest

from app.health import WebhookHealth, disable_reason, observe, window_of
from app.lifecycle import DELIVERY_EXHAUSTED, lifecycle_event, lifecycle_id
from app.settings import LifecycleSettings

T0 = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
POLICY = LifecycleSettings()  # 5 days, 410 disables


def fold(*outcomes: tuple[bool, timedelta, int | None]) -> WebhookHealth:
    state = WebhookHealth("hook_1")
    for ok, offset, status in outcomes:
        state = observe(state, ok=ok, at=T0 + offset, window=HOUR, status_code=status)
    return state


def test_a_success_resets_the_failure_streak() -> None:
    state = fold((False, timedelta(0), 500), (False, timedelta(minutes=1), 500))
    assert (state.consecutive_failures, state.failing_since) == (2, T0)
    state = observe(state, ok=True, at=T0 + timedelta(minutes=2), window=HOUR, status_code=200)
    assert (state.consecutive_failures, state.failing_since) == (0, None)
    assert state.last_success_at == T0 + timedelta(minutes=2)
    assert state.last_failure_at == T0 + timedelta(minutes=1)


def test_every_field_after_a_failure_then_a_success() -> None:
    # The fold builds the state in one go: nothing of the webhook's may be dropped.
    state = WebhookHealth("hook_1", account_id="acme")
    state = observe(state, ok=False, at=T0, window=HOUR, status_code=503, error="busy")
    assert state == WebhookHealth(
        "hook_1", account_id="acme", last_failure_at=T0, failing_since=T0,
        consecutive_failures=1, last_status_code=503, last_error="busy", window_start=T0,
        window_failed=1,
    )  # fmt: skip
    later = T0 + timedelta(minutes=3)
    state = observe(state, ok=True, at=later, window=HOUR, status_code=204)
    assert state == WebhookHealth(
        "hook_1", account_id="acme", last_success_at=later, last_failure_at=T0,
        last_status_code=204, window_start=T0, window_ok=1, window_failed=1,
    )  # fmt: skip


def test_a_failure_older_than_the_last_success_does_not_start_a_streak() -> None:
    state = fold((True, timedelta(minutes=5), 200), (False, timedelta(minutes=1), 500))
    assert (state.consecutive_failures, state.failing_since) == (0, None)


@pytest.mark.parametrize(
    ("now", "rate", "counts"),
    [
        (T0 + timedelta(minutes=59), 0.5, (2, 2)),  # same window: all four count
        (T0 + timedelta(minutes=61), 0.5, (2, 2)),  # next window: still the previous one
        (T0 + timedelta(minutes=121), None, (0, 0)),  # two windows on: nothing recent
    ],
)
def test_the_success_rate_spans_the_current_and_previous_window(
    now: datetime, rate: float | None, counts: tuple[int, int]
) -> None:
    state = fold(*[(i % 2 == 0, timedelta(minutes=i), 200) for i in range(4)])
    assert state.success_rate(now, HOUR) == rate
    assert state.recent(now, HOUR) == counts


def test_windows_roll_over_and_a_gap_clears_the_prior() -> None:
    state = fold((True, timedelta(0), 200), (False, HOUR, 500))
    assert (state.prior_ok, state.prior_failed, state.window_ok, state.window_failed) == (
        1, 0, 0, 1,
    )  # fmt: skip
    state = observe(state, ok=True, at=T0 + 5 * HOUR, window=HOUR)
    assert (state.prior_ok, state.prior_failed, state.window_ok) == (0, 0, 1)
    assert state.window_start == window_of(T0 + 5 * HOUR, HOUR)


@pytest.mark.parametrize(
    ("failing_for", "status", "changed_ago", "policy", "says"),
    [
        (timedelta(0), 410, timedelta(days=9), POLICY, "410 Gone"),
        (timedelta(0), 410, timedelta(days=9), LifecycleSettings(disable_on_gone=False), None),
        (timedelta(days=5), 500, timedelta(days=9), POLICY, "every attempt failed for 5d"),
        (timedelta(days=4, hours=23), 500, timedelta(days=9), POLICY, None),
        # Re-enabled (changed) a day ago: the period starts again from then.
        (timedelta(days=6), 500, timedelta(days=1), POLICY, None),
        (timedelta(days=6), 500, timedelta(days=9), LifecycleSettings(disable_after=0), None),
    ],
    ids=["gone", "gone-off", "5-days", "not-yet", "changed-since", "period-off"],
)
def test_the_disable_policy(
    failing_for: timedelta,
    status: int,
    changed_ago: timedelta,
    policy: LifecycleSettings,
    says: str | None,
) -> None:
    now = T0 + failing_for
    state = fold((False, timedelta(0), status), (False, failing_for, status))
    reason = disable_reason(
        state, status_code=status, changed_at=now - changed_ago, now=now, policy=policy
    )
    assert (reason is None) if says is None else (reason is not None and says in reason)


def test_lifecycle_events_have_the_seed_format_stable_ids_and_the_account() -> None:
    made = lifecycle_event(
        DELIVERY_EXHAUSTED,
        account_id="acme",
        webhook_id="hook_1",
        about=("del_1", "5"),
        data={"delivery_id": "del_1"},
        now=T0,
    )
    assert made.id == lifecycle_id(DELIVERY_EXHAUSTED, "hook_1", "del_1", "5")
    assert made.id != lifecycle_id(DELIVERY_EXHAUSTED, "hook_1", "del_1", "4")
    assert orjson.loads(made.value()) == {
        "id": made.id,
        "type": "delivery.exhausted",
        "created_at": "2026-01-15T12:00:00Z",
        "data": {"delivery_id": "del_1", "webhook_id": "hook_1", "account_id": "acme"},
    }
    assert made.headers() == [("hookstream-account", b"acme")]
    assert made.key() == b"hook_1"


# -- operator events as webhooks ----------------------------------------------------------------


def test_operator_events_reach_only_webhooks_that_name_them() -> None:
    from app.webhooks import Webhook

    def hook(*events: str) -> Webhook:
        return Webhook("hook_1", "https://ops.example/", events, "secret-123", True, T0, T0)

    assert hook("hookstream.webhook.disabled").subscribes_to("hookstream.webhook.disabled")
    assert hook("hookstream.*").subscribes_to("hookstream.delivery.exhausted")
    assert not hook("*").subscribes_to("hookstream.webhook.disabled")
    assert not hook("webhook.*").subscribes_to("hookstream.webhook.disabled")
    assert hook("*").subscribes_to("user.created")


def test_operator_types_are_valid_subscriptions() -> None:
    from app.settings import SEED_EVENT_TYPES
    from app.webhooks import validate_events

    assert validate_events(["hookstream.*", "hookstream.webhook.disabled"], SEED_EVENT_TYPES)


def test_the_operator_copy_is_typed_hookstream_and_never_about_an_operator_delivery() -> None:
    from app.lifecycle import operator_copy

    made = lifecycle_event(
        DELIVERY_EXHAUSTED, account_id="acme", webhook_id="hook_1", about=("del_1",),
        data={"event_type": "user.created"}, now=T0,
    )  # fmt: skip
    copy = operator_copy(made)
    assert copy is not None
    assert orjson.loads(copy) == {**orjson.loads(made.value()), "type": "hookstream." + made.type}
    loop = lifecycle_event(
        DELIVERY_EXHAUSTED, account_id="acme", webhook_id="hook_ops", about=("del_2",),
        data={"event_type": "hookstream.delivery.exhausted"}, now=T0,
    )  # fmt: skip
    assert operator_copy(loop) is None
