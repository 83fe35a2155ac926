"""② Matching, pure: an in-memory index of active webhooks by the event types they want.

Exact types are a dict lookup; wildcards (``user.*``, ``*``) are prefixes checked per dotted
level of the event type, so a lookup costs O(levels), not O(webhooks).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from app.webhooks import Webhook


class WebhookIndex:
    """Webhooks known to this process. Not thread-safe: owned by one event loop."""

    def __init__(self, webhooks: Iterable[Webhook] = ()) -> None:
        self._by_id: dict[str, Webhook] = {}
        self._exact: dict[str, set[str]] = defaultdict(set)
        self._prefix: dict[str, set[str]] = defaultdict(set)  # "user." -> ids
        self._cache: dict[str, tuple[Webhook, ...]] = {}
        for webhook in webhooks:
            self.put(webhook)

    def __len__(self) -> int:
        return len(self._by_id)

    def get(self, webhook_id: str) -> Webhook | None:
        return self._by_id.get(webhook_id)

    def put(self, webhook: Webhook) -> None:
        self.remove(webhook.id)
        self._by_id[webhook.id] = webhook
        for pattern in webhook.events:
            if pattern == "*":
                self._prefix[""].add(webhook.id)
            elif pattern.endswith(".*"):
                self._prefix[pattern[:-1]].add(webhook.id)
            else:
                self._exact[pattern].add(webhook.id)
        self._cache.clear()

    def remove(self, webhook_id: str) -> None:
        old = self._by_id.pop(webhook_id, None)
        if old is None:
            return
        for table in (self._exact, self._prefix):
            for ids in table.values():
                ids.discard(webhook_id)
        self._cache.clear()

    def replace_all(self, webhooks: Iterable[Webhook]) -> None:
        fresh = WebhookIndex(webhooks)
        self._by_id, self._exact, self._prefix = fresh._by_id, fresh._exact, fresh._prefix
        self._cache.clear()

    def match(self, event_type: str) -> tuple[Webhook, ...]:
        """Active webhooks subscribed to ``event_type``, in a stable order (by id)."""
        hit = self._cache.get(event_type)
        if hit is not None:
            return hit
        ids = set(self._exact.get(event_type, ()))
        ids |= self._prefix.get("", set())
        parts = event_type.split(".")
        for level in range(1, len(parts)):
            ids |= self._prefix.get(".".join(parts[:level]) + ".", set())
        found = tuple(
            w
            for w in sorted((self._by_id[i] for i in ids), key=lambda w: w.id)
            if w.active and w.subscribes_to(event_type)
        )
        self._cache[event_type] = found
        return found
