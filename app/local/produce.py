"""``hookstream produce``: events from flags, a file or stdin, validated, then produced with
confluent-kafka (idempotent, acks=all); a delivery report error fails the command."""

from __future__ import annotations

import secrets
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import KafkaError, Producer

from app.accounts import ACCOUNT_HEADER
from app.errors import HandOffError, InvalidEvent
from app.events import Event, format_timestamp, validate_fields
from app.kafka import client_config
from app.settings import Settings


def new_event_id() -> str:
    return "evt_" + secrets.token_hex(10)


def events_from_options(
    event_type: str | None, data: str | None, event_id: str | None, file: Path | None
) -> list[Event]:
    """Build and validate the events; raises InvalidEvent naming what is wrong."""
    objects: list[Any]
    if file is not None:
        raw = sys.stdin.buffer.read() if str(file) == "-" else file.read_bytes()
        try:
            loaded = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise InvalidEvent("not_json", str(exc)) from None
        objects = loaded if isinstance(loaded, list) else [loaded]
    else:
        if event_type is None:
            raise InvalidEvent("bad_type", "give --type (and --data) or --file")
        try:
            payload = orjson.loads(data) if data else {}
        except orjson.JSONDecodeError as exc:
            raise InvalidEvent("bad_data", f"--data is not JSON: {exc}") from None
        objects = [{"id": event_id or new_event_id(), "type": event_type, "data": payload}]
    events = []
    now = format_timestamp(datetime.now(UTC))
    for obj in objects:
        if not isinstance(obj, dict):
            raise InvalidEvent("not_object", "each event must be a JSON object")
        filled = {"id": new_event_id(), "created_at": now, **obj}
        events.append(validate_fields(filled, kafka_timestamp_ms=None))
    return events


def produce_events(
    settings: Settings,
    events: list[Event],
    progress: Callable[[str], None] | None = None,
    account: str | None = None,
) -> int:
    """Produce ``events``, with the ``hookstream-account`` header when ``account`` is given
    (without it they belong to the default account); returns how many were produced."""
    headers = [(ACCOUNT_HEADER, account.encode())] if account else None
    producer = Producer(
        {
            **client_config(settings),
            "enable.idempotence": True,
            "acks": "all",
        }
    )
    errors: list[str] = []

    def report(err: KafkaError | None, _msg: object) -> None:
        if err is not None:
            errors.append(err.str())

    for count, event in enumerate(events, 1):
        producer.produce(
            settings.kafka.events_topic,
            event.body,
            key=event.id.encode(),
            headers=headers,
            on_delivery=report,
        )
        producer.poll(0)
        if progress and count % 1000 == 0:
            progress(f"produced {count}/{len(events)}")
    remaining = producer.flush(30)
    if remaining or errors:
        raise HandOffError(f"{remaining} unsent, errors: {errors[:3]}")
    return len(events)
