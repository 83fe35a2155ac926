"""Every Kafka topic Hookstream uses, in flow order, derived from settings.

Retry topics are named after their delay (``hookstream.retry.30s``): each holds messages of one
constant delay, so the head of every partition is always the earliest due.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from app.settings import Settings, format_duration


@dataclass(frozen=True, slots=True)
class Topics:
    events: str
    webhooks: str
    deliveries: str
    retries: dict[timedelta, str]
    redeliver: str
    dead: str

    @classmethod
    def from_settings(cls, settings: Settings) -> Topics:
        prefix = settings.kafka.topic_prefix
        delays = sorted({d for d in settings.retry_schedule[1:]})
        return cls(
            events=settings.kafka.events_topic,
            webhooks=f"{prefix}.webhooks",
            deliveries=f"{prefix}.deliveries",
            retries={d: f"{prefix}.retry.{format_duration(d)}" for d in delays},
            redeliver=f"{prefix}.redeliver",
            dead=f"{prefix}.dead",
        )

    def retry_topic(self, delay: timedelta) -> str:
        return self.retries[delay]

    def all(self) -> list[str]:
        """Every topic, in flow order (the order ``migrate`` creates them in)."""
        return [
            self.events,
            self.webhooks,
            self.deliveries,
            *self.retries.values(),
            self.redeliver,
            self.dead,
        ]
