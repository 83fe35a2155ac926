"""② Matching, pure: an in-memory index of active webhooks by account and the event types
they want.

Every table is keyed by the account first: an event is only ever matched against its own
account's webhooks, whatever their types or wildcards (``*`` means every type *of the
account*). Exact types are a dict lookup; wildcards (``user.*``, ``*``) are prefixes checked
per dotted level of the event type, so a lookup costs O(levels), not O(webhooks).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from app.accounts import DEFAULT_ACCOUNT
from app.webhooks import Webhook


class WebhookIndex:
    """Webhooks known to this process. Not thread-safe: owned by one event loop."""

    def __init__(self, webhooks: Iterable[Webhook] = ()) -> None:
        self._by_id: dict[str, Webhook] = {}
        # (account, "user.created") -> ids; (account, "user.") -> ids of "user.*" webhooks
        self._exact: dict[tuple[str, str], set[str]] = defaultdict(set)
        self._prefix: dict[tuple[str, str], set[str]] = defaultdict(set)
        self._cache: dict[tuple[str, str], tuple[Webhook, ...]] = {}
        for webhook in webhooks:
            self.put(webhook)

    def __len__(self) -> int:
        return len(self._by_id)

    def get(self, webhook_id: str) -> Webhook | None:
        return self._by_id.get(webhook_id)

    def put(self, webhook: Webhook) -> None:
        self.remove(webhook.id)
        self._by_id[webhook.id] = webhook
        account = webhook.account_id
        for pattern in webhook.events:
            if pattern == "*":
                self._prefix[account, ""].add(webhook.id)
            elif pattern.endswith(".*"):
                self._prefix[account, pattern[:-1]].add(webhook.id)
            else:
                self._exact[account, pattern].add(webhook.id)
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

    def match(self, event_type: str, account_id: str = DEFAULT_ACCOUNT) -> tuple[Webhook, ...]:
        """The account's active webhooks subscribed to ``event_type``, in a stable order
        (by id). Never a webhook of another account."""
        hit = self._cache.get((account_id, event_type))
        if hit is not None:
            return hit
        ids = set(self._exact.get((account_id, event_type), ()))
        ids |= self._prefix.get((account_id, ""), set())
        parts = event_type.split(".")
        for level in range(1, len(parts)):
            ids |= self._prefix.get((account_id, ".".join(parts[:level]) + "."), set())
        found = tuple(
            w
            for w in sorted((self._by_id[i] for i in ids), key=lambda w: w.id)
            if w.active and w.account_id == account_id and w.subscribes_to(event_type)
        )
        self._cache[account_id, event_type] = found
        return found
