"""⑤ Deliveries, attempts and events in Cassandra: the recorder's write path and the log reads.

A delivery's state lives in two views: by id, and in the log of its webhook (UTC day
buckets, newest first; storage-attached indexes on status and event type serve the filters,
see ``schema``, but for ``success``, the common status, filtered here from the plain slice).
An event's deliveries are read by id: a delivery's id derives from (event id, webhook id)
(``app.deliveries.delivery_id``), so the ids of the account's webhooks name every delivery
the event can have. Attempts and events have a table each. Every row expires
after the retention.

Writes are upserts stamped ``USING TIMESTAMP`` with the record's own time — a state's
``updated_at``, an attempt's end (start + duration), an event's ``received_at``, in µs — so
Cassandra keeps, cell by cell, the newest version whatever order the writes arrive in: a
replayed or late older record can never overwrite a newer state, and writes may be repeated,
reordered and sent concurrently. That is what lets the recorder write a batch of thousands of
records at once, and what makes a status change need no delete (there is no row per status).

``record_many`` is the recorder's path (``app.store.recording``): every row of a batch,
grouped by partition key into few unlogged batches (``app.store.batches``), sent with
bounded concurrency. ``record`` and
``save_event`` are the same writes for one record (the API's test endpoint). Why no logged
batch: nothing needs atomicity across views — every write converges on its own, and a write
that fails is repeated until it succeeds (the recorder does not commit its offset before).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

from cassandra.query import PreparedStatement

from app.accounts import DEFAULT_ACCOUNT, event_key
from app.deliveries import DeliveryStatus, delivery_id
from app.settings import Settings
from app.store import schema
from app.store.recording import ATTEMPT, STATE, RecordWriter
from app.store.records import AttemptRecord, DeliveryPage, DeliveryRecord, EventRecord
from app.store.rows import attempt_record, delivery_record
from app.store.session import (
    CassandraSession,
    Row,
    aexecute,
    all_pages,
    prepare,
)
from app.store.timeline import (
    Position,
    day_bucket,
    decode_cursor,
    encode_cursor,
    from_cql,
    to_ms,
)

_STATE = STATE  # the columns, in the order the writer writes them
# What the writer writes, and the headers of attempts recorded before they went frozen.
_ATTEMPT = f"{ATTEMPT}, request_headers"

# Day buckets read concurrently once the walk finds them sparse (1, 2, 4, then 8 at a time),
# so a quiet webhook's 30 empty days cost a handful of round trips, not thirty.
_MAX_FAN_OUT = 8
# Delivery ids per multi-key read of an event's deliveries (the coordinator fans them out).
_BY_ID_CHUNK = 100
# Statuses most of a webhook's deliveries have. A page filtered by one is read from the plain
# slice and filtered here: the status index costs Cassandra about twice the plain slice's CPU
# for the same 51 rows (it looks every row up by key; 3.5 against 1.6 ms a page on the bench
# stack), which only pays when the status is rare. The walk goes over to the index as soon
# as fewer than ``_SCAN_MIN_MATCH`` of the rows read matched (a failing webhook), after the
# rows already read, so at most one slice read is wasted.
_SCANNED_STATUSES = frozenset({DeliveryStatus.SUCCESS})
_SCAN_MIN_MATCH = 0.75

T = TypeVar("T")


def _log_record(row: Row) -> DeliveryRecord:
    return delivery_record(row, "delivery_id")


@dataclass(frozen=True, slots=True)
class _Log:
    """One delivery-log table: how to read a page of a bucket from the top or after a row."""

    top: PreparedStatement
    after: PreparedStatement


class DeliveryRepository:
    """The recorder's (and the API's) record of deliveries, and the API's delivery-log reads.

    Construct it off the event loop (it prepares its statements, which blocks); ``Store``
    does. Writes and reads run at LOCAL_QUORUM. Every method raises ``StoreUnavailable``
    when Cassandra does not answer (after the driver's retries of idempotent writes).
    """

    def __init__(self, session: CassandraSession, settings: Settings) -> None:
        self._session = session
        self._retention = settings.cassandra.retention
        ks = settings.cassandra.keyspace
        self._writer = RecordWriter(session, settings)  # every write (app.store.recording)

        def p(cql: str) -> PreparedStatement:
            return prepare(session, cql)

        self._select_delivery = p(f"SELECT id, {_STATE} FROM {ks}.{schema.DELIVERIES} WHERE id = ?")
        self._select_attempts = p(
            f"SELECT {_ATTEMPT} FROM {ks}.{schema.ATTEMPTS} "
            "WHERE delivery_id = ? ORDER BY number ASC"
        )
        # An event's deliveries: the account's webhooks (SAI on account_id), then their
        # deterministic delivery ids by partition key, _BY_ID_CHUNK a request.
        self._select_account_webhooks = p(
            f"SELECT id FROM {ks}.{schema.WEBHOOKS} WHERE account_id = ?"
        )
        self._select_deliveries = p(
            f"SELECT id, {_STATE} FROM {ks}.{schema.DELIVERIES} WHERE id IN ?"
        )
        self._select_event = p(
            f"SELECT type, created_at, body, received_at FROM {ks}.{schema.EVENTS} WHERE id = ?"
        )

        def log(filters: str) -> _Log:
            # The SAI restrictions come after the clustering range: one partition slice,
            # in clustering order, the index only narrowing it.
            head = (
                f"SELECT delivery_id, {_STATE} FROM {ks}.{schema.BY_WEBHOOK} "
                "WHERE webhook_id = ? AND bucket = ?"
            )
            return _Log(
                top=p(f"{head} AND created_at <= ? AND created_at >= ?{filters} LIMIT ?"),
                after=p(
                    f"{head} AND (created_at, delivery_id) < (?, ?) AND created_at >= ?"
                    f"{filters} LIMIT ?"
                ),
            )

        self._logs = {
            (False, False): log(""),
            (True, False): log(" AND status = ?"),
            (False, True): log(" AND event_type = ?"),
            (True, True): log(" AND status = ? AND event_type = ?"),
        }
        self._status_range = p(
            f"SELECT delivery_id, {_STATE} FROM {ks}.{schema.BY_WEBHOOK} "
            "WHERE webhook_id = ? AND bucket = ? AND created_at <= ? AND created_at >= ? "
            "AND status = ?"
        )

    # ── the write path ────────────────────────────────────────────────────────────────────

    async def record_many(
        self,
        deliveries: Sequence[DeliveryRecord],
        attempts: Sequence[AttemptRecord] = (),
        events: Sequence[EventRecord] = (),
        *,
        concurrency: int = 32,
    ) -> int:
        """Write delivery states, attempts and events in as few requests as the limits
        allow; return the number of rows written.

        The recorder's path: called with a whole collapsed batch (one state per delivery,
        every attempt row). Rows are grouped by partition key and packed into unlogged
        batches (``app.store.batches``), at most ``concurrency`` requests in flight.
        Idempotent and order-insensitive (rows are stamped with the record's own time), so
        passing several states of one delivery is correct too, only wasteful. Returns once
        every request is acknowledged at LOCAL_QUORUM; raises ``StoreUnavailable`` (after
        every request has settled) if any was not — some rows may then be written, and
        writing the same batch again is the remedy.
        """
        return await self._writer.write(deliveries, attempts, events, concurrency=concurrency)

    async def record(
        self, delivery: DeliveryRecord, attempt: AttemptRecord | None, *, first: bool = False
    ) -> None:
        """Record an attempt (if any) and the delivery's state it led to, in every view.

        ``record_many`` for one record: the API's path (a test delivery's pending state),
        and the worker's until it hands records to the records topic instead. Idempotent,
        and since every row carries the state's ``updated_at`` as its write time, an older
        state recorded after a newer one changes nothing. ``first`` is kept for callers of
        the earlier signature and no longer matters (no row per status to delete). Raises
        ``StoreUnavailable`` if Cassandra does not acknowledge every row.
        """
        await self.record_many([delivery], [attempt] if attempt is not None else [])

    async def save_event(self, event: EventRecord) -> None:
        """Keep an event's payload for tests and manual redelivery. An idempotent upsert by
        event id stamped with its ``received_at``, with the retention TTL, LOCAL_QUORUM."""
        await self.record_many([], [], [event])

    # ── reads ─────────────────────────────────────────────────────────────────────────────

    async def get(self, delivery_id: str) -> DeliveryRecord | None:
        """The delivery's current state, or None (unknown or expired). LOCAL_QUORUM."""
        page = await aexecute(self._session, self._select_delivery, (delivery_id,))
        return delivery_record(page.rows[0], "id") if page.rows else None

    async def attempts(self, delivery_id: str) -> list[AttemptRecord]:
        """The delivery's attempts, by number (one partition, at most the retry schedule's
        length). LOCAL_QUORUM."""
        rows = await all_pages(self._session, self._select_attempts, (delivery_id,))
        return [attempt_record(row) for row in rows]

    async def get_event(
        self, event_id: str, account_id: str = DEFAULT_ACCOUNT
    ) -> EventRecord | None:
        """The account's stored event, or None (never saved, expired, or another account's:
        events are keyed by ``event_key(account, id)``). LOCAL_QUORUM."""
        page = await aexecute(self._session, self._select_event, (event_key(account_id, event_id),))
        if not page.rows:
            return None
        row = page.rows[0]
        received = from_cql(row["received_at"])
        assert received is not None  # written by every save_event()
        return EventRecord(
            id=event_id,
            type=row["type"],
            created_at=row["created_at"],
            body=bytes(row["body"] or b""),
            received_at=received,
            account_id=account_id,
        )

    async def list_by_event(
        self, event_id: str, account_id: str = DEFAULT_ACCOUNT
    ) -> list[DeliveryRecord]:
        """Every delivery of the account's event to one of the account's webhooks, one per
        webhook, by webhook id (a deleted webhook's delivery is left out).

        No table lists an event's deliveries: the account's webhook ids (one index read)
        give their delivery ids (``delivery_id(event_id, webhook_id)``), read by key,
        ``_BY_ID_CHUNK`` to a request. Two accounts may share an event id but never a
        webhook, and a row of another account is dropped all the same. LOCAL_QUORUM."""
        hooks = await all_pages(self._session, self._select_account_webhooks, (account_id,))
        ids = sorted(delivery_id(event_id, row["id"]) for row in hooks)
        chunks = [ids[i : i + _BY_ID_CHUNK] for i in range(0, len(ids), _BY_ID_CHUNK)]
        pages = await asyncio.gather(
            *(all_pages(self._session, self._select_deliveries, (chunk,)) for chunk in chunks)
        )
        found = (delivery_record(row, "id") for page in pages for row in page)
        out = [d for d in found if d.account_id == account_id and d.event_id == event_id]
        out.sort(key=lambda d: d.webhook_id)
        return out

    async def list_by_webhook(
        self,
        webhook_id: str,
        *,
        status: DeliveryStatus | None = None,
        event_type: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> DeliveryPage:
        """A page of a webhook's deliveries, newest first (by ``created_at``, then id).

        ``since``/``until`` bound ``created_at`` (inclusive; defaults: the retention window
        up to now). Follow ``next_cursor`` until it is None: every delivery in the range
        comes exactly once, whatever the page size. A page holds at most ``limit`` rows; with
        both ``status`` and ``event_type`` it may hold fewer (even none) and still carry a
        cursor, because at most 2,000 rows are examined per call. Each call reads day
        buckets from ``until`` back to ``since``: partition slices only, never a scan. A
        ``success`` filter alone reads the plain slice and filters it here while most rows
        match (``_SCANNED_STATUSES``); other filters go through the indexes. LOCAL_QUORUM.
        Raises ``ValueError`` for a malformed cursor or a limit below 1.
        """
        items, next_cursor = await self.log_page(
            webhook_id,
            _log_record,
            status=status,
            event_type=event_type,
            since=since,
            until=until,
            limit=limit,
            cursor=cursor,
        )
        return DeliveryPage(items, next_cursor)

    async def log_page(
        self,
        webhook_id: str,
        item: Callable[[Row], T],
        *,
        status: DeliveryStatus | None = None,
        event_type: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> tuple[list[T], str | None]:
        """``list_by_webhook``'s page as ``item(row)`` of each log row, and its next cursor.

        The API's page route passes a function from the row straight to the JSON item: a
        ``DeliveryRecord`` per row, then a dict of it, was most of the API's own work per
        page (BENCHMARKS.md, "Session 7: the API's page CPU"). A row has the columns
        ``delivery_id`` and ``recording.STATE``'s (timestamps as the driver returns them).
        """
        if limit < 1:
            raise ValueError("limit must be at least 1")
        position = decode_cursor(cursor) if cursor is not None else None
        now = datetime.now(UTC)
        until_ms = to_ms(until if until is not None else now)
        since_ms = to_ms(since if since is not None else now - self._retention)
        if since_ms > until_ms:
            return [], None

        log = self._logs[(status is not None, event_type is not None)]
        filters = tuple(v for v in (status and status.value, event_type) if v is not None)
        # Filter a broad status here, from the plain slice, while the rows read mostly match.
        scan = status.value if status in _SCANNED_STATUSES and event_type is None else None
        if scan is not None:
            log, filters = self._logs[(False, False)], ()
        examined = matched = 0

        if position is None or position.bucket > day_bucket(until_ms):
            position = Position(day_bucket(until_ms))
        elif position.created_ms is not None and position.created_ms > until_ms:
            position = Position(position.bucket)  # ``until`` moved below the cursor
        last_bucket = day_bucket(since_ms)
        out: list[T] = []
        last_out: Row | None = None  # the row of out[-1]: the cursor, if the page ends there
        last_bucket_out = 0  # and its bucket

        fan_out = 1  # buckets read at once from a bucket's top; doubles while they are sparse
        while position.bucket >= last_bucket:
            if scan is not None and matched < examined * _SCAN_MIN_MATCH:
                # mostly not this status after all: the index reads on after the rows read
                log, filters, scan = self._logs[(True, False)], (scan,), None
            fetch = limit - len(out) + 1  # one more than fits: is there a next page?
            if scan is not None:
                fetch += fetch // 8  # a few rows of other statuses need no second read
            if position.created_ms is None:
                buckets = range(
                    position.bucket, max(last_bucket, position.bucket - fan_out + 1) - 1, -1
                )
                pages = await asyncio.gather(
                    *(
                        aexecute(
                            self._session,
                            log.top,
                            (webhook_id, b, until_ms, since_ms, *filters, fetch),
                        )
                        for b in buckets
                    )
                )
                fan_out = min(fan_out * 2, _MAX_FAN_OUT)
            else:
                after = (position.created_ms, position.delivery_id, since_ms, *filters, fetch)
                buckets = range(position.bucket, position.bucket - 1, -1)
                pages = [
                    await aexecute(self._session, log.after, (webhook_id, position.bucket, *after))
                ]
            for bucket, page in zip(buckets, pages, strict=True):
                # Positions are built only where the walk stops (a row's costs as much as
                # the row's record): after the last row read, or the cursor after out[-1].
                for row in page.rows:
                    if scan is not None:
                        examined += 1
                        if row["status"] != scan:  # read past it
                            continue
                        matched += 1
                    if len(out) == limit:
                        assert last_out is not None
                        at = from_cql(last_out["created_at"])
                        assert at is not None
                        here = Position(last_bucket_out, to_ms(at), last_out["delivery_id"])
                        return out, encode_cursor(here)
                    out.append(item(row))
                    last_out, last_bucket_out = row, bucket
                if len(page.rows) < fetch:  # exhausted: on to the previous day
                    position = Position(bucket - 1)
                else:  # read on in this bucket after its last row; drop the older ones read
                    row = page.rows[-1]
                    created = from_cql(row["created_at"])
                    assert created is not None
                    position = Position(bucket, to_ms(created), row["delivery_id"])
                    break
        return out, None

    async def failed_between(
        self, webhook_id: str, since: datetime, until: datetime
    ) -> list[DeliveryRecord]:
        """The webhook's deliveries now ``failed`` whose ``created_at`` lies in
        [since, until], newest first (for recover). Reads the log through its status index,
        one day bucket at a time, 1,000 rows per request. LOCAL_QUORUM."""
        since_ms, until_ms = to_ms(since), to_ms(until)
        out: list[DeliveryRecord] = []
        for bucket in range(day_bucket(until_ms), day_bucket(since_ms) - 1, -1):
            rows = await all_pages(
                self._session,
                self._status_range,
                (webhook_id, bucket, until_ms, since_ms, DeliveryStatus.FAILED.value),
            )
            out.extend(delivery_record(row, "delivery_id") for row in rows)
        return out
