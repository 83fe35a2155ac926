"""② The match step: one event in, one attempt message per matching active webhook out.

An event is matched only against the webhooks of its own account (the ``hookstream-account``
header, ``app.accounts``; none means the default account). An event naming an account that is
unknown or disabled goes to the dead topic like any invalid event: an account this worker has
not heard of yet is looked up in Cassandra first (an account created a moment ago), and a
"no such account" answer is remembered for a few seconds. A webhook's payload filter
(``app.filters``, compiled once per webhook version) is checked after the type index: an event
it rejects, or one it fails to evaluate, is no match for that webhook.

Invalid events go to the dead topic with the reason and their source position; the partition
moves on. A duplicate event id (matched recently by this worker, ``app.worker.recent``) is
skipped: one delivery chain per (event, webhook), without a read per event. The event's
offset is acknowledged only once Kafka has its attempt messages; a crash in between
re-matches it (same delivery ids) instead of losing it. The event itself is kept for test
and manual redelivery by its deliveries' first records (``app.records``), not by a message
of its own. Through an outage the hand-off waits (``hand_off``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from functools import partial

from app import metrics
from app.accounts import Standing, event_account, event_key
from app.deliveries import AttemptMessage, Origin, dead_letter_headers, delivery_id
from app.errors import InvalidEvent
from app.events import parse_event
from app.worker.context import Received, WorkerContext
from app.worker.handoff import hand_off

log = logging.getLogger(__name__)

_EVENTS = {r: metrics.EVENTS.labels(r) for r in ("invalid", "unmatched", "duplicate", "matched")}


async def match_event(ctx: WorkerContext, where: Received) -> int:
    """Fan one event out; returns the number of deliveries produced. Raises HandOffError."""
    try:
        event = parse_event(
            where.value,
            max_bytes=ctx.settings.delivery.event_max_bytes,
            kafka_timestamp_ms=where.timestamp_ms,
        )
        account = event_account(where.headers)
        await check_account(ctx, account)
    except InvalidEvent as invalid:
        reason, detail = invalid.reason, invalid.detail
        await hand_off(ctx.health, partial(dead_letter, ctx, where.value, reason, detail, where))
        _EVENTS["invalid"].inc()
        return 0

    webhooks = ctx.index.match(event.type, account)
    # The payload filters (app.filters, compiled once per webhook; they never raise).
    webhooks = tuple(w for w in webhooks if w.filter is None or w.filter.matches(event.data))
    if not webhooks:
        _EVENTS["unmatched"].inc()
        return 0
    seen_as = event_key(account, event.id)  # two accounts may use one event id
    if seen_as in ctx.recent:
        log.info(
            "event already matched; skipped", extra={"event_id": event.id, "account_id": account}
        )
        _EVENTS["duplicate"].inc()
        return 0

    now_ms = int(time.time() * 1000)
    messages = [
        AttemptMessage(
            delivery_id=delivery_id(event.id, webhook.id),
            webhook_id=webhook.id,
            event_id=event.id,
            event_type=event.type,
            attempt=1,
            body=event.body,
            enqueued_at_ms=now_ms,
            origin=Origin.MATCH,
            account_id=account,
            event_created_at=event.created_at,  # the first records carry the event
        )
        for webhook in webhooks
    ]
    producer, topic = ctx.producer, ctx.topics.deliveries
    sends = [
        partial(producer.send, topic, m.body, key=m.key(), headers=m.headers()) for m in messages
    ]
    if len(sends) == 1:  # the common case: no gather, no extra task
        await hand_off(ctx.health, sends[0])
    else:
        await asyncio.gather(*(hand_off(ctx.health, send) for send in sends))
    ctx.recent.add(seen_as)
    _EVENTS["matched"].inc()
    return len(messages)


async def check_account(ctx: WorkerContext, account: str) -> None:
    """Return if ``account`` may send events; raise ``InvalidEvent`` if it is unknown or
    disabled. Raises ``HandOffError`` only through ``hand_off``'s wait (Cassandra down)."""
    standing = ctx.accounts.standing(account)
    now = time.monotonic()
    if standing is Standing.UNKNOWN and not ctx.accounts.checked_lately(account, now, 5.0):
        found = await hand_off(ctx.health, partial(ctx.store.accounts.get, account))
        if found is None:
            ctx.accounts.note_missing(account, now)
        else:
            ctx.accounts.put(found)
        standing = ctx.accounts.standing(account)
    if standing is Standing.UNKNOWN:
        raise InvalidEvent("unknown_account", f"no account {account!r}")
    if standing is Standing.DISABLED:
        raise InvalidEvent("account_disabled", f"account {account!r} is disabled")


async def dead_letter(
    ctx: WorkerContext, value: bytes | None, reason: str, detail: str, where: Received
) -> None:
    log.warning(
        "dead letter from %s[%d]@%d: %s: %s",
        where.topic,
        where.partition,
        where.offset,
        reason,
        detail,
    )
    await ctx.producer.send(
        ctx.topics.dead,
        value,
        headers=dead_letter_headers(reason, detail, where.topic, where.partition, where.offset),
    )
    metrics.DEAD_LETTERS.labels(reason).inc()
