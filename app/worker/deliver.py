"""④ The deliver step: one attempt message in → one HTTP attempt → recorded → next step.

The outcome of the attempt decides, through the pure ``app.retries.next_step``:
success → recorded; failure with attempts left → a message on the retry topic of the next
delay; failure on the last attempt (or a refused destination) → ``failed`` and a copy on the
dead topic. The record goes to the records topic (the recorder writes Cassandra from it),
so no Cassandra round trip sits on this path. Every hand-off completes before this returns;
through an outage it is retried (``app.worker.handoff``), never skipped and never acked.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from app import metrics
from app.accounts import Standing
from app.deliveries import AttemptMessage, DeliveryStatus, Origin, dead_letter_headers
from app.delivery import AttemptRequest, AttemptResult, Delivered, Failed, FailureKind, Refused
from app.lifecycle import DELIVERY_EXHAUSTED, DELIVERY_RECOVERED, emit, lifecycle_event
from app.retries import Done, GiveUp, RetryAt, next_step
from app.signing import attempt_headers, loggable_headers
from app.store.records import AttemptRecord, DeliveryRecord, EventRecord
from app.webhooks import Webhook
from app.worker.context import Received, WorkerContext
from app.worker.handoff import hand_off
from app.worker.match import dead_letter

log = logging.getLogger(__name__)

# Outcomes after which retrying is pointless: never sent, or the receiver said it is gone.
_FINAL_FAILURES = frozenset({FailureKind.GONE})


_ATTEMPTS = {o: metrics.ATTEMPTS.labels(o) for o in ("success", "failed", "refused")}
_DELIVERIES = {s.value: metrics.DELIVERIES.labels(s.value) for s in DeliveryStatus}
_DUPLICATES = metrics.ATTEMPTS.labels("duplicate_skipped")


async def deliver_message(ctx: WorkerContext, kafka: Any) -> None:
    """The attempt consumer's handler: one confluent-kafka message of an attempt topic."""
    value = kafka.value()
    try:
        message = AttemptMessage.from_kafka(value or b"", kafka.headers())
    except ValueError as bad:
        where = Received(
            value=value, headers={}, topic=kafka.topic(), partition=kafka.partition(),
            offset=kafka.offset(), timestamp_ms=None,
        )  # fmt: skip
        why = str(bad)
        await hand_off(
            ctx.health, partial(dead_letter, ctx, value, "bad_attempt_message", why, where)
        )
        return
    await deliver(ctx, message)


# Copies of these are redundant: the same attempt of the same delivery, from the pipeline. A
# test or a manual retry is asked for on purpose, so it is always sent.
_PIPELINE_ORIGINS = frozenset({Origin.MATCH, Origin.RETRY})


async def deliver(ctx: WorkerContext, message: AttemptMessage) -> None:
    """Make the attempt unless this worker makes or made the very same one lately: after a
    crash, events matched in the last commit interval are matched again, and both copies of
    their attempt messages reach the new owner. (The copy's offset is still acknowledged in
    order, behind the original's.)"""
    if message.origin not in _PIPELINE_ORIGINS:
        await _deliver(ctx, message)
        return
    key = f"{message.delivery_id}:{message.attempt}"
    if key in ctx.attempting or key in ctx.attempted:
        _DUPLICATES.inc()
        log.debug("attempt already made; copy skipped", extra={"delivery_id": key})
        return
    ctx.attempting.add(key)
    try:
        await _deliver(ctx, message)
        ctx.attempted.add(key)
    finally:
        ctx.attempting.discard(key)


async def _deliver(ctx: WorkerContext, message: AttemptMessage) -> None:
    context = {
        "event_id": message.event_id,
        "webhook_id": message.webhook_id,
        "delivery_id": message.delivery_id,
        "attempt": message.attempt,
        "account_id": message.account_id,
    }
    webhook = await _find_webhook(ctx, message.webhook_id)
    created_at = datetime.fromtimestamp(message.enqueued_at_ms / 1000, UTC)
    account_off = ctx.accounts.standing(message.account_id) is Standing.DISABLED
    if webhook is None or not webhook.active or account_off:
        why = (
            "webhook deleted"
            if webhook is None
            else "account disabled"
            if account_off
            else f"webhook disabled: {webhook.disabled_reason}"
            if webhook.disabled_reason
            else "webhook paused"
        )
        log.info("delivery cancelled: %s", why, extra=context)
        cancelled = _record(message, created_at, DeliveryStatus.CANCELLED, error=why)
        event = _carried_event(message, created_at)
        await hand_off(ctx.health, lambda: ctx.records.record(cancelled, None, event=event))
        _DELIVERIES["cancelled"].inc()
        _count_for_account(message.account_id, "cancelled")
        return

    if webhook.rate_limit is not None:  # before signing: the timestamp is the send's
        await ctx.rate_limits.wait(webhook.id, webhook.rate_limit)
    started = datetime.now(UTC)
    headers = attempt_headers(
        keys=ctx.keys.get(webhook, started.timestamp()),
        custom=webhook.headers,
        body=message.body,
        event_id=message.event_id,
        event_type=message.event_type,
        delivery_id=message.delivery_id,
        attempt=message.attempt,
        timestamp=int(started.timestamp()),
    )
    result = await ctx.sender.send(
        AttemptRequest(url=webhook.url, body=message.body, headers=headers, webhook_id=webhook.id)
    )
    finished = datetime.now(UTC)
    attempt = _attempt_record(message, started, result, loggable_headers(headers, webhook.headers))
    _observe(message, result, attempt)
    if ctx.webhook_health is not None:  # memory only: endpoint health and auto-disable
        ctx.webhook_health.observe(
            webhook,
            ok=isinstance(result, Delivered),
            at=finished,
            status_code=attempt.status_code,
            error=attempt.error,
        )

    succeeded = isinstance(result, Delivered)
    final_failure = isinstance(result, Refused) or (
        isinstance(result, Failed) and result.kind in _FINAL_FAILURES
    )
    step = next_step(
        attempt=len(ctx.settings.retry_schedule) if final_failure else message.attempt,
        succeeded=succeeded,
        schedule=ctx.settings.retry_schedule,
        now=finished,
        retry_after=_retry_after(result, ctx.settings.delivery.max_retry_after),
    )
    status_code = attempt.status_code
    produce: list[Callable[[], Awaitable[None]]] = []
    match step:
        case Done():
            state = _record(
                message,
                created_at,
                DeliveryStatus.SUCCESS,
                status_code=status_code,
                delivered_at=finished,
            )
            # DEBUG: one line per success costs ~3 % of the worker; the metrics count them.
            log.debug("delivered", extra={**context, "status_code": status_code})
            if message.origin is Origin.MANUAL:  # a retry or recover of a failed delivery
                produce.append(partial(_announce, ctx, DELIVERY_RECOVERED, webhook, state))
        case RetryAt(delay=delay, due_at=due_at):
            state = _record(
                message,
                created_at,
                DeliveryStatus.PENDING,
                status_code=status_code,
                error=attempt.error,
                next_attempt_at=due_at,
            )
            retry = message.next_attempt(int(due_at.timestamp() * 1000))
            produce.append(
                partial(
                    ctx.producer.send,
                    ctx.topics.retry_topic(delay),
                    retry.body,
                    key=retry.key(),
                    headers=retry.headers(),
                )
            )
            log.info("attempt failed; retry due %s", due_at.isoformat(), extra=context)
        case GiveUp():
            state = _record(
                message,
                created_at,
                DeliveryStatus.FAILED,
                status_code=status_code,
                error=attempt.error,
            )
            reason = "refused" if isinstance(result, Refused) else "exhausted"
            produce.append(
                partial(
                    ctx.producer.send,
                    ctx.topics.dead,
                    message.body,
                    key=message.key(),
                    headers=[
                        *message.headers(),
                        *dead_letter_headers(
                            reason, attempt.error or "", ctx.topics.deliveries, -1, -1
                        ),
                    ],
                )
            )
            metrics.DEAD_LETTERS.labels(reason).inc()
            log.warning("delivery failed: %s", attempt.error, extra=context)
            produce.append(partial(_announce, ctx, DELIVERY_EXHAUSTED, webhook, state))
    # A first attempt from the match step has no earlier state in the log to move away from.
    first = message.attempt == 1 and message.origin is Origin.MATCH
    event = _carried_event(message, created_at)
    produce.append(partial(ctx.records.record, state, attempt, first=first, event=event))
    # Each hand-off retried on its own: a retry message Kafka already has is never re-sent
    # because the record beside it had to wait out an outage.
    if len(produce) == 1:  # the common case (a success): no gather, no extra task
        await hand_off(ctx.health, produce[0])
    else:
        await asyncio.gather(*(hand_off(ctx.health, one) for one in produce))
    if not isinstance(step, RetryAt):
        _DELIVERIES[state.status.value].inc()
        _count_for_account(message.account_id, state.status.value)


async def _announce(
    ctx: WorkerContext, event_type: str, webhook: Webhook, state: DeliveryRecord
) -> None:
    """The operator event of a delivery's end (part of the attempt's hand-off)."""
    await emit(
        ctx.producer,
        ctx.topics,
        lifecycle_event(
            event_type,
            account_id=webhook.account_id,
            webhook_id=webhook.id,
            about=(state.id, str(state.attempts)),
            data={
                "delivery_id": state.id,
                "event_id": state.event_id,
                "event_type": state.event_type,
                "attempts": state.attempts,
                "status_code": state.status_code,
                "error": state.error,
            },
            now=state.updated_at,
        ),
    )


# Counter children by (account, status): ``labels()`` hashes and validates its arguments on
# every call, a measurable share of a delivery at these rates. Bounded like the label set.
_ACCOUNT_COUNTERS: dict[tuple[str, str], Any] = {}


def _count_for_account(account_id: str, status: str) -> None:
    counter = _ACCOUNT_COUNTERS.get((account_id, status))
    if counter is None:
        label = metrics.account_label(account_id)
        counter = metrics.ACCOUNT_DELIVERIES.labels(label, status)
        if label != "other":  # "other" stands for unbounded many: look those up each time
            _ACCOUNT_COUNTERS[(account_id, status)] = counter
    counter.inc()


async def _find_webhook(ctx: WorkerContext, webhook_id: str) -> Webhook | None:
    webhook = ctx.index.get(webhook_id)
    if webhook is None:
        # Not in the index yet (just created) or gone: Cassandra is the source of truth.
        webhook = await hand_off(ctx.health, lambda: ctx.store.webhooks.get(webhook_id))
        if webhook is not None:
            ctx.index.put(webhook)
    return webhook


def _record(
    message: AttemptMessage,
    created_at: datetime,
    status: DeliveryStatus,
    *,
    status_code: int | None = None,
    error: str | None = None,
    next_attempt_at: datetime | None = None,
    delivered_at: datetime | None = None,
) -> DeliveryRecord:
    return DeliveryRecord(
        id=message.delivery_id,
        webhook_id=message.webhook_id,
        event_id=message.event_id,
        event_type=message.event_type,
        status=status,
        attempts=message.attempt if status is not DeliveryStatus.CANCELLED else message.attempt - 1,
        created_at=created_at,
        updated_at=datetime.now(UTC),
        status_code=status_code,
        error=error,
        delivered_at=delivered_at,
        next_attempt_at=next_attempt_at,
        account_id=message.account_id,
    )


def _carried_event(message: AttemptMessage, matched_at: datetime) -> EventRecord | None:
    """The event a match's first record carries to the recorder (``app.records``); None for
    every other message (retries, tests, manual retries, replays: their events are stored)."""
    if message.event_created_at is None or message.attempt != 1:
        return None
    if message.origin is not Origin.MATCH:
        return None
    return EventRecord(
        id=message.event_id,
        type=message.event_type,
        created_at=message.event_created_at,
        body=message.body,
        received_at=matched_at,
        account_id=message.account_id,
    )


def _attempt_record(
    message: AttemptMessage, started: datetime, result: AttemptResult, headers: dict[str, str]
) -> AttemptRecord:
    match result:
        case Delivered(status=status, duration_ms=ms, excerpt=excerpt):
            return AttemptRecord(
                message.delivery_id, message.attempt, started, ms, "success", status, None,
                excerpt, headers,
            )  # fmt: skip
        case Failed(status=status, duration_ms=ms, excerpt=excerpt, error=error):
            return AttemptRecord(
                message.delivery_id, message.attempt, started, ms, "failed", status, error,
                excerpt, headers,
            )  # fmt: skip
        case Refused(reason=reason):
            return AttemptRecord(
                message.delivery_id, message.attempt, started, 0, "refused", None,
                f"refused: {reason}", None, headers,
            )  # fmt: skip
    raise AssertionError(result)


def _retry_after(result: AttemptResult, cap: timedelta) -> timedelta | None:
    if isinstance(result, Failed) and result.retry_after is not None:
        return min(result.retry_after, cap)
    return None


def _observe(message: AttemptMessage, result: AttemptResult, attempt: AttemptRecord) -> None:
    _ATTEMPTS[attempt.outcome].inc()
    metrics.ATTEMPT_SECONDS.observe(attempt.duration_ms / 1000)
    if message.attempt == 1 and message.origin is Origin.MATCH and not isinstance(result, Refused):
        metrics.EVENT_TO_ATTEMPT.observe(max(0.0, time.time() - message.enqueued_at_ms / 1000))
