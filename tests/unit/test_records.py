"""The record log's message format, the recorder's collapse policy and the store's batch
packing: pure functions, tables of cases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest

from app.deliveries import DeliveryStatus
from app.recorder.collapse import collapse
from app.records import (
    DeliveryMessage,
    EventMessage,
    InvalidRecord,
    decode,
    encode_delivery,
    encode_event,
    from_us,
    to_us,
)
from app.store.batches import GROUP_MAX_STATEMENTS, MAX_BYTES, MAX_KEYS, Write, pack
from app.store.records import AttemptRecord, DeliveryRecord, EventRecord

T0 = datetime(2026, 1, 15, 12, 30, 0, 123456, tzinfo=UTC)


def state(did: str = "del_1", at: timedelta = timedelta(0), **changes: object) -> DeliveryRecord:
    fields: dict[str, object] = {
        "id": did, "webhook_id": "hook_1", "event_id": "evt_1", "event_type": "user.created",
        "status": DeliveryStatus.PENDING, "attempts": 0, "created_at": T0, "updated_at": T0 + at,
    }  # fmt: skip
    fields.update(changes)
    return DeliveryRecord(**fields)  # type: ignore[arg-type]


def attempt(did: str = "del_1", number: int = 1, **changes: object) -> AttemptRecord:
    fields: dict[str, object] = {
        "delivery_id": did, "number": number, "started_at": T0, "duration_ms": 12,
        "outcome": "failed",
    }  # fmt: skip
    fields.update(changes)
    return AttemptRecord(**fields)  # type: ignore[arg-type]


# ── the codec ─────────────────────────────────────────────────────────────────────────────

FULL = state(
    status=DeliveryStatus.SUCCESS, attempts=2, status_code=200, error=None,
    delivered_at=T0 + timedelta(seconds=3), next_attempt_at=None,
    updated_at=T0 + timedelta(seconds=3, microseconds=7),
)  # fmt: skip
FAILED = state(
    status=DeliveryStatus.FAILED, attempts=1, status_code=503, error="HTTP 503\nline two é",
    next_attempt_at=T0 + timedelta(seconds=30),
)  # fmt: skip
ATTEMPT = attempt(
    status_code=503, error="HTTP 503", response_excerpt='{"busy": true}\n',
    request_headers={"content-type": "application/json", "x-webhook-id": "del_1"},
)  # fmt: skip


@pytest.mark.parametrize(
    ("delivery", "attempt_"),
    [
        (state(), None),
        (FULL, attempt(outcome="success", status_code=200)),
        (FAILED, ATTEMPT),
        (state(status=DeliveryStatus.CANCELLED, error="webhook paused"), None),
        (state(created_at=datetime(1970, 1, 1, tzinfo=UTC)), attempt(duration_ms=0)),
        (state(account_id="acme"), ATTEMPT),
    ],
)
def test_a_delivery_round_trips_exactly(
    delivery: DeliveryRecord, attempt_: AttemptRecord | None
) -> None:
    value = encode_delivery(delivery, attempt_)
    assert b"\n" not in value  # the header never holds a raw newline: the body separator
    assert decode(value) == DeliveryMessage(delivery, attempt_)
    decoded = decode(value)
    assert isinstance(decoded, DeliveryMessage)
    assert decoded.delivery.updated_at == delivery.updated_at  # to the microsecond


@pytest.mark.parametrize(
    "body",
    [b"{}", b'{"id":"evt_1","data":{"s":"a\\nb","n":1e400}}', b"x" * 262_144, b"\n\n{}\n"],
)
def test_an_event_round_trips_with_its_exact_body(body: bytes) -> None:
    event = EventRecord("evt_1", "user.created", "2026-01-15T12:30:00Z", body, T0)
    value = encode_event(event)
    assert value.endswith(body)  # the signed bytes travel as they are, not re-encoded
    assert len(value) < len(body) + 200
    assert decode(value) == EventMessage(event)


CARRIED = EventRecord("evt_1", "user.created", "2026-01-15T12:30:00Z", b'{"a":"x\n"}', T0, "acme")


@pytest.mark.parametrize("event", [CARRIED, EventRecord("evt_2", "t", "c", b"", T0)])
def test_a_first_record_round_trips_with_the_event_it_carries(event: EventRecord) -> None:
    value = encode_delivery(FULL, ATTEMPT, event)
    assert value.endswith(b"\n" + event.body)  # the body raw, after the header
    assert decode(value) == DeliveryMessage(FULL, ATTEMPT, event)
    assert decode(encode_delivery(FULL, None, event)) == DeliveryMessage(FULL, None, event)


def test_an_event_keeps_its_account() -> None:
    event = EventRecord("evt_1", "user.created", "2026-01-15T12:30:00Z", b"{}", T0, "acme")
    assert decode(encode_event(event)) == EventMessage(event)


def test_a_version_1_record_is_the_default_accounts() -> None:
    fields = orjson.loads(encode_delivery(FAILED, ATTEMPT))
    v1 = orjson.dumps({**fields, "v": 1})
    decoded = decode(v1)
    assert isinstance(decoded, DeliveryMessage) and decoded.delivery == FAILED
    assert decoded.delivery.account_id == "default"
    head = orjson.dumps({"v": 1, "k": "e", "id": "evt_1", "t": "user.created", "c": "x", "r": 0})
    old_event = decode(head + b"\n{}")
    assert isinstance(old_event, EventMessage) and old_event.event.account_id == "default"


def test_the_encoding_is_compact() -> None:
    assert len(encode_delivery(FULL, attempt(outcome="success", status_code=200))) < 300


def test_times_are_exact_microseconds() -> None:
    for moment in (T0, datetime(1970, 1, 1, tzinfo=UTC), datetime(2262, 4, 11, tzinfo=UTC)):
        assert from_us(to_us(moment)) == moment
    assert to_us(datetime(1970, 1, 1, 0, 0, 1)) == 1_000_000  # naive is UTC


def _header(**fields: object) -> bytes:
    return orjson.dumps({"v": 1, "k": "d", "d": None, "a": None, **fields})


GOOD = orjson.loads(encode_delivery(FAILED, ATTEMPT))


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "json"),
        (b"", "json"),
        (b"not json", "json"),
        (b"[1,2]", "json"),
        (orjson.dumps({**GOOD, "v": 4}), "version"),
        (orjson.dumps({k: v for k, v in GOOD.items() if k != "v"}), "version"),
        (orjson.dumps({**GOOD, "k": "x"}), "kind"),
        (orjson.dumps({**GOOD, "d": GOOD["d"][:-1]}), "shape"),
        (orjson.dumps({**GOOD, "d": [*GOOD["d"][:4], "lost", *GOOD["d"][5:]]}), "shape"),
        (orjson.dumps({**GOOD, "d": [*GOOD["d"][:5], "1", *GOOD["d"][6:]]}), "shape"),
        (orjson.dumps({**GOOD, "d": [*GOOD["d"][:6], True, *GOOD["d"][7:]]}), "shape"),
        (orjson.dumps({**GOOD, "a": [*GOOD["a"][:8], {"h": 1}]}), "shape"),
        (orjson.dumps({**GOOD, "a": 7}), "shape"),
        (orjson.dumps({**GOOD, "d": [*GOOD["d"][:6], 2**62, *GOOD["d"][7:]]}), "shape"),
        (orjson.dumps(GOOD) + b"\nbody", "shape"),
        # a carried event needs its body, and a body needs its event
        (orjson.dumps({**GOOD, "e": {"id": "evt_1", "t": "t", "c": "c", "r": 0}}), "shape"),
        (orjson.dumps({**GOOD, "e": {"id": "evt_1", "t": "t", "c": "c"}}) + b"\n{}", "shape"),
        (orjson.dumps({**GOOD, "e": ["evt_1"]}) + b"\n{}", "shape"),
        (orjson.dumps({"v": 1, "k": "e", "id": "evt_1", "t": "user.created", "c": "x"}), "shape"),
        (_header(), "shape"),
    ],
)
def test_what_is_not_a_record_is_refused_with_a_reason(value: bytes | None, reason: str) -> None:
    with pytest.raises(InvalidRecord) as refused:
        decode(value)
    assert refused.value.reason == reason


# ── the collapse policy ───────────────────────────────────────────────────────────────────

S = timedelta(seconds=1)
PENDING = state()
FAILED_1 = state(status=DeliveryStatus.FAILED, attempts=1, at=1 * S, status_code=500)
SUCCESS_2 = state(status=DeliveryStatus.SUCCESS, attempts=2, at=31 * S, status_code=200)
A1 = attempt(number=1)
A1_REDONE = attempt(number=1, started_at=T0 + 2 * S, outcome="success", status_code=200)
A2 = attempt(number=2, started_at=T0 + 30 * S, outcome="success", status_code=200)
OTHER = state("del_2", status=DeliveryStatus.SUCCESS, attempts=1, at=S)


def d(delivery: DeliveryRecord, attempt_: AttemptRecord | None = None) -> DeliveryMessage:
    return DeliveryMessage(delivery, attempt_)


def ev(received: datetime, body: bytes = b"{}") -> EventMessage:
    return EventMessage(
        EventRecord("evt_1", "user.created", "2026-01-15T12:30:00Z", body, received)
    )


@pytest.mark.parametrize(
    ("batch", "states", "attempts"),
    [
        ([], [], []),
        ([d(PENDING)], [PENDING], []),
        # a whole life in one batch: one state write, every attempt row
        ([d(PENDING), d(FAILED_1, A1), d(SUCCESS_2, A2)], [SUCCESS_2], [A1, A2]),
        # a replayed older state after the newer one does not win
        ([d(SUCCESS_2, A2), d(PENDING), d(FAILED_1, A1)], [SUCCESS_2], [A2, A1]),
        # the same record twice (a redelivered hand-off): one of each
        ([d(FAILED_1, A1), d(FAILED_1, A1)], [FAILED_1], [A1]),
        # attempt 1 redone after a crash: the later attempt row wins, in its first place
        ([d(FAILED_1, A1), d(FAILED_1, A1_REDONE)], [FAILED_1], [A1_REDONE]),
        ([d(FAILED_1, A1_REDONE), d(FAILED_1, A1)], [FAILED_1], [A1_REDONE]),
        # other deliveries are independent, in first-seen order
        ([d(PENDING), d(OTHER), d(SUCCESS_2)], [SUCCESS_2, OTHER], []),
        # equal times: the later message wins
        ([d(FAILED_1), d(state(status=DeliveryStatus.CANCELLED, at=1 * S))],
         [state(status=DeliveryStatus.CANCELLED, at=1 * S)], []),
    ],
)  # fmt: skip
def test_collapse_keeps_the_latest_state_and_every_attempt(
    batch: list[DeliveryMessage],
    states: list[DeliveryRecord],
    attempts: list[AttemptRecord],
) -> None:
    collapsed = collapse(batch)
    assert collapsed.deliveries == states
    assert collapsed.attempts == attempts
    assert collapsed.events == []
    assert collapsed.rows == 2 * len(states) + len(attempts)


def test_collapse_keeps_each_event_once_the_latest_received() -> None:
    early, late = ev(T0, b'{"a":1}'), ev(T0 + S, b'{"a":2}')
    assert collapse([late, d(PENDING), early]).events == [late.event]
    assert collapse([early, late]).events == [late.event]
    assert collapse([early, d(PENDING)]).rows == 3


def test_collapse_keeps_an_event_carried_by_first_records_once() -> None:
    carried = EventRecord("evt_1", "user.created", "c", b"{}", T0)
    # two deliveries of one event (fan-out), each first record carrying it
    first_a = DeliveryMessage(state("del_a"), attempt("del_a"), carried)
    first_b = DeliveryMessage(state("del_b"), attempt("del_b"), carried)
    collapsed = collapse([first_a, first_b])
    assert collapsed.events == [carried]
    assert [x.id for x in collapsed.deliveries] == ["del_a", "del_b"]
    assert collapsed.rows == 2 * 2 + 2 + 1
    # and with a standalone message of the same event, still once (the latest received)
    later = ev(T0 + S, b"{}")
    assert collapse([first_a, later]).events == [later.event]


# ── batch packing ─────────────────────────────────────────────────────────────────────────


def w(key: object, size: int = 100, tag: int = 0) -> Write:
    return Write(statement=None, params=(tag,), key=key, size=size)  # type: ignore[arg-type]


def keys_of(request: object) -> list[object]:
    return [x.key for x in request.writes]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("writes", "expected"),
    [
        ([], []),
        ([w("a")], [["a"]]),
        # one key's writes stay together, in order, whatever comes between them
        ([w("a", tag=1), w("b"), w("a", tag=2)], [["a", "a", "b"]]),
        # at most MAX_KEYS keys in one request
        ([w(i) for i in range(MAX_KEYS + 1)], [list(range(MAX_KEYS)), [MAX_KEYS]]),
        # a large single-key group goes alone; small ones pack around it
        ([w("s1"), w("big", MAX_BYTES + 1), w("s2")], [["big"], ["s1", "s2"]]),
        # the byte budget closes a request
        ([w("a", MAX_BYTES // 2), w("b", MAX_BYTES // 2), w("c", 10)], [["a", "b"], ["c"]]),
    ],
)
def test_pack_groups_by_key_under_the_batch_limits(
    writes: list[Write], expected: list[list[object]]
) -> None:
    requests = pack(writes)
    assert [keys_of(r) for r in requests] == expected
    assert sorted(id(x) for r in requests for x in r.writes) == sorted(id(x) for x in writes)
    a_tags = [x.params[0] for r in requests for x in r.writes if x.key == "a"]  # type: ignore[index]
    assert a_tags == [x.params[0] for x in writes if x.key == "a"]  # type: ignore[index]


def test_a_huge_group_is_split_into_single_key_chunks() -> None:
    writes = [w("hot", 10) for _ in range(GROUP_MAX_STATEMENTS * 2 + 1)]
    requests = pack(writes)
    assert [len(r.writes) for r in requests] == [GROUP_MAX_STATEMENTS, GROUP_MAX_STATEMENTS, 1]
    assert all(r.keys == {"hot"} for r in requests)
    assert sum(len(r.writes) for r in requests) == len(writes)


@pytest.mark.parametrize(
    ("max_keys", "max_bytes", "sizes", "expected"),
    [
        # the recorder's limits: 17 keys of 1.4 KB in 24,000 bytes, where the defaults took 2
        (32, 24_000, [1400] * 40, [17, 17, 6]),
        (32, 60_000, [1400] * 40, [32, 8]),
        (8, 3000, [1400] * 5, [2, 2, 1]),
        # a group over the byte budget still goes alone, under any limits
        (32, 24_000, [100, 30_000, 100], [1, 2]),
    ],
)
def test_pack_takes_the_limits_it_is_given(
    max_keys: int, max_bytes: int, sizes: list[int], expected: list[int]
) -> None:
    writes = [w(i, size) for i, size in enumerate(sizes)]
    requests = pack(writes, max_keys=max_keys, max_bytes=max_bytes)
    assert [len(r.keys) for r in requests] == expected
    assert all(r.size <= max_bytes or len(r.keys) == 1 for r in requests)
