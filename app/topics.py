"""Every Kafka topic Hookstream uses, in flow order, derived from settings.

Retry topics are named after their delay (``hookstream.retry.30s``), one per retry tier
(``app.retries.retry_tiers``): a retry goes to the largest tier not longer than its real delay,
so every message on tier T is due at least T after it was written, and the scheduler never
holds a partition's head longer than T (a retry due later hops on, see
``app.scheduler.policy.plan``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from app.retries import retry_tiers
from app.settings import Settings, format_duration


@dataclass(frozen=True, slots=True)
class Topics:
    events: str
    accounts: str  # compacted: every account's latest state, for the workers
    webhooks: str
    deliveries: str
    retries: dict[timedelta, str]
    redeliver: str
    dead: str
    records: str  # ⑤ delivery states, attempts and events, for the recorder to write
    lifecycle: str  # operator events: webhook.disabled, delivery.exhausted, … (app.lifecycle)
    replays: str  # replay jobs for the replayer (app.replay)

    @classmethod
    def from_settings(cls, settings: Settings) -> Topics:
        prefix = settings.kafka.topic_prefix
        delays = retry_tiers(settings.retry_schedule)
        return cls(
            events=settings.kafka.events_topic,
            accounts=f"{prefix}.accounts",
            webhooks=f"{prefix}.webhooks",
            deliveries=f"{prefix}.deliveries",
            retries={d: f"{prefix}.retry.{format_duration(d)}" for d in delays},
            redeliver=f"{prefix}.redeliver",
            dead=f"{prefix}.dead",
            records=f"{prefix}.records",
            lifecycle=f"{prefix}.lifecycle",
            replays=f"{prefix}.replays",
        )

    def retry_topic(self, delay: timedelta) -> str:
        return self.retries[delay]

    def retry_tier(self, topic: str) -> timedelta | None:
        """The delay of a retry topic (its tier), or None for any other topic."""
        return next((delay for delay, name in self.retries.items() if name == topic), None)

    def all(self) -> list[str]:
        """Every topic, in flow order (the order ``migrate`` creates them in)."""
        return [
            self.events,
            self.accounts,
            self.webhooks,
            self.deliveries,
            *self.retries.values(),
            self.redeliver,
            self.dead,
            self.records,
            self.lifecycle,
            self.replays,
        ]
