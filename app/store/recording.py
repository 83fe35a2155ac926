"""⑤ Writing records: delivery states, attempts and events into their Cassandra views.

The recorder's write path (``DeliveryRepository.record_many`` delegates here). A delivery's
state goes to two tables (by id, and the webhook's log), an attempt and an event to one each;
every row is an upsert stamped ``USING TIMESTAMP`` with the record's own time (see
``app.store.deliveries``), so writes may be repeated, reordered and sent concurrently. An
event's deliveries need no table of their own: delivery ids derive from (event id, webhook
id), so ``list_by_event`` reads them by id (measured without the third copy of the state:
Cassandra 686 -> 574 µs of CPU per delivery, the recorder 219 -> 200 µs, ``bench.record_cost``).

What a row costs here is what the recorder spends per delivery, so the rows are built
straight into the driver's wire values (``app.store.batches.Binder``): a state is serialised
once and shared by its two statements, timestamps go as integer milliseconds, and the
requests are packed by partition key (``app.store.batches.pack``), up to
``settings.recorder.request_keys`` keys and ``request_bytes`` bytes each.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from cassandra.query import UNSET_VALUE

from app.accounts import event_key
from app.settings import Settings
from app.store import schema
from app.store.batches import Binder, Request, Write, bound, pack, serialize, serialized_size
from app.store.records import AttemptRecord, DeliveryRecord, EventRecord
from app.store.session import CassandraSession, aexecute, aexecute_batch, prepare
from app.store.timeline import EPOCH, day_bucket, to_ms

STATE = (
    "webhook_id, event_id, event_type, status, attempts, created_at, updated_at, "
    "status_code, error, delivered_at, next_attempt_at, account_id"
)
ATTEMPT = (
    "delivery_id, number, started_at, duration_ms, outcome, status_code, error, "
    "response_excerpt, sent_headers"  # not request_headers: see schema.ADDED_COLUMNS
)
_US = timedelta(microseconds=1)


class RecordWriter:
    """Upserts records into every view. Construct it off the event loop (it prepares its
    statements, which blocks). Writes run at the session's consistency (LOCAL_QUORUM)."""

    def __init__(self, session: CassandraSession, settings: Settings) -> None:
        self._session = session
        self._max_keys = settings.recorder.request_keys
        self._max_bytes = settings.recorder.request_bytes
        ks = settings.cassandra.keyspace
        # TTL from settings, write time from each record (microseconds, bound per row).
        using = f"USING TTL {schema.ttl_seconds(settings)} AND TIMESTAMP ?"
        marks = ", ".join("?" * 12)

        def insert(table: str, key_columns: str, keys: int) -> Binder:
            values = ", ".join("?" * keys)
            return Binder(
                prepare(
                    session,
                    f"INSERT INTO {ks}.{table} ({key_columns}, {STATE}) "
                    f"VALUES ({values}, {marks}) {using}",
                )
            )

        self._delivery = insert(schema.DELIVERIES, "id", 1)
        self._by_webhook = insert(schema.BY_WEBHOOK, "bucket, delivery_id", 2)
        # The state's twelve columns: serialised once per delivery for both tables.
        self._state = self._delivery.serializers[1:13]
        self._attempt = Binder(
            prepare(
                session,
                f"INSERT INTO {ks}.{schema.ATTEMPTS} ({ATTEMPT}) "
                f"VALUES ({', '.join('?' * 9)}) {using}",
            )
        )
        self._event = Binder(
            prepare(
                session,
                f"INSERT INTO {ks}.{schema.EVENTS} "
                "(id, type, created_at, body, received_at, account_id) "
                f"VALUES (?, ?, ?, ?, ?, ?) {using}",
            )
        )

    async def write(
        self,
        deliveries: Sequence[DeliveryRecord],
        attempts: Sequence[AttemptRecord] = (),
        events: Sequence[EventRecord] = (),
        *,
        concurrency: int = 32,
    ) -> int:
        """Write every row in as few requests as the batch limits allow, at most
        ``concurrency`` in flight; return the number of rows. Raises ``StoreUnavailable``
        (after every request has settled) if any was not acknowledged: writing the same
        records again is the remedy. See ``DeliveryRepository.record_many``."""
        writes = self.writes(deliveries, attempts, events)
        requests = pack(writes, max_keys=self._max_keys, max_bytes=self._max_bytes)
        if not requests:
            return 0
        gate = asyncio.Semaphore(concurrency)

        async def send(request: Request) -> None:
            async with gate:
                if len(request.writes) == 1:
                    (one,) = request.writes
                    await aexecute(self._session, bound(one.statement, one.params))
                else:
                    await aexecute_batch(
                        self._session,
                        [(bound(w.statement, w.params), None) for w in request.writes],
                    )

        outcomes = await asyncio.gather(*(send(r) for r in requests), return_exceptions=True)
        for outcome in outcomes:  # all have settled; report the first failure
            if isinstance(outcome, BaseException):
                raise outcome
        return len(writes)

    def writes(
        self,
        deliveries: Sequence[DeliveryRecord],
        attempts: Sequence[AttemptRecord],
        events: Sequence[EventRecord],
    ) -> list[Write]:
        """The rows of the records, each as its statement and serialised values."""
        out: list[Write] = []
        delivery, by_webhook = self._delivery.statement, self._by_webhook.statement
        stamp_of = self._delivery.serializers[13]
        bucket_of = self._by_webhook.serializers[0]
        for d in deliveries:
            created_ms = to_ms(d.created_at)
            bucket = day_bucket(created_ms)
            # None is written as null on purpose: a later state must clear an earlier error.
            state = serialize(
                self._state,
                (
                    d.webhook_id, d.event_id, d.event_type, d.status.value, d.attempts,
                    created_ms, _ms(d.updated_at), d.status_code, d.error,
                    _opt_ms(d.delivered_at), _opt_ms(d.next_attempt_at), d.account_id,
                ),
            )  # fmt: skip
            id_ = d.id.encode()
            stamp = stamp_of(_us(d.updated_at))
            size = serialized_size(state) + len(id_)
            out += [
                Write(delivery, [id_, *state, stamp], d.id, size),
                Write(
                    by_webhook,
                    [bucket_of(bucket), id_, *state, stamp],
                    (d.webhook_id, bucket),
                    size,
                ),
            ]
        attempt_statement = self._attempt.statement
        for a in attempts:
            # Written once (or rewritten identically): unset instead of null leaves no
            # tombstones behind.
            values = self._attempt.values(
                (
                    a.delivery_id, a.number, _ms(a.started_at), a.duration_ms, a.outcome,
                    _unset(a.status_code), _unset(a.error), _unset(a.response_excerpt),
                    dict(a.request_headers) if a.request_headers else UNSET_VALUE,
                    _us(a.started_at) + a.duration_ms * 1000,
                )
            )  # fmt: skip
            out.append(Write(attempt_statement, values, a.delivery_id, serialized_size(values)))
        event_statement = self._event.statement
        for e in events:
            key = event_key(e.account_id, e.id)
            values = self._event.values(
                (
                    key, e.type, e.created_at, e.body, _ms(e.received_at), e.account_id,
                    _us(e.received_at),
                )
            )  # fmt: skip
            out.append(Write(event_statement, values, key, serialized_size(values)))
        return out


def _unset(value: object) -> object:
    return UNSET_VALUE if value is None else value


def _us(moment: datetime) -> int:
    """A record's time as a Cassandra write timestamp (µs since the epoch, exact)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - EPOCH) // _US


def _ms(moment: datetime) -> int:
    """A CQL timestamp value: milliseconds since the epoch, truncated as the driver does."""
    return _us(moment) // 1000


def _opt_ms(moment: datetime | None) -> int | None:
    return None if moment is None else _ms(moment)
