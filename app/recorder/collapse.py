"""⑤ The collapse policy: a batch of records in, the rows worth writing out. Pure.

Within one batch only the latest state of each delivery is written (a delivery that went
pending → failed → success inside 50 ms needs one state write, not three), while every
attempt row is kept (each attempt is its own row, keyed by number). "Latest" is what
Cassandra itself would keep given the rows' write timestamps: the greatest ``updated_at``
(an attempt's end, an event's ``received_at``). So collapsing changes how many rows are
written, not what the view ends up showing: writing every record of the batch one by one
would leave the same rows. (An exact tie of two different states, which Cassandra would settle
cell by cell, goes to the later message here; the worker never stamps two states alike.)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from app.accounts import event_key
from app.records import DeliveryMessage, EventMessage, Record
from app.store.records import AttemptRecord, DeliveryRecord, EventRecord


@dataclass(frozen=True, slots=True)
class Collapsed:
    """What one batch writes: one state per delivery, every attempt once, every event once."""

    deliveries: list[DeliveryRecord]
    attempts: list[AttemptRecord]
    events: list[EventRecord]

    @property
    def rows(self) -> int:
        """Cassandra rows this writes: two views per state (by id, the webhook's log), one row
        per attempt or event."""
        return 2 * len(self.deliveries) + len(self.attempts) + len(self.events)


def attempt_end(attempt: AttemptRecord) -> datetime:
    """An attempt row's write time: when its response (or failure) was known."""
    return attempt.started_at + timedelta(milliseconds=attempt.duration_ms)


def collapse(records: Iterable[Record]) -> Collapsed:
    """Collapse ``records`` (in the order they were consumed) as the module docstring says."""
    states: dict[str, DeliveryRecord] = {}
    attempts: dict[tuple[str, int], AttemptRecord] = {}
    events: dict[str, EventRecord] = {}

    def keep(event: EventRecord) -> None:
        stored_as = event_key(event.account_id, event.id)
        known = events.get(stored_as)
        if known is None or event.received_at >= known.received_at:
            events[stored_as] = event

    for record in records:
        if isinstance(record, DeliveryMessage):
            if record.event is not None:  # carried by a match's first record
                keep(record.event)
            state = record.delivery
            seen = states.get(state.id)
            if seen is None or state.updated_at >= seen.updated_at:
                states[state.id] = state
            attempt = record.attempt
            if attempt is not None:
                key = (attempt.delivery_id, attempt.number)
                had = attempts.get(key)
                if had is None or attempt_end(attempt) >= attempt_end(had):
                    attempts[key] = attempt
        elif isinstance(record, EventMessage):
            keep(record.event)
    return Collapsed(list(states.values()), list(attempts.values()), list(events.values()))
