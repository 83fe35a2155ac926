"""Endpoint health: a webhook's recent success rate, last success, consecutive failures, and
the auto-disable policy — pure functions over one small state per webhook.

The state is folded from every attempt by the worker that owns the webhook's partition
(``app.worker.health``: attempts are keyed by webhook id, so one worker sees all of a
webhook's attempts) and stored in Cassandra's ``webhook_health`` for the API to read.

The success rate counts the attempts of the current ``health_window`` (aligned to the epoch)
and the one before it, so it always spans between one and two windows of recent traffic.

Auto-disable (``disable_reason``), configurable and on by default:

- ``410 Gone`` disables at once (the Standard Webhooks advice; ``lifecycle.disable_on_gone``);
- a webhook whose attempts have **all** failed for ``lifecycle.disable_after`` (5 days, as
  Svix does) is disabled. The period runs from the first failure after the last success, or
  from the webhook's last change if that is later (re-enabling or fixing the URL gives the
  endpoint a fresh period).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from app.accounts import DEFAULT_ACCOUNT
from app.settings import LifecycleSettings, format_duration

GONE = 410
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class WebhookHealth:
    webhook_id: str
    account_id: str = DEFAULT_ACCOUNT
    last_success_at: datetime | None = None
    last_failure_at: datetime | None = None
    failing_since: datetime | None = None  # the first failure after the last success
    consecutive_failures: int = 0
    last_status_code: int | None = None
    last_error: str | None = None
    window_start: datetime | None = None  # the current window's start
    window_ok: int = 0
    window_failed: int = 0
    prior_ok: int = 0  # the window before it
    prior_failed: int = 0

    def success_rate(self, now: datetime, window: timedelta) -> float | None:
        """Successes / attempts over the current and previous window at ``now``; None
        when there were no attempts then."""
        ok, failed = self.recent(now, window)
        return ok / (ok + failed) if ok + failed else None

    def recent(self, now: datetime, window: timedelta) -> tuple[int, int]:
        """(successes, failures) of the current and previous window at ``now``."""
        if self.window_start is None:
            return 0, 0
        current = window_of(now, window)
        if current == self.window_start:
            return self.window_ok + self.prior_ok, self.window_failed + self.prior_failed
        if current == self.window_start + window:
            return self.window_ok, self.window_failed
        return 0, 0


def window_of(moment: datetime, window: timedelta) -> datetime:
    return _EPOCH + window * ((moment - _EPOCH) // window)


def observe(
    state: WebhookHealth,
    *,
    ok: bool,
    at: datetime,
    window: timedelta,
    status_code: int | None = None,
    error: str | None = None,
) -> WebhookHealth:
    """``state`` after one attempt that ended at ``at``. (Built in one go: a ``replace``
    costs a few µs, and a worker folds every attempt it makes.)"""
    start, w_ok, w_failed, p_ok, p_failed = _counted(state, window_of(at, window), ok, window)
    last_success_at: datetime | None
    last_failure_at: datetime | None
    failing_since: datetime | None
    if ok:
        last_success_at = max(at, state.last_success_at or at)
        last_failure_at = state.last_failure_at
        failing_since = None
        failures = 0
        error = None
    else:
        after_success = state.last_success_at is None or at > state.last_success_at
        last_success_at = state.last_success_at
        last_failure_at = max(at, state.last_failure_at or at)
        failing_since = (state.failing_since or at) if after_success else state.failing_since
        failures = state.consecutive_failures + (1 if after_success else 0)
    return WebhookHealth(
        webhook_id=state.webhook_id,
        account_id=state.account_id,
        last_success_at=last_success_at,
        last_failure_at=last_failure_at,
        failing_since=failing_since,
        consecutive_failures=failures,
        last_status_code=status_code,
        last_error=error,
        window_start=start,
        window_ok=w_ok,
        window_failed=w_failed,
        prior_ok=p_ok,
        prior_failed=p_failed,
    )


def _counted(
    state: WebhookHealth, start: datetime, ok: bool, window: timedelta
) -> tuple[datetime, int, int, int, int]:
    """The window fields (start, its ok and failed, the prior's ok and failed) with one
    more attempt counted in the window starting at ``start``."""
    w_ok, w_failed, p_ok, p_failed = (
        state.window_ok,
        state.window_failed,
        state.prior_ok,
        state.prior_failed,
    )
    current = state.window_start
    if current is None or start > current:
        # A later window: the current one becomes the prior only if it is adjacent.
        adjacent = current is not None and start == current + window
        p_ok, p_failed = (w_ok, w_failed) if adjacent else (0, 0)
        w_ok, w_failed, current = 0, 0, start
    if start == current:
        w_ok, w_failed = w_ok + ok, w_failed + (not ok)
    elif start == current - window:  # a late attempt of the prior window
        p_ok, p_failed = p_ok + ok, p_failed + (not ok)
    return current, w_ok, w_failed, p_ok, p_failed


def disable_reason(
    state: WebhookHealth,
    *,
    status_code: int | None,
    changed_at: datetime,
    now: datetime,
    policy: LifecycleSettings,
) -> str | None:
    """Why the webhook should be disabled after this attempt (``status_code`` its answer),
    or None. ``changed_at`` is the webhook's last change (``updated_at``)."""
    if policy.disable_on_gone and status_code == GONE:
        return "the endpoint answered 410 Gone"
    period = policy.disable_after
    if period <= timedelta(0) or state.failing_since is None or state.consecutive_failures == 0:
        return None
    since = max(state.failing_since, changed_at)
    if now - since >= period:
        return f"every attempt failed for {format_duration(period)} (since {since.isoformat()})"
    return None
