"""⑤ Deliveries, attempts and events in Cassandra: the worker's write path and the log reads.

One ``record()`` per attempt keeps six views of a delivery in step: its state by id, its
attempts, the log of its webhook (all / by status / by event type, in UTC day buckets,
newest first) and the list of deliveries of its event. Every row expires after the retention.

Why no logged batch: every write is an upsert keyed by ids that are pure functions of the
delivery (or a delete of rows that must not exist), so each one can be applied, repeated or
reordered against the same record without changing the result. A logged batch would only add
atomicity across the views — at the price of a batch-log write on the hot path — and
at-least-once processing already gives convergence: a ``record()`` that fails is not
acknowledged, so the worker records the same state again.

Why an *unlogged* batch rather than concurrent requests: cost, not atomicity. The driver
spends its CPU per request, so one request carrying the six view writes costs a fraction of
six requests (measured: about a third of the client CPU per ``record()``), in the same one
round trip. The batch touches eight partitions, under Cassandra's warning threshold of ten
for unlogged batches across partitions, and stays well under its 5 KiB size warning unless
an error message runs to several hundred characters. The attempt row, which carries the
response excerpt and headers, is sent beside it, concurrently.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime

from cassandra.query import PreparedStatement

from app.deliveries import DeliveryStatus
from app.settings import Settings
from app.store import schema
from app.store.records import AttemptRecord, DeliveryPage, DeliveryRecord, EventRecord
from app.store.rows import attempt_record, attempt_values, delivery_record, delivery_state
from app.store.session import (
    CassandraSession,
    Params,
    aexecute,
    aexecute_batch,
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

_STATE = (
    "webhook_id, event_id, event_type, status, attempts, created_at, updated_at, "
    "status_code, error, delivered_at, next_attempt_at"
)
_STATE_MARKS = ", ".join("?" * 11)
_ATTEMPT = (
    "delivery_id, number, started_at, duration_ms, outcome, status_code, error, "
    "response_excerpt, request_headers"
)

# With both filters the type table is read and status filtered here: at most this many rows
# are read per request, in chunks of _FILTER_CHUNK; a short page then carries a cursor.
_FILTER_SCAN_BUDGET = 2000
_FILTER_CHUNK = 200
# Day buckets read concurrently once the walk finds them sparse (1, 2, 4, then 8 at a time),
# so a quiet webhook's 30 empty days cost a handful of round trips, not thirty.
_MAX_FAN_OUT = 8


@dataclass(frozen=True, slots=True)
class _Log:
    """One delivery-log table: how to read a page of a bucket from the top or after a row."""

    top: PreparedStatement
    after: PreparedStatement


class DeliveryRepository:
    """The worker's record of attempts, and the API's reads of the delivery log.

    Construct it off the event loop (it prepares its statements, which blocks); ``Store``
    does. Writes and reads run at LOCAL_QUORUM. Every method raises ``StoreUnavailable``
    when Cassandra does not answer (after the driver's retries of idempotent writes).
    """

    def __init__(self, session: CassandraSession, settings: Settings) -> None:
        self._session = session
        self._retention = settings.cassandra.retention
        ks = settings.cassandra.keyspace
        ttl = f"USING TTL {schema.ttl_seconds(settings)}"

        def insert(table: str, key_columns: str, marks: int) -> PreparedStatement:
            values = ", ".join("?" * marks)
            return prepare(
                session,
                f"INSERT INTO {table} ({key_columns}, {_STATE}) "
                f"VALUES ({values}, {_STATE_MARKS}) {ttl}",
            )

        def p(cql: str) -> PreparedStatement:
            return prepare(session, cql)

        self._insert_delivery = insert(f"{ks}.{schema.DELIVERIES}", "id", 1)
        self._insert_by_webhook = insert(f"{ks}.{schema.BY_WEBHOOK}", "bucket, delivery_id", 2)
        self._insert_by_status = insert(
            f"{ks}.{schema.BY_WEBHOOK_STATUS}", "bucket, delivery_id", 2
        )
        self._insert_by_type = insert(f"{ks}.{schema.BY_WEBHOOK_TYPE}", "bucket, delivery_id", 2)
        self._insert_by_event = insert(f"{ks}.{schema.BY_EVENT}", "delivery_id", 1)
        # The delivery's row leaves every status but its current one. A multi-partition
        # delete with IN on a partition key column: one request, idempotent.
        self._delete_other_statuses = p(
            f"DELETE FROM {ks}.{schema.BY_WEBHOOK_STATUS} WHERE webhook_id = ? AND status IN ? "
            "AND bucket = ? AND created_at = ? AND delivery_id = ?"
        )
        self._insert_attempt = p(
            f"INSERT INTO {ks}.{schema.ATTEMPTS} ({_ATTEMPT}) VALUES ({', '.join('?' * 9)}) {ttl}"
        )
        self._select_delivery = p(f"SELECT id, {_STATE} FROM {ks}.{schema.DELIVERIES} WHERE id = ?")
        self._select_attempts = p(
            f"SELECT {_ATTEMPT} FROM {ks}.{schema.ATTEMPTS} "
            "WHERE delivery_id = ? ORDER BY number ASC"
        )
        self._select_by_event = p(
            f"SELECT delivery_id, {_STATE} FROM {ks}.{schema.BY_EVENT} WHERE event_id = ?"
        )
        self._insert_event = p(
            f"INSERT INTO {ks}.{schema.EVENTS} (id, type, created_at, body, received_at) "
            f"VALUES (?, ?, ?, ?, ?) {ttl}"
        )
        self._select_event = p(
            f"SELECT id, type, created_at, body, received_at FROM {ks}.{schema.EVENTS} WHERE id = ?"
        )
        self._event_exists = p(f"SELECT id FROM {ks}.{schema.EVENTS} WHERE id = ?")

        def log(table: str, partition: str) -> _Log:
            head = f"SELECT delivery_id, {_STATE} FROM {table} WHERE {partition} AND bucket = ?"
            return _Log(
                top=p(f"{head} AND created_at <= ? AND created_at >= ? LIMIT ?"),
                after=p(
                    f"{head} AND (created_at, delivery_id) < (?, ?) AND created_at >= ? LIMIT ?"
                ),
            )

        self._log_all = log(f"{ks}.{schema.BY_WEBHOOK}", "webhook_id = ?")
        self._log_status = log(f"{ks}.{schema.BY_WEBHOOK_STATUS}", "webhook_id = ? AND status = ?")
        self._log_type = log(f"{ks}.{schema.BY_WEBHOOK_TYPE}", "webhook_id = ? AND event_type = ?")
        self._status_range = p(
            f"SELECT delivery_id, {_STATE} FROM {ks}.{schema.BY_WEBHOOK_STATUS} "
            "WHERE webhook_id = ? AND status = ? AND bucket = ? "
            "AND created_at <= ? AND created_at >= ?"
        )

    # ── the worker's write path ───────────────────────────────────────────────────────────

    async def record(
        self, delivery: DeliveryRecord, attempt: AttemptRecord | None, *, first: bool = False
    ) -> None:
        """Record an attempt (if any) and the delivery's state it led to, in every view.

        Called by the worker after every attempt, and with ``attempt=None`` for a state
        without a request (pending, cancelled). Idempotent: recording the same arguments
        again leaves the same rows (rows are keyed by delivery id, attempt number and the
        delivery's stable ``created_at``). Successive states of one delivery must be
        recorded in order (the worker owning its partition does): the status views follow
        the latest write. Two requests at LOCAL_QUORUM, concurrently — the six view writes
        in one unlogged batch, and the attempt row — each retried on timeouts (both are
        idempotent); returns once both are acknowledged. Raises
        ``StoreUnavailable`` if it is not — some views may then be ahead of others until the
        same call is repeated.

        ``first=True`` says no earlier state of this delivery was ever recorded (its first
        attempt from the match step), so there is no row under another status to delete:
        the common path skips a delete that would write tombstones into three partitions.
        """
        created_ms = to_ms(delivery.created_at)
        bucket = day_bucket(created_ms)
        state = delivery_state(delivery, created_ms)
        others = [s.value for s in DeliveryStatus if s is not delivery.status]
        views: list[tuple[PreparedStatement, Params]] = [
            (self._insert_delivery, (delivery.id, *state)),
            (self._insert_by_webhook, (bucket, delivery.id, *state)),
            (self._insert_by_status, (bucket, delivery.id, *state)),
            (self._insert_by_type, (bucket, delivery.id, *state)),
            (self._insert_by_event, (delivery.id, *state)),
        ]
        if not first:
            views.append(
                (
                    self._delete_other_statuses,
                    (delivery.webhook_id, others, bucket, created_ms, delivery.id),
                )
            )
        if attempt is None:
            await aexecute_batch(self._session, views)
            return
        # The attempt row (response excerpt, headers) goes beside the batch, not in it: it
        # is the bulky part and would push the batch past the server's size warning.
        written = await asyncio.gather(
            aexecute_batch(self._session, views),
            aexecute(self._session, self._insert_attempt, attempt_values(attempt)),
            return_exceptions=True,
        )
        for outcome in written:  # both have settled; report the first failure
            if isinstance(outcome, BaseException):
                raise outcome

    async def save_event(self, event: EventRecord) -> None:
        """Keep an event's payload for tests and manual redelivery. An idempotent upsert by
        event id, with the retention TTL, LOCAL_QUORUM."""
        await aexecute(
            self._session,
            self._insert_event,
            (event.id, event.type, event.created_at, event.body, event.received_at),
        )

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

    async def event_exists(self, event_id: str) -> bool:
        """Whether the event was saved (and has not expired): the match step's dedupe check.
        Reads the key only, never the payload (up to 256 KB). LOCAL_QUORUM."""
        page = await aexecute(self._session, self._event_exists, (event_id,))
        return bool(page.rows)

    async def get_event(self, event_id: str) -> EventRecord | None:
        """The stored event, or None (never saved, or expired). LOCAL_QUORUM."""
        page = await aexecute(self._session, self._select_event, (event_id,))
        if not page.rows:
            return None
        row = page.rows[0]
        received = from_cql(row["received_at"])
        assert received is not None  # written by every save_event()
        return EventRecord(
            id=row["id"],
            type=row["type"],
            created_at=row["created_at"],
            body=bytes(row["body"] or b""),
            received_at=received,
        )

    async def list_by_event(self, event_id: str) -> list[DeliveryRecord]:
        """Every delivery of an event, one per webhook, by webhook id (one partition, one
        row per matched webhook). LOCAL_QUORUM."""
        rows = await all_pages(self._session, self._select_by_event, (event_id,))
        return [delivery_record(row, "delivery_id") for row in rows]

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
        buckets from ``until`` back to ``since``: partition slices only, never a scan.
        LOCAL_QUORUM. Raises ``ValueError`` for a malformed cursor or a limit below 1.
        """
        if limit < 1:
            raise ValueError("limit must be at least 1")
        position = decode_cursor(cursor) if cursor is not None else None
        now = datetime.now(UTC)
        until_ms = to_ms(until if until is not None else now)
        since_ms = to_ms(since if since is not None else now - self._retention)
        if since_ms > until_ms:
            return DeliveryPage([], None)

        partition: tuple[str, ...]
        if event_type is not None:
            log, partition = self._log_type, (webhook_id, event_type)
        elif status is not None:
            log, partition = self._log_status, (webhook_id, status.value)
        else:
            log, partition = self._log_all, (webhook_id,)
        wanted = status.value if (status is not None and event_type is not None) else None

        if position is None or position.bucket > day_bucket(until_ms):
            position = Position(day_bucket(until_ms))
        elif position.created_ms is not None and position.created_ms > until_ms:
            position = Position(position.bucket)  # ``until`` moved below the cursor
        last_bucket = day_bucket(since_ms)
        out: list[DeliveryRecord] = []
        last_out: Position | None = None
        budget = _FILTER_SCAN_BUDGET

        fan_out = 1  # buckets read at once from a bucket's top; doubles while they are sparse
        while position.bucket >= last_bucket:
            need = limit - len(out) + 1  # one more than fits: is there a next page?
            fetch = need if wanted is None else max(need, _FILTER_CHUNK)
            if position.created_ms is None:
                buckets = range(
                    position.bucket, max(last_bucket, position.bucket - fan_out + 1) - 1, -1
                )
                pages = await asyncio.gather(
                    *(
                        aexecute(self._session, log.top, (*partition, b, until_ms, since_ms, fetch))
                        for b in buckets
                    )
                )
                fan_out = min(fan_out * 2, _MAX_FAN_OUT)
            else:
                after = (position.created_ms, position.delivery_id, since_ms, fetch)
                buckets = range(position.bucket, position.bucket - 1, -1)
                pages = [
                    await aexecute(self._session, log.after, (*partition, position.bucket, *after))
                ]
            for bucket, page in zip(buckets, pages, strict=True):
                for row in page.rows:
                    record = delivery_record(row, "delivery_id")
                    here = Position(bucket, to_ms(record.created_at), record.id)
                    if wanted is not None and record.status.value != wanted:
                        position = here
                        continue
                    if len(out) == limit:
                        assert last_out is not None
                        return DeliveryPage(out, encode_cursor(last_out))
                    out.append(record)
                    position = last_out = here
                budget -= len(page.rows)
                exhausted = len(page.rows) < fetch
                if exhausted:  # on to the previous day
                    position = Position(bucket - 1)
                if wanted is not None and budget <= 0 and position.bucket >= last_bucket:
                    return DeliveryPage(out, encode_cursor(position))
                if not exhausted:  # read on in this bucket; drop the older ones read ahead
                    break
        return DeliveryPage(out, None)

    async def failed_between(
        self, webhook_id: str, since: datetime, until: datetime
    ) -> list[DeliveryRecord]:
        """The webhook's deliveries now ``failed`` whose ``created_at`` lies in
        [since, until], newest first (for recover). Reads the status view, one day bucket
        at a time, 1,000 rows per request. LOCAL_QUORUM."""
        since_ms, until_ms = to_ms(since), to_ms(until)
        out: list[DeliveryRecord] = []
        for bucket in range(day_bucket(until_ms), day_bucket(since_ms) - 1, -1):
            rows = await all_pages(
                self._session,
                self._status_range,
                (webhook_id, DeliveryStatus.FAILED.value, bucket, until_ms, since_ms),
            )
            out.extend(delivery_record(row, "delivery_id") for row in rows)
        return out
