"""Accounts, pure: the event's account from its headers, event store keys, the workers'
account directory, the account codec and the per-key rate limit — tables of cases."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.accounts import (
    Account,
    AccountDirectory,
    Standing,
    account_from_json,
    account_to_json,
    event_account,
    event_key,
    is_account_id,
)
from app.api.ratelimit import RateLimited, RateLimiter
from app.errors import InvalidEvent

T0 = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, "default"),
        ({"hookstream-account": b"acme"}, "acme"),
        ([("other", b"x"), ("hookstream-account", b"acct_0123abcd")], "acct_0123abcd"),
        ({"Hookstream-Account": b"acme"}, "default"),  # Kafka header keys are exact
        ({"hookstream-account": b"default"}, "default"),
    ],
)
def test_the_account_of_an_event(headers: object, expected: str) -> None:
    assert event_account(headers) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "value", [b"", b"Acme", b"a.b", b"a/b", b"\xff", b"x" * 64, b"-lead", b"with space"]
)
def test_a_bad_account_header_is_refused_not_defaulted(value: bytes) -> None:
    with pytest.raises(InvalidEvent) as refused:
        event_account({"hookstream-account": value})
    assert refused.value.reason == "bad_account"


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        *[("acme", True), ("acct_0123", True), ("a-b_c9", True), ("x" * 63, True)],
        *[("x" * 64, False), ("", False), ("Acme", False), ("a.b", False), ("_x", False)],
    ],
)
def test_account_ids(text: str, ok: bool) -> None:
    assert is_account_id(text) is ok


@pytest.mark.parametrize(
    ("account", "event_id", "key"),
    [("default", "evt_1", "evt_1"), ("acme", "evt_1", "acme.evt_1"), ("a", "x/y", "a.x/y")],
)
def test_event_store_keys_never_collide_across_accounts(
    account: str, event_id: str, key: str
) -> None:
    assert event_key(account, event_id) == key


def test_the_directory_knows_standing() -> None:
    directory = AccountDirectory([Account("acme", "Acme", True, T0)])
    directory.put(Account("off", "Off", False, T0, disabled_reason="unpaid"))
    assert directory.standing("default") is Standing.ACTIVE  # never needs creating
    assert directory.standing("acme") is Standing.ACTIVE
    assert directory.standing("off") is Standing.DISABLED
    assert directory.standing("nobody") is Standing.UNKNOWN
    directory.note_missing("nobody", now=100.0)
    assert directory.checked_lately("nobody", now=104.0, within=5.0)
    assert not directory.checked_lately("nobody", now=106.0, within=5.0)
    directory.put(Account("nobody", "Late", True, T0))  # created after all
    assert not directory.checked_lately("nobody", now=101.0, within=5.0)
    directory.replace_all([])
    assert directory.standing("acme") is Standing.UNKNOWN


@pytest.mark.parametrize(
    "account",
    [
        Account("acme", "Acme Corp", True, T0),
        Account("off", "Off", False, T0, max_webhooks=7, disabled_reason="unpaid"),
    ],
)
def test_an_account_round_trips(account: Account) -> None:
    assert account_from_json(account_to_json(account)) == account


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_key_gets_its_burst_then_its_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=2.0, burst=3, clock=clock)
    for _ in range(3):
        limiter.take("k")
    with pytest.raises(RateLimited) as refused:
        limiter.take("k")
    assert refused.value.status_code == 429 and refused.value.headers["Retry-After"] == "1"
    limiter.take("other")  # buckets are per key
    clock.now = 0.5  # one token back at 2/s
    limiter.take("k")
    with pytest.raises(RateLimited):
        limiter.take("k")
    clock.now = 100.0  # refills up to the burst, never beyond
    for _ in range(3):
        limiter.take("k")
    with pytest.raises(RateLimited):
        limiter.take("k")


def test_a_slow_rate_says_how_long_to_wait() -> None:
    limiter = RateLimiter(rate=0.1, burst=1, clock=Clock())
    limiter.take("k")
    with pytest.raises(RateLimited) as refused:
        limiter.take("k")
    assert refused.value.retry_after_s == 10


def test_zero_means_no_limit() -> None:
    limiter = RateLimiter(rate=0, burst=1, clock=Clock())
    for _ in range(1000):
        limiter.take("k")


def test_the_account_label_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from app import metrics

    monkeypatch.setattr(metrics, "MAX_ACCOUNT_LABELS", 2)
    monkeypatch.setattr(metrics, "_ACCOUNT_LABELS", set())
    assert [metrics.account_label(a) for a in ("a", "b", "c", "a", "d", "b")] == [
        "a", "b", "other", "a", "other", "b",
    ]  # fmt: skip
