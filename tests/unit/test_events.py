"""① Events, pure: bytes → ``Event`` or ``InvalidEvent(reason)``; the body is compact orjson."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest

from app.errors import InvalidEvent
from app.events import MAX_ID_LENGTH, build_event, format_timestamp, parse_event, validate_fields

MAX_BYTES = 262_144  # DeliverySettings.event_max_bytes default
KAFKA_TS = 1_768_480_200_000  # 2026-01-15T12:30:00Z

SEED_EVENT: dict[str, Any] = {
    "id": "evt_abc123",
    "type": "user.created",
    "created_at": "2026-01-15T12:30:00Z",
    "data": {
        "id": "user_123",
        "name": "John Doe",
        "email": "john@example.com",
        "status": "active",
    },
}
SEED_BODY = (
    b'{"id":"evt_abc123","type":"user.created","created_at":"2026-01-15T12:30:00Z",'
    b'"data":{"id":"user_123","name":"John Doe","email":"john@example.com","status":"active"}}'
)


def parse(raw: bytes | None, *, kafka_timestamp_ms: int | None = KAFKA_TS) -> Any:
    return parse_event(raw, max_bytes=MAX_BYTES, kafka_timestamp_ms=kafka_timestamp_ms)


def event(**changes: Any) -> bytes:
    obj: dict[str, Any] = {**SEED_EVENT, **changes}
    return orjson.dumps({k: v for k, v in obj.items() if v is not _ABSENT})


_ABSENT: Any = object()


# -- valid events -------------------------------------------------------------------------------


def test_the_seed_event_parses_and_its_body_is_compact_json_in_field_order() -> None:
    got = parse(orjson.dumps(SEED_EVENT, option=orjson.OPT_INDENT_2))
    assert (got.id, got.type, got.created_at) == (
        "evt_abc123",
        "user.created",
        SEED_EVENT["created_at"],
    )
    assert got.data == SEED_EVENT["data"]
    assert got.body == SEED_BODY


def test_the_seed_manual_test_event_gets_created_at_from_the_kafka_timestamp() -> None:
    raw = b"""{
    "id": "evt_test",
    "type": "user.created",
    "data": {
      "id": "user_test",
      "name": "Test User"
    }
  }"""
    got = parse(raw)
    assert got.created_at == "2026-01-15T12:30:00Z"
    assert got.body == (
        b'{"id":"evt_test","type":"user.created","created_at":"2026-01-15T12:30:00Z",'
        b'"data":{"id":"user_test","name":"Test User"}}'
    )


@pytest.mark.parametrize(
    ("kafka_timestamp_ms", "created_at"),
    [
        (KAFKA_TS, "2026-01-15T12:30:00Z"),
        (KAFKA_TS + 123, "2026-01-15T12:30:00.123Z"),
        (KAFKA_TS + 1, "2026-01-15T12:30:00.001Z"),
        (1, "1970-01-01T00:00:00.001Z"),
    ],
)
def test_created_at_is_filled_from_the_kafka_timestamp(
    kafka_timestamp_ms: int, created_at: str
) -> None:
    got = parse(event(created_at=_ABSENT), kafka_timestamp_ms=kafka_timestamp_ms)
    assert got.created_at == created_at
    assert orjson.loads(got.body)["created_at"] == created_at


@pytest.mark.parametrize("kafka_timestamp_ms", [None, 0, -1])
def test_created_at_falls_back_to_now_without_a_usable_kafka_timestamp(
    kafka_timestamp_ms: int | None,
) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    got = parse(event(created_at=_ABSENT), kafka_timestamp_ms=kafka_timestamp_ms)
    moment = datetime.fromisoformat(got.created_at)
    assert before <= moment <= datetime.now(UTC) + timedelta(seconds=1)
    assert got.created_at.endswith("Z")


@pytest.mark.parametrize(
    "created_at",
    [
        "2026-01-15T12:30:00Z",
        "2026-01-15T12:30:00.5Z",
        "2026-01-15T12:30:00.123456789Z",
        "2026-01-15t12:30:00z",
        "2026-01-15 12:30:00+05:30",
        "2026-01-15T12:30:00-08:00",
        "2024-02-29T00:00:00Z",
    ],
)
def test_a_given_rfc3339_created_at_is_kept_as_sent(created_at: str) -> None:
    assert parse(event(created_at=created_at)).created_at == created_at


@pytest.mark.parametrize(
    "event_id",
    ["evt_abc123", "a", "x" * MAX_ID_LENGTH, "evt-1_2:3", "0196a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"],
)
def test_valid_ids(event_id: str) -> None:
    assert parse(event(id=event_id)).id == event_id


@pytest.mark.parametrize(
    "event_type", ["user.created", "payment.succeeded", "a.b", "user.profile.updated", "x1.y_2"]
)
def test_valid_types(event_type: str) -> None:
    assert parse(event(type=event_type)).type == event_type


def test_the_size_limit_is_inclusive() -> None:
    base = event(data={"pad": ""})
    raw = event(data={"pad": "x" * (MAX_BYTES - len(base))})
    assert len(raw) == MAX_BYTES
    assert parse(raw).data["pad"].startswith("x")


# -- invalid events: every reason ---------------------------------------------------------------

DEEP = b"[" * 10_000 + b"]" * 10_000
DEEP_IN_DATA = event(data={}).replace(b'"data":{}', b'"data":{"x":' + DEEP + b"}")

INVALID: list[tuple[str, bytes | None, str]] = [
    ("no value", None, "empty"),
    ("one byte over", b" " * (MAX_BYTES + 1), "too_large"),
    ("10 MB", b"{" + b" " * 10_000_000 + b"}", "too_large"),
    ("zero bytes", b"", "not_json"),
    ("garbage", b"not json", "not_json"),
    ("truncated", SEED_BODY[:-1], "not_json"),
    ("invalid UTF-8", b'{"id":"evt_\xff\xfe","type":"user.created","data":{}}', "not_json"),
    ("overlong UTF-8", b'{"id":"evt_\xc0\xaf","type":"user.created","data":{}}', "not_json"),
    ("lone surrogate", b'{"id":"evt_1","type":"user.created","data":{"s":"\\ud800"}}', "not_json"),
    ("NaN", b'{"id":"evt_1","type":"user.created","data":{"n":NaN}}', "not_json"),
    ("Infinity", b'{"id":"evt_1","type":"user.created","data":{"n":Infinity}}', "not_json"),
    ("1e400", b'{"id":"evt_1","type":"user.created","data":{"n":1e400}}', "not_json"),
    ("10k-deep nesting", DEEP, "not_json"),
    ("10k-deep nesting in data", DEEP_IN_DATA, "not_json"),
    ("trailing comma", b'{"id":"evt_1","type":"user.created","data":{},}', "not_json"),
    ("array", b"[]", "not_object"),
    ("string", b'"evt_1"', "not_object"),
    ("number", b"42", "not_object"),
    ("null", b"null", "not_object"),
    ("no id", event(id=_ABSENT), "bad_id"),
    ("null id", event(id=None), "bad_id"),
    ("empty id", event(id=""), "bad_id"),
    ("int id", event(id=123), "bad_id"),
    ("list id", event(id=["evt_1"]), "bad_id"),
    ("id too long", event(id="x" * (MAX_ID_LENGTH + 1)), "bad_id"),
    ("id with a dot", event(id="evt.1"), "bad_id"),
    ("id that is a dot", event(id="."), "bad_id"),
    ("id with a space", event(id="evt 1"), "bad_id"),
    ("id of whitespace", event(id="   "), "bad_id"),
    ("id with a tab", event(id="evt\t1"), "bad_id"),
    ("id with a newline", event(id="evt_1\n"), "bad_id"),
    ("id with CRLF", event(id="evt\r\nX-Injected: 1"), "bad_id"),
    ("id with NBSP", event(id="evt\u00a01"), "bad_id"),
    ("no type", event(type=_ABSENT), "bad_type"),
    ("null type", event(type=None), "bad_type"),
    ("int type", event(type=1), "bad_type"),
    ("empty type", event(type=""), "bad_type"),
    ("one level", event(type="user"), "bad_type"),
    ("upper case", event(type="User.Created"), "bad_type"),
    ("wildcard", event(type="user.*"), "bad_type"),
    ("star", event(type="*"), "bad_type"),
    ("trailing dot", event(type="user."), "bad_type"),
    ("leading dot", event(type=".user.created"), "bad_type"),
    ("space", event(type="user created"), "bad_type"),
    ("leading digit", event(type="1user.created"), "bad_type"),
    ("date only", event(created_at="2026-01-15"), "bad_created_at"),
    ("no zone", event(created_at="2026-01-15T12:30:00"), "bad_created_at"),
    ("epoch number", event(created_at=1768480200), "bad_created_at"),
    ("empty created_at", event(created_at=""), "bad_created_at"),
    ("words", event(created_at="yesterday"), "bad_created_at"),
    ("Feb 30", event(created_at="2026-02-30T00:00:00Z"), "bad_created_at"),
    ("hour 24", event(created_at="2026-01-15T24:00:00Z"), "bad_created_at"),
    ("leap second", event(created_at="2026-01-15T23:59:60Z"), "bad_created_at"),
    ("10 fraction digits", event(created_at="2026-01-15T12:30:00.1234567890Z"), "bad_created_at"),
    ("no data", event(data=_ABSENT), "bad_data"),
    ("null data", event(data=None), "bad_data"),
    ("list data", event(data=[1, 2]), "bad_data"),
    ("string data", event(data="{}"), "bad_data"),
]


@pytest.mark.parametrize(
    ("raw", "reason"), [(raw, reason) for _, raw, reason in INVALID], ids=[c[0] for c in INVALID]
)
def test_invalid_events_say_why(raw: bytes | None, reason: str) -> None:
    with pytest.raises(InvalidEvent) as caught:
        parse(raw)
    assert caught.value.reason == reason
    assert caught.value.detail


def test_a_null_created_at_is_filled_like_an_absent_one() -> None:
    # "created_at": null is treated as absent: the Kafka timestamp fills it.
    raw = event(created_at=None)
    assert parse(raw).created_at == "2026-01-15T12:30:00Z"


def test_the_size_check_comes_before_parsing() -> None:
    with pytest.raises(InvalidEvent) as caught:
        parse_event(SEED_BODY, max_bytes=len(SEED_BODY) - 1, kafka_timestamp_ms=KAFKA_TS)
    assert caught.value.reason == "too_large"


# Bug probes: values that pass validation must be sendable. The type travels in the
# X-Webhook-Event header and the id in webhook-id; aiohttp refuses control characters in header
# values with a ValueError, and receivers decode header bytes as latin-1, so a non-ASCII id
# changes the Standard Webhooks signature input on the receiver's side.


@pytest.mark.parametrize(
    "event_type", ["user.created\n", "payment.failed\n"], ids=["newline", "newline-2"]
)
def test_a_type_with_a_trailing_newline_is_rejected(event_type: str) -> None:
    with pytest.raises(InvalidEvent) as caught:
        parse(event(type=event_type))
    assert caught.value.reason == "bad_type"


@pytest.mark.parametrize(
    "event_id",
    ["evt\x00", "evt\x01x", "evt\x7f", "evt_\u00e9", "evt\u200b1", "evt_\U0001f600"],
    ids=["NUL", "SOH", "DEL", "e-acute", "zero-width-space", "emoji"],
)
def test_an_id_that_cannot_travel_in_an_http_header_is_rejected(event_id: str) -> None:
    with pytest.raises(InvalidEvent) as caught:
        parse(event(id=event_id))
    assert caught.value.reason == "bad_id"


# -- the body: exactly {id, type, created_at, data}, compact, byte-exact -----------------------


def test_extra_fields_are_dropped_and_field_order_is_fixed() -> None:
    raw = (
        b'{"data":{"b":1,"a":2},"extra":true,"created_at":"2026-01-15T12:30:00Z",'
        b'"type":"user.updated","id":"evt_9","meta":{"x":1}}'
    )
    got = parse(raw)
    assert got.body == (
        b'{"id":"evt_9","type":"user.updated","created_at":"2026-01-15T12:30:00Z",'
        b'"data":{"b":1,"a":2}}'
    )
    assert list(orjson.loads(got.body)) == ["id", "type", "created_at", "data"]


@pytest.mark.parametrize(
    ("data_json", "body_data"),
    [
        (
            '{"name":"Jos\u00e9 \u5f20\u4f1f \U0001f600"}',
            '{"name":"Jos\u00e9 \u5f20\u4f1f \U0001f600"}',
        ),
        (r'{"name":"Jos\u00e9"}', '{"name":"Jos\u00e9"}'),
        ('{"s":"line\\nbreak\\ttab \\" \\\\ /"}', '{"s":"line\\nbreak\\ttab \\" \\\\ /"}'),
        ('{"s":"\u2028\u2029"}', '{"s":"\u2028\u2029"}'),
        ('{"n":9007199254740993}', '{"n":9007199254740993}'),
        ('{"n":-9007199254740993}', '{"n":-9007199254740993}'),
        ('{"n":18446744073709551615}', '{"n":18446744073709551615}'),
        ('{"n":-9223372036854775808}', '{"n":-9223372036854775808}'),
        (
            '{"f":0.1,"g":-2.5,"h":1.7976931348623157e308}',
            '{"f":0.1,"g":-2.5,"h":1.7976931348623157e+308}',
        ),
        (
            '{"z":1,"a":2,"m":{"y":[1,{"b":null,"a":true}]}}',
            '{"z":1,"a":2,"m":{"y":[1,{"b":null,"a":true}]}}',
        ),
        ('{"a":1,"a":2}', '{"a":2}'),
        ('{ "a" : [ 1 , 2 ] }', '{"a":[1,2]}'),
        ("{}", "{}"),
    ],
    ids=[
        "non-ascii",
        "escaped-non-ascii",
        "escapes",
        "line-separators",
        "int>2^53",
        "int<-2^53",
        "uint64-max",
        "int64-min",
        "floats",
        "key-order-and-nesting",
        "duplicate-key-last-wins",
        "whitespace",
        "empty",
    ],
)
def test_data_reaches_the_body_byte_exactly(data_json: str, body_data: str) -> None:
    raw = (
        '{"id":"evt_1","type":"user.created","created_at":"2026-01-15T12:30:00Z","data":'
        + data_json
        + "}"
    ).encode()
    got = parse(raw)
    assert (
        got.body
        == (
            '{"id":"evt_1","type":"user.created","created_at":"2026-01-15T12:30:00Z","data":'
            + body_data
            + "}"
        ).encode()
    )


@pytest.mark.parametrize(
    "number", ["18446744073709551616", "-9223372036854775809", "123456789012345678901234567890"]
)
def test_an_int_beyond_64_bits_survives_or_is_rejected_never_rounded(number: str) -> None:
    # Row 23: ints > 2^53 survive. orjson parses ints beyond 64 bits as floats; sending
    # 1.8446744073709552e+19 for 18446744073709551616 would silently change the event.
    raw = (
        '{"id":"evt_1","type":"user.created","created_at":"2026-01-15T12:30:00Z",'
        '"data":{"n":' + number + "}}"
    ).encode()
    try:
        got = parse(raw)
    except InvalidEvent:
        return
    assert got.body.endswith(b'"data":{"n":' + number.encode() + b"}}"), got.body


# -- the pieces ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "text"),
    [
        (datetime(2026, 1, 15, 12, 30, tzinfo=UTC), "2026-01-15T12:30:00Z"),
        (datetime(2026, 1, 15, 12, 30, 0, 123_456, tzinfo=UTC), "2026-01-15T12:30:00.123Z"),
        (datetime(2026, 1, 15, 12, 30, 0, 999, tzinfo=UTC), "2026-01-15T12:30:00Z"),
        (datetime(2026, 1, 15, 12, 30, 0, 1_000, tzinfo=UTC), "2026-01-15T12:30:00.001Z"),
        (
            datetime(2026, 1, 15, 14, 30, tzinfo=timezone(timedelta(hours=2))),
            "2026-01-15T12:30:00Z",
        ),
        (
            datetime(2026, 1, 15, 7, 0, tzinfo=timezone(timedelta(hours=-5, minutes=-30))),
            "2026-01-15T12:30:00Z",
        ),
    ],
)
def test_format_timestamp(moment: datetime, text: str) -> None:
    assert format_timestamp(moment) == text


def test_build_event_serializes_once_in_field_order() -> None:
    got = build_event("evt_abc123", "user.created", "2026-01-15T12:30:00Z", SEED_EVENT["data"])
    assert got.body == SEED_BODY
    assert (got.id, got.type, got.created_at, got.data) == (
        "evt_abc123",
        "user.created",
        "2026-01-15T12:30:00Z",
        SEED_EVENT["data"],
    )


def test_validate_fields_works_on_an_already_decoded_object() -> None:
    got = validate_fields(dict(SEED_EVENT), kafka_timestamp_ms=None)
    assert got.body == SEED_BODY


def test_only_invalid_event_escapes_parse_event() -> None:
    # Bytes a fuzzer would try first: anything but InvalidEvent would stop the partition.
    samples = [
        b"\x00",
        b"\xff" * 10,
        b"{" * 100,
        b'{"id":',
        b"[" * 2000,
        b"\xef\xbb\xbf{}",
        b"1" * 5000,
    ]
    for raw in samples:
        with pytest.raises(InvalidEvent):
            parse(raw)
