"""⑤ The Cassandra store against the real dev Cassandra, in a keyspace of its own."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import random
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from cassandra.query import SimpleStatement

from app.deliveries import DeliveryStatus, delivery_id
from app.settings import Settings
from app.store import Store, migrate
from app.store.records import AttemptRecord, DeliveryRecord, EventRecord
from app.store.schema import ADDED_COLUMNS, TABLES, drop
from app.store.session import Row, aexecute
from app.store.timeline import from_cql
from app.webhooks import Webhook
from tests.integration.conftest import isolated

pytestmark = pytest.mark.integration

TYPES = ("user.created", "user.updated", "payment.failed")
STATUSES = (DeliveryStatus.SUCCESS, DeliveryStatus.FAILED, DeliveryStatus.PENDING)


@pytest.fixture(scope="module")
def settings(stack_settings: Settings) -> Iterator[Settings]:
    mine = isolated(stack_settings, uuid.uuid4().hex[:10])
    migrate(mine)
    yield mine
    drop(mine)


@pytest.fixture(scope="module")
async def store(settings: Settings) -> AsyncIterator[Store]:
    store = await Store.connect(settings)
    yield store
    await store.close()


def ms(moment: datetime) -> datetime:
    """Cassandra keeps milliseconds; build test times on the millisecond."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


async def rows(store: Store, cql: str, *params: object) -> list[Row]:
    return (await aexecute(store.session, SimpleStatement(cql), params)).rows


def webhook(**changes: object) -> Webhook:
    now = ms(datetime.now(UTC))
    fields: dict[str, object] = {
        "id": "hook_" + uuid.uuid4().hex[:24],
        "url": "https://example.com/hooks",
        "events": ("user.created", "payment.*"),
        "secret": "whsec_" + base64.b64encode(b"k" * 32).decode(),
        "active": True,
        "created_at": now,
        "updated_at": now,
        "description": "orders",
        "metadata": {"team": "billing"},
    }
    fields.update(changes)
    return Webhook(**fields)  # type: ignore[arg-type]


async def register(store: Store, *webhook_ids: str, account_id: str = "default") -> None:
    """Store webhooks with these ids: an event's deliveries are read through its account's
    webhooks (``list_by_event``), so the tests' webhooks must exist."""
    await asyncio.gather(
        *(store.webhooks.create(webhook(id=w, account_id=account_id)) for w in webhook_ids)
    )


def delivery(
    webhook_id: str, event_id: str, created_at: datetime, **changes: object
) -> DeliveryRecord:
    fields: dict[str, object] = {
        "id": delivery_id(event_id, webhook_id),
        "webhook_id": webhook_id,
        "event_id": event_id,
        "event_type": "user.created",
        "status": DeliveryStatus.PENDING,
        "attempts": 0,
        "created_at": created_at,
        "updated_at": created_at,
    }
    fields.update(changes)
    return DeliveryRecord(**fields)  # type: ignore[arg-type]


# ── schema ────────────────────────────────────────────────────────────────────────────────


async def test_migrate_twice_is_idempotent(store: Store, settings: Settings) -> None:
    await asyncio.to_thread(migrate, settings)  # the fixture already ran it once

    ks = settings.cassandra.keyspace
    tables = await rows(
        store,
        "SELECT table_name, default_time_to_live FROM system_schema.tables "
        "WHERE keyspace_name = %s",
        ks,
    )
    ttl = {row["table_name"]: row["default_time_to_live"] for row in tables}
    assert set(ttl) == set(TABLES)
    retention = int(settings.cassandra.retention.total_seconds())
    assert ttl["webhooks"] == 0 and ttl["api_keys"] == 0 and ttl["accounts"] == 0
    assert {name for name, seconds in ttl.items() if seconds == retention} == set(TABLES) - {
        "accounts",
        "webhooks",
        "api_keys",
    }
    columns = await rows(
        store,
        "SELECT table_name, column_name FROM system_schema.columns WHERE keyspace_name = %s",
        ks,
    )
    present = {(row["table_name"], row["column_name"]) for row in columns}
    for table, added in ADDED_COLUMNS.items():
        for column in added:
            assert (table, column) in present


# ── webhooks ──────────────────────────────────────────────────────────────────────────────


async def test_webhook_create_get_update_delete(store: Store) -> None:
    hook = webhook()
    await store.webhooks.create(hook)
    assert await store.webhooks.get(hook.id) == hook

    changed = webhook(
        id=hook.id,
        url="https://example.org/v2",
        events=("user.*",),
        active=False,
        description=None,
        metadata={},
        created_at=hook.created_at,
        updated_at=hook.updated_at + timedelta(seconds=5),
    )
    await store.webhooks.update(changed)
    assert await store.webhooks.get(hook.id) == changed

    await store.webhooks.delete(hook.id)
    assert await store.webhooks.get(hook.id) is None
    await store.webhooks.delete(hook.id)  # idempotent
    assert await store.webhooks.get("hook_missing") is None


async def test_webhook_list_pages_through_every_webhook_once(store: Store) -> None:
    created = [webhook() for _ in range(11)]
    await asyncio.gather(*(store.webhooks.create(h) for h in created))

    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        page, cursor = await store.webhooks.list_page(3, cursor)
        assert len(page) <= 3
        seen.extend(h.id for h in page)
        pages += 1
        if cursor is None:
            break
        assert pages < 100, "paging does not end"

    everything = {h.id for h in await store.webhooks.all()}
    assert len(seen) == len(set(seen)), "a webhook came twice"
    assert set(seen) == everything
    assert {h.id for h in created} <= everything
    loaded = {h.id: h for h in await store.webhooks.all()}
    assert all(loaded[h.id] == h for h in created)


async def test_webhook_list_refuses_a_malformed_cursor(store: Store) -> None:
    with pytest.raises(ValueError):
        await store.webhooks.list_page(10, "AAAA")  # three NUL bytes: no id
    with pytest.raises(ValueError):
        await store.webhooks.list_page(0, None)
    # and the session survives a refused cursor
    assert await store.webhooks.get("hook_missing") is None


# ── deliveries: the write path ────────────────────────────────────────────────────────────


async def test_record_pending_failed_success(store: Store, settings: Settings) -> None:
    ks = settings.cassandra.keyspace
    created = ms(datetime.now(UTC) - timedelta(minutes=3))
    pending = delivery("hook_life", "evt_life", created)
    first = AttemptRecord(
        delivery_id=pending.id,
        number=1,
        started_at=created,
        duration_ms=120,
        outcome="failed",
        status_code=503,
        error="HTTP 503",
        response_excerpt="busy",
        request_headers={"content-type": "application/json"},
    )
    failed = delivery(
        "hook_life",
        "evt_life",
        created,
        status=DeliveryStatus.FAILED,
        attempts=1,
        updated_at=created + timedelta(seconds=1),
        status_code=503,
        error="HTTP 503",
        next_attempt_at=created + timedelta(seconds=31),
    )
    second = AttemptRecord(
        delivery_id=pending.id,
        number=2,
        started_at=created + timedelta(seconds=31),
        duration_ms=40,
        outcome="success",
        status_code=200,
    )
    success = delivery(
        "hook_life",
        "evt_life",
        created,
        status=DeliveryStatus.SUCCESS,
        attempts=2,
        updated_at=created + timedelta(seconds=32),
        status_code=200,
        delivered_at=created + timedelta(seconds=32),
    )

    await register(store, "hook_life")
    await store.deliveries.record(pending, None)
    assert await store.deliveries.get(pending.id) == pending
    await store.deliveries.record(failed, first)
    assert await store.deliveries.get(pending.id) == failed
    await store.deliveries.record(success, second)
    await store.deliveries.record(success, second)  # a redelivered hand-off: same rows

    assert await store.deliveries.get(pending.id) == success  # error and next attempt cleared
    assert await store.deliveries.attempts(pending.id) == [first, second]
    counted = await rows(
        store, f"SELECT count(*) AS n FROM {ks}.attempts WHERE delivery_id = %s", pending.id
    )
    assert counted[0]["n"] == 2

    bucket = (created - datetime(1970, 1, 1, tzinfo=UTC)).days
    by_status = {
        status.value: await rows(
            store,
            f"SELECT delivery_id, attempts FROM {ks}.deliveries_by_webhook "
            "WHERE webhook_id = %s AND bucket = %s AND status = %s",
            "hook_life",
            bucket,
            status.value,
        )
        for status in DeliveryStatus
    }
    assert by_status == {
        "success": [{"delivery_id": pending.id, "attempts": 2}],
        "failed": [],
        "pending": [],
        "cancelled": [],
    }
    for status in (DeliveryStatus.FAILED, DeliveryStatus.PENDING):
        page = await store.deliveries.list_by_webhook("hook_life", status=status, limit=10)
        assert page.deliveries == []
    page = await store.deliveries.list_by_webhook(
        "hook_life", status=DeliveryStatus.SUCCESS, limit=10
    )
    assert page.deliveries == [success] and page.next_cursor is None
    assert await store.deliveries.list_by_event("evt_life") == [success]


async def test_a_first_record_lists_the_delivery_under_its_status_only(
    store: Store, settings: Settings
) -> None:
    ks = settings.cassandra.keyspace
    created = ms(datetime.now(UTC))
    done = delivery(
        "hook_first", "evt_first", created, status=DeliveryStatus.SUCCESS, attempts=1,
        status_code=200, delivered_at=created,
    )  # fmt: skip
    attempt = AttemptRecord(done.id, 1, created, 12, "success", 200)
    await store.deliveries.record(done, attempt, first=True)
    bucket = (created - datetime(1970, 1, 1, tzinfo=UTC)).days
    listed = {
        status.value: len(
            await rows(
                store,
                f"SELECT delivery_id FROM {ks}.deliveries_by_webhook "
                "WHERE webhook_id = %s AND bucket = %s AND status = %s",
                "hook_first",
                bucket,
                status.value,
            )
        )
        for status in DeliveryStatus
    }
    assert listed == {"success": 1, "failed": 0, "pending": 0, "cancelled": 0}
    assert await store.deliveries.get(done.id) == done


async def test_delivery_rows_carry_the_retention_ttl(store: Store, settings: Settings) -> None:
    ks = settings.cassandra.keyspace
    retention = int(settings.cassandra.retention.total_seconds())
    created = ms(datetime.now(UTC))
    record = delivery("hook_ttl", "evt_ttl", created, event_type="user.updated")
    attempt = AttemptRecord(record.id, 1, created, 5, "failed", error="timeout")
    await store.deliveries.record(record, attempt)
    event = EventRecord("evt_ttl", "user.updated", created.isoformat(), b"{}", created)
    await store.deliveries.save_event(event)
    hook = webhook()
    await store.webhooks.create(hook)

    bucket = (created - datetime(1970, 1, 1, tzinfo=UTC)).days
    checks = [
        ("status", "deliveries", "id = %s", (record.id,)),
        ("outcome", "attempts", "delivery_id = %s", (record.id,)),
        (
            "attempts",
            "deliveries_by_webhook",
            "webhook_id = %s AND bucket = %s",
            ("hook_ttl", bucket),
        ),
        ("type", "events", "id = %s", ("evt_ttl",)),
    ]
    for column, table, where, params in checks:
        found = await rows(
            store, f"SELECT TTL({column}) AS ttl FROM {ks}.{table} WHERE {where}", *params
        )
        assert len(found) == 1, table
        assert 0 < found[0]["ttl"] <= retention, table

    kept = await rows(store, f"SELECT TTL(url) AS ttl FROM {ks}.webhooks WHERE id = %s", hook.id)
    assert kept == [{"ttl": None}]


# ── deliveries: the log ───────────────────────────────────────────────────────────────────


@pytest.fixture(scope="module")
async def busy_log(store: Store) -> list[DeliveryRecord]:
    """250 deliveries of one webhook over today and the two previous UTC days, newest
    first, with timestamps shared by neighbours (ties are broken by delivery id)."""
    rng = random.Random(7)
    now = ms(datetime.now(UTC))
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    records: list[DeliveryRecord] = []
    for i in range(250):
        day = i % 3
        if day == 0:
            span = max(1, min(int((now - midnight).total_seconds() * 1000), 3_600_000))
            created = midnight + timedelta(milliseconds=rng.randrange(span))
        else:
            created = (
                midnight - timedelta(days=day) + timedelta(milliseconds=rng.randrange(86_400_000))
            )
        if i % 5 == 4:
            created = records[i - 3].created_at  # same day: i - 3 ≡ i (mod 3)
        records.append(
            delivery(
                "hook_busy",
                f"evt_busy_{i:03}",
                created,
                status=STATUSES[i % 3 if i % 7 else (i + 1) % 3],
                event_type=TYPES[(i // 2) % 3],
                attempts=1,
            )
        )
    for start in range(0, len(records), 50):
        await asyncio.gather(
            *(store.deliveries.record(r, None) for r in records[start : start + 50])
        )
    records.sort(key=lambda r: (r.created_at, r.id), reverse=True)
    assert len({r.created_at.date() for r in records}) == 3
    assert len({r.created_at for r in records}) < len(records)  # some ties
    return records


async def walk(store: Store, limit: int, **filters: object) -> tuple[list[DeliveryRecord], int]:
    out: list[DeliveryRecord] = []
    cursor: str | None = None
    pages = 0
    while True:
        page = await store.deliveries.list_by_webhook(
            "hook_busy",
            limit=limit,
            cursor=cursor,
            **filters,  # type: ignore[arg-type]
        )
        assert len(page.deliveries) <= limit
        out.extend(page.deliveries)
        pages += 1
        cursor = page.next_cursor
        if cursor is None:
            return out, pages
        assert pages < 1000, "paging does not end"


async def test_list_by_webhook_walks_every_delivery_once_newest_first(
    store: Store, busy_log: list[DeliveryRecord]
) -> None:
    seen, pages = await walk(store, 40)
    assert [r.id for r in seen] == [r.id for r in busy_log]
    assert seen == busy_log
    assert pages == 7  # 6 full pages and 10 rows: no empty trailing page


@pytest.mark.parametrize("limit", [1, 7, 250, 1000])
async def test_list_by_webhook_page_size_does_not_matter(
    store: Store, busy_log: list[DeliveryRecord], limit: int
) -> None:
    seen, _ = await walk(store, limit)
    assert [r.id for r in seen] == [r.id for r in busy_log]


@pytest.mark.parametrize("status", STATUSES)
async def test_list_by_webhook_filters_by_status(
    store: Store, busy_log: list[DeliveryRecord], status: DeliveryStatus
) -> None:
    seen, _ = await walk(store, 40, status=status)
    expected = [r.id for r in busy_log if r.status is status]
    assert expected
    assert [r.id for r in seen] == expected


@pytest.mark.parametrize("event_type", TYPES)
async def test_list_by_webhook_filters_by_event_type(
    store: Store, busy_log: list[DeliveryRecord], event_type: str
) -> None:
    seen, _ = await walk(store, 40, event_type=event_type)
    expected = [r.id for r in busy_log if r.event_type == event_type]
    assert expected
    assert [r.id for r in seen] == expected


async def test_list_by_webhook_filters_by_status_and_event_type(
    store: Store, busy_log: list[DeliveryRecord]
) -> None:
    for status in STATUSES:
        for event_type in TYPES:
            seen, _ = await walk(store, 9, status=status, event_type=event_type)
            expected = [r.id for r in busy_log if r.status is status and r.event_type == event_type]
            assert [r.id for r in seen] == expected, (status, event_type)


async def test_list_by_webhook_respects_since_and_until(
    store: Store, busy_log: list[DeliveryRecord]
) -> None:
    until = busy_log[30].created_at
    since = busy_log[200].created_at
    seen, _ = await walk(store, 13, since=since, until=until)
    expected = [r.id for r in busy_log if since <= r.created_at <= until]
    assert 150 <= len(expected) < 250
    assert [r.id for r in seen] == expected

    failed, _ = await walk(store, 13, since=since, until=until, status=DeliveryStatus.FAILED)
    assert [r.id for r in failed] == [
        r.id
        for r in busy_log
        if since <= r.created_at <= until and r.status is DeliveryStatus.FAILED
    ]
    empty = await store.deliveries.list_by_webhook("hook_busy", since=until, until=since, limit=5)
    assert empty.deliveries == [] and empty.next_cursor is None


async def test_a_success_page_is_filtered_from_the_plain_slice_until_it_mostly_fails(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``success`` is read from the unfiltered slice (one read a page while nearly every row
    matches) and the walk goes over to the status index where most rows are not successful,
    reading on after the rows it passed: every page is full, every successful delivery comes
    once, newest first, over two days and whatever the page size."""
    now = ms(datetime.now(UTC))
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    records: list[DeliveryRecord] = []
    for i in range(400):
        # newest first: 1 in 20 failed, then 80 failed with 1 in 10 successful, then mixed
        failing = 150 <= i < 230
        ok = i % 10 == 3 if failing else i % 20 != 7
        created = midnight + timedelta(seconds=(200 - i) * 2 - 1)  # 200 today, 200 the day before
        records.append(
            delivery(
                "hook_mostly_ok",
                f"evt_ok_{i:03}",
                created,
                status=DeliveryStatus.SUCCESS if ok else DeliveryStatus.FAILED,
                attempts=1,
            )
        )
    await store.deliveries.record_many(records)
    assert len({r.created_at.date() for r in records}) == 2
    successful = [r.id for r in records if r.status is DeliveryStatus.SUCCESS]

    reads: list[str] = []
    real = aexecute

    async def counted(session: object, statement: object, *args: object, **kw: object) -> object:
        reads.append(statement.query_string)  # type: ignore[attr-defined]
        return await real(session, statement, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr("app.store.deliveries.aexecute", counted)
    until = records[0].created_at
    first = await store.deliveries.list_by_webhook(
        "hook_mostly_ok", status=DeliveryStatus.SUCCESS, until=until, limit=50
    )
    assert [r.id for r in first.deliveries] == successful[:50]
    assert len(reads) == 1 and "status = ?" not in reads[0]  # one plain slice, no index

    for limit in (1, 7, 50, 250):
        reads.clear()
        walked, sizes = await walk_hook(
            store, "hook_mostly_ok", limit, status=DeliveryStatus.SUCCESS, until=until
        )
        assert [r.id for r in walked] == successful, limit
        assert all(size == limit for size in sizes[:-1]), (limit, sizes)
        assert any("status = ?" in q for q in reads), limit  # the failing stretch: the index
    failed, _ = await walk_hook(store, "hook_mostly_ok", 9, status=DeliveryStatus.FAILED)
    assert [r.id for r in failed] == [r.id for r in records if r.status is DeliveryStatus.FAILED]


async def test_both_filters_fill_whole_pages_through_the_indexes(store: Store) -> None:
    """2,300 deliveries of one type, 5 of them failed, spread over the partition: with both
    filters every page but the last is full (the indexes intersect in the slice), and the walk
    returns the 5 exactly once, newest first."""
    now = ms(datetime.now(UTC))
    failed_at = {5, 900, 1500, 2250, 2299}
    records = [
        delivery(
            "hook_sparse",
            f"evt_sparse_{i:04}",
            now - timedelta(seconds=i),
            status=DeliveryStatus.FAILED if i in failed_at else DeliveryStatus.SUCCESS,
        )
        for i in range(2300)
    ]
    for start in range(0, len(records), 500):
        await store.deliveries.record_many(records[start : start + 500])

    page = await store.deliveries.list_by_webhook(
        "hook_sparse", status=DeliveryStatus.FAILED, event_type="user.created", limit=10
    )
    assert [r.id for r in page.deliveries] == [records[i].id for i in sorted(failed_at)]
    assert page.next_cursor is None

    walked, sizes = await walk_hook(
        store, "hook_sparse", 2, status=DeliveryStatus.FAILED, event_type="user.created"
    )
    assert [r.id for r in walked] == [records[i].id for i in sorted(failed_at)]
    assert sizes == [2, 2, 1]
    none = await store.deliveries.list_by_webhook(
        "hook_sparse", status=DeliveryStatus.FAILED, event_type="user.deleted", limit=10
    )
    assert none.deliveries == [] and none.next_cursor is None


async def test_an_older_state_written_after_a_newer_one_changes_nothing(store: Store) -> None:
    """Rows carry the state's updated_at as their write time: a replayed or late record of
    an earlier state (a recorder re-reading its log) never overwrites a later one."""
    created = ms(datetime.now(UTC) - timedelta(minutes=1))
    failed = delivery(
        "hook_order", "evt_order", created, status=DeliveryStatus.FAILED, attempts=1,
        updated_at=created + timedelta(seconds=1), status_code=500, error="HTTP 500",
        next_attempt_at=created + timedelta(seconds=31),
    )  # fmt: skip
    success = delivery(
        "hook_order", "evt_order", created, status=DeliveryStatus.SUCCESS, attempts=2,
        updated_at=created + timedelta(seconds=32), status_code=200,
        delivered_at=created + timedelta(seconds=32),
    )  # fmt: skip
    first = AttemptRecord(failed.id, 1, created, 1000, "failed", 500, "HTTP 500")
    second = AttemptRecord(failed.id, 2, created + timedelta(seconds=31), 900, "success", 200)
    await register(store, "hook_order")
    await store.deliveries.record(success, second)
    await store.deliveries.record_many([failed], [first])  # arrives late
    await store.deliveries.record(delivery("hook_order", "evt_order", created), None)

    assert await store.deliveries.get(failed.id) == success
    assert await store.deliveries.attempts(failed.id) == [first, second]
    assert await store.deliveries.list_by_event("evt_order") == [success]
    page = await store.deliveries.list_by_webhook("hook_order", limit=10)
    assert page.deliveries == [success]
    for status in (DeliveryStatus.PENDING, DeliveryStatus.FAILED):
        listed = await store.deliveries.list_by_webhook("hook_order", status=status, limit=10)
        assert listed.deliveries == []


async def test_record_many_writes_every_view_of_a_batch(store: Store) -> None:
    """A recorder-sized batch — many webhooks, fan-out events, attempts and event payloads,
    some large — lands in every view, in few requests, and writing it twice changes nothing."""
    now = ms(datetime.now(UTC))
    states: list[DeliveryRecord] = []
    attempts: list[AttemptRecord] = []
    events: list[EventRecord] = []
    for e in range(60):
        event_id = f"evt_many_{e:03}"
        body = b'{"pad":"' + b"x" * (20_000 if e % 20 == 0 else 200) + b'"}'
        events.append(EventRecord(event_id, "user.created", "2026-01-15T12:30:00Z", body, now))
        for w in range(5):
            record = delivery(
                f"hook_many_{w}", event_id, now - timedelta(milliseconds=e),
                status=DeliveryStatus.SUCCESS, attempts=1, status_code=200, delivered_at=now,
            )  # fmt: skip
            states.append(record)
            attempts.append(
                AttemptRecord(
                    record.id,
                    1,
                    now,
                    7,
                    "success",
                    200,
                    None,
                    "ok" * 300,
                    {"content-type": "application/json"},
                )
            )
    await register(store, *(f"hook_many_{w}" for w in range(5)))
    written = await store.deliveries.record_many(states, attempts, events)
    assert written == 2 * len(states) + len(attempts) + len(events)
    assert await store.deliveries.record_many(states, attempts, events) == written

    for record, attempt in zip(states[::37], attempts[::37], strict=True):
        assert await store.deliveries.get(record.id) == record
        assert await store.deliveries.attempts(record.id) == [attempt]
    for event in events[::7]:
        assert await store.deliveries.get_event(event.id) == event
        assert len(await store.deliveries.list_by_event(event.id)) == 5
    for w in range(5):
        log, _ = await walk_hook(store, f"hook_many_{w}", 25)
        assert len(log) == 60


async def test_attempt_headers_are_one_frozen_cell_and_old_rows_still_read(
    store: Store, settings: Settings
) -> None:
    now = ms(datetime.now(UTC))
    headers = {"Content-Type": "application/json", "webhook-id": "evt_hdr", "X-Attempt": "1"}
    record = delivery("hook_hdr", "evt_hdr", now, status=DeliveryStatus.SUCCESS, attempts=1)
    attempt = AttemptRecord(record.id, 1, now, 4, "success", 200, None, "ok", headers)
    await store.deliveries.record_many([record], [attempt])
    ks = settings.cassandra.keyspace
    [row] = await rows(
        store, f"SELECT sent_headers, request_headers FROM {ks}.attempts WHERE delivery_id = %s",
        record.id,
    )  # fmt: skip
    assert dict(row["sent_headers"]) == headers and row["request_headers"] is None
    assert await store.deliveries.attempts(record.id) == [attempt]
    # An attempt recorded before (headers in the non-frozen map) reads the same.
    await rows(
        store,
        f"INSERT INTO {ks}.attempts (delivery_id, number, started_at, duration_ms, outcome, "
        "status_code, request_headers) VALUES (%s, 2, %s, 5, 'failed', 500, %s)",
        record.id, now, {"webhook-id": "evt_hdr", "X-Webhook-Attempt": "2"},
    )  # fmt: skip
    old = (await store.deliveries.attempts(record.id))[1]
    assert old.number == 2
    assert old.request_headers == {"webhook-id": "evt_hdr", "X-Webhook-Attempt": "2"}


async def test_every_row_carries_its_records_own_write_time_and_the_retention(
    store: Store, settings: Settings
) -> None:
    """The recorder serialises rows itself (``app.store.batches.Binder``): the write times
    are the records' own, to the microsecond, the TTL is the retention's, and a timestamp
    column keeps its millisecond (truncated, as the driver's own binding does)."""
    created = datetime(2026, 12, 1, 17, 0, 0, 123_999, tzinfo=UTC)
    updated = created + timedelta(seconds=2, microseconds=456_789)
    state = delivery(
        "hook_stamps", "evt_stamps", created, status=DeliveryStatus.SUCCESS, attempts=1,
        updated_at=updated, status_code=204, delivered_at=updated,
    )  # fmt: skip
    attempt = AttemptRecord(state.id, 1, created + timedelta(microseconds=777), 12, "success", 204)
    event = EventRecord("evt_stamps", "user.created", "2026-12-01T17:00:00Z", b"{}", created)
    await store.deliveries.record_many([state], [attempt], [event])

    ks, ttl = settings.cassandra.keyspace, int(settings.cassandra.retention.total_seconds())
    us = (updated - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    for table, key, value in (("deliveries", "id", state.id),):
        (row,) = await rows(
            store,
            f"SELECT writetime(status) AS w, ttl(status) AS t, delivered_at FROM {ks}.{table} "
            f"WHERE {key} = %s",
            value,
        )
        assert row["w"] == us
        assert ttl - 60 < row["t"] <= ttl
        assert from_cql(row["delivered_at"]) == ms(updated)  # 17:00:02.580 (of .580788)
    (row,) = await rows(
        store,
        f"SELECT writetime(outcome) AS w FROM {ks}.attempts WHERE delivery_id = %s",
        state.id,
    )
    assert row["w"] == us - 2_456_789 + 777 + 12_000  # the attempt's end
    (row,) = await rows(
        store, f"SELECT writetime(type) AS w FROM {ks}.events WHERE id = %s", "evt_stamps"
    )
    assert row["w"] == us - 2_456_789  # received_at
    assert await store.deliveries.get(state.id) == replace(
        state,
        created_at=ms(created),
        updated_at=ms(updated),
        delivered_at=ms(updated),
    )


async def walk_hook(
    store: Store, webhook_id: str, limit: int, **filters: object
) -> tuple[list[DeliveryRecord], list[int]]:
    """Every page of the webhook's log under ``filters``: the deliveries and each page's size."""
    out: list[DeliveryRecord] = []
    cursor: str | None = None
    sizes: list[int] = []
    while True:
        page = await store.deliveries.list_by_webhook(
            webhook_id,
            limit=limit,
            cursor=cursor,
            **filters,  # type: ignore[arg-type]
        )
        out.extend(page.deliveries)
        sizes.append(len(page.deliveries))
        cursor = page.next_cursor
        if cursor is None:
            return out, sizes
        assert len(sizes) < 1000, "paging does not end"


async def test_failed_between_reads_the_failed_status_view(
    store: Store, busy_log: list[DeliveryRecord]
) -> None:
    since, until = busy_log[-1].created_at, busy_log[0].created_at
    found = await store.deliveries.failed_between("hook_busy", since, until)
    assert [r.id for r in found] == [r.id for r in busy_log if r.status is DeliveryStatus.FAILED]
    narrow = await store.deliveries.failed_between(
        "hook_busy", busy_log[100].created_at, busy_log[50].created_at
    )
    assert {r.id for r in narrow} == {
        r.id
        for r in busy_log
        if r.status is DeliveryStatus.FAILED
        and busy_log[100].created_at <= r.created_at <= busy_log[50].created_at
    }


def _b64(data: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "not a cursor!",
        "",
        _b64({}),
        _b64([1, 2, 3]),
        _b64({"b": "today", "t": None, "d": None}),
        _b64({"b": 20000, "t": 1, "d": "del_x"}),  # created_at outside its bucket
        _b64({"b": 20000, "t": 20000 * 86_400_000, "d": None}),
        _b64({"b": 20000, "t": None, "d": None, "x": 1}),
    ],
)
async def test_list_by_webhook_refuses_a_malformed_cursor(store: Store, cursor: str) -> None:
    with pytest.raises(ValueError):
        await store.deliveries.list_by_webhook("hook_busy", limit=10, cursor=cursor)


async def test_list_by_webhook_refuses_a_zero_limit(store: Store) -> None:
    with pytest.raises(ValueError):
        await store.deliveries.list_by_webhook("hook_busy", limit=0)


async def test_list_by_event_returns_one_delivery_per_webhook(store: Store) -> None:
    created = ms(datetime.now(UTC))
    records = [delivery(f"hook_fan_{n}", "evt_fan", created) for n in range(3)]
    await register(store, *(r.webhook_id for r in records))
    await asyncio.gather(*(store.deliveries.record(r, None) for r in records))
    assert await store.deliveries.list_by_event("evt_fan") == records  # by webhook id
    assert await store.deliveries.list_by_event("evt_nobody") == []
    assert await store.deliveries.get("del_nobody") is None
    assert await store.deliveries.attempts("del_nobody") == []


async def test_list_by_event_reads_the_live_webhooks_of_the_account_only(store: Store) -> None:
    """No table lists an event's deliveries: they are read by the ids derived from the
    account's webhooks, in chunks of 100 ids (130 webhooks here). A deleted webhook's
    delivery, and another account's webhook with the same event id, are left out."""
    account = "fan" + uuid.uuid4().hex[:8]
    created = ms(datetime.now(UTC))
    hooks = [f"hook_wide_{account}_{n:03}" for n in range(130)]
    await register(store, *hooks, account_id=account)
    await register(store, "hook_wide_other", account_id="other")
    got = [
        delivery(h, "evt_wide", created, account_id=account, status=DeliveryStatus.SUCCESS)
        for h in hooks[:120]  # ten webhooks never got it
    ]
    stranger = delivery("hook_wide_other", "evt_wide", created, account_id="other")
    await store.deliveries.record_many([*got, stranger])
    await store.webhooks.delete(hooks[7])

    listed = await store.deliveries.list_by_event("evt_wide", account)
    assert listed == [d for d in got if d.webhook_id != hooks[7]]  # by webhook id
    assert await store.deliveries.list_by_event("evt_wide", "other") == [stranger]
    assert await store.deliveries.list_by_event("evt_wide") == []
    assert await store.deliveries.list_by_event("evt_wide", "nobody") == []


async def test_migrate_keeps_a_keyspace_that_has_the_old_event_table(
    stack_settings: Settings,
) -> None:
    """A keyspace from before keeps its ``deliveries_by_event`` table through ``migrate``
    (unused, expiring), and records land in the views that are read."""
    old = isolated(stack_settings, uuid.uuid4().hex[:10])
    await asyncio.to_thread(migrate, old)
    opened = await Store.connect(old)
    try:
        ks = old.cassandra.keyspace
        await rows(
            opened,
            f"CREATE TABLE {ks}.deliveries_by_event (event_id text, webhook_id text, "
            "delivery_id text, status text, account_id text, "
            "PRIMARY KEY (event_id, webhook_id))",
        )
        await asyncio.to_thread(migrate, old)  # again, over the old table
        hook = webhook()
        await opened.webhooks.create(hook)
        record = delivery(hook.id, "evt_upgraded", ms(datetime.now(UTC)))
        await opened.deliveries.record(record, None)
        assert await opened.deliveries.list_by_event("evt_upgraded") == [record]
        assert await rows(opened, f"SELECT * FROM {ks}.deliveries_by_event") == []
    finally:
        await opened.close()
        await asyncio.to_thread(drop, old)


# ── events and API keys ───────────────────────────────────────────────────────────────────


async def test_event_save_and_get(store: Store) -> None:
    received = ms(datetime.now(UTC))
    body = b'{"id":"evt_saved","type":"user.created","data":{"n":1}}'
    event = EventRecord("evt_saved", "user.created", "2024-05-01T10:00:00Z", body, received)
    await store.deliveries.save_event(event)
    await store.deliveries.save_event(event)  # idempotent
    assert await store.deliveries.get_event("evt_saved") == event
    assert await store.deliveries.get_event("evt_unknown") is None


async def test_two_accounts_may_use_one_event_id(store: Store) -> None:
    received = ms(datetime.now(UTC))
    mine = EventRecord("evt_same", "user.created", "2024-05-01T10:00:00Z", b'{"a":1}', received)
    theirs = EventRecord(
        "evt_same", "user.created", "2024-05-01T10:00:00Z", b'{"b":2}', received, "acme"
    )
    await store.deliveries.record_many([], [], [mine, theirs])
    assert await store.deliveries.get_event("evt_same") == mine
    assert await store.deliveries.get_event("evt_same", "acme") == theirs
    assert await store.deliveries.get_event("evt_same", "other") is None

    now = ms(datetime.now(UTC))
    default_state = DeliveryRecord(
        "del_same_a", "hook_a", "evt_same", "user.created", DeliveryStatus.SUCCESS, 1, now, now
    )
    default_state = replace(default_state, id=delivery_id("evt_same", "hook_a"))
    acme_state = replace(
        default_state, id=delivery_id("evt_same", "hook_b"), webhook_id="hook_b", account_id="acme"
    )
    await register(store, "hook_a")
    await register(store, "hook_b", account_id="acme")
    await store.deliveries.record_many([default_state, acme_state])
    assert await store.deliveries.list_by_event("evt_same") == [default_state]
    assert await store.deliveries.list_by_event("evt_same", "acme") == [acme_state]
    assert (await store.deliveries.get(acme_state.id)) == acme_state


async def test_api_key_create_lookup_list_revoke(store: Store, settings: Settings) -> None:
    key, made = await store.api_keys.create("ci", "acme_keys")
    assert re.fullmatch(r"hsk_[A-Za-z0-9_-]{32}", key)
    assert re.fullmatch(r"key_[0-9a-f]{16}", made.id)
    assert await store.api_keys.lookup(key) == made
    assert made.account_id == "acme_keys" and made.prefix == key[:8] and made.name == "ci"
    assert await store.api_keys.lookup(key[:-1] + ("A" if key[-1] != "A" else "B")) is None
    other, _ = await store.api_keys.create("other", "acme_keys")
    _, elsewhere = await store.api_keys.create("x", "globex_keys")
    assert [k.id for k in await store.api_keys.list("acme_keys")] == [
        made.id,
        (await store.api_keys.lookup(other)).id,  # type: ignore[union-attr]
    ]
    assert [k.id for k in await store.api_keys.list("globex_keys")] == [elsewhere.id]

    stored = await rows(store, f"SELECT * FROM {settings.cassandra.keyspace}.api_keys")
    digest = hashlib.sha256(key.encode()).hexdigest()
    mine = [row for row in stored if row["key_hash"] == digest]
    assert len(mine) == 1 and mine[0]["id"] == made.id
    assert all(key not in str(value) for row in stored for value in row.values())

    assert await store.api_keys.revoke(made.id)
    assert await store.api_keys.lookup(key) is None
    assert not await store.api_keys.revoke(made.id)  # gone: reported, not an error
