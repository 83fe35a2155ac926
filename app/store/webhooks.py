"""⑤ Webhooks in Cassandra: the source of truth for subscriptions (table ``webhooks``).

Webhook rows never expire; they live until deleted. All statements are prepared once, at
construction, at LOCAL_QUORUM.
"""

from __future__ import annotations

from app.accounts import DEFAULT_ACCOUNT
from app.filters import filter_from_json
from app.keyring import key_ring
from app.settings import Settings
from app.store.session import CassandraSession, Row, aexecute, all_pages, prepare
from app.store.timeline import decode_id, encode_id, from_cql
from app.webhooks import PreviousSecret, Webhook

_COLUMNS = (
    "id, url, events, secret, active, description, metadata, created_at, updated_at, account_id,"
    " previous_secrets, disabled_reason, disabled_at"
)
# The filter (app.filters) as JSON text, null for none.
_COLUMNS += ", filter"
_COLUMNS += ", headers"  # custom request headers (app.webhooks.validate_headers)
_COLUMNS += ", rate_limit"  # deliveries per second at most (app.worker.ratelimit)
_MARKS = ", ".join("?" for _ in _COLUMNS.split(","))


class WebhookRepository:
    """Create, read, update, delete and page through webhooks.

    Construct it off the event loop (it prepares its statements, which blocks); ``Store``
    does. Every method raises ``StoreUnavailable`` when Cassandra does not answer.
    """

    def __init__(self, session: CassandraSession, settings: Settings) -> None:
        self._session = session
        # Secrets are sealed in every row written and opened in every row read (app.keyring).
        self._ring = key_ring(settings)
        table = f"{settings.cassandra.keyspace}.webhooks"
        self._upsert = prepare(
            session,
            f"INSERT INTO {table} ({_COLUMNS}) VALUES ({_MARKS})",
        )
        self._select = prepare(session, f"SELECT {_COLUMNS} FROM {table} WHERE id = ?")
        self._delete = prepare(session, f"DELETE FROM {table} WHERE id = ?")
        self._scan = prepare(session, f"SELECT {_COLUMNS} FROM {table}")
        # An account's webhooks, through the SAI index on account_id, in token order.
        self._first = prepare(
            session, f"SELECT {_COLUMNS} FROM {table} WHERE account_id = ? LIMIT ?"
        )
        self._after = prepare(
            session,
            f"SELECT {_COLUMNS} FROM {table} WHERE account_id = ? AND token(id) > token(?) LIMIT ?",
        )
        self._ids = prepare(session, f"SELECT id FROM {table} WHERE account_id = ? LIMIT ?")

    async def create(self, webhook: Webhook) -> None:
        """Store a new webhook. An upsert by id: repeating it is harmless (LOCAL_QUORUM)."""
        await self._write(webhook)

    async def get(self, webhook_id: str) -> Webhook | None:
        """The webhook, or None if there is none with this id (LOCAL_QUORUM read)."""
        page = await aexecute(self._session, self._select, (webhook_id,))
        return self._ring.open_webhook(_webhook(page.rows[0])) if page.rows else None

    async def update(self, webhook: Webhook) -> None:
        """Replace every field of the webhook. An idempotent upsert: it does not check that
        the webhook exists (callers ``get`` first to answer 404), LOCAL_QUORUM."""
        await self._write(webhook)

    async def delete(self, webhook_id: str) -> None:
        """Delete the webhook; idempotent (deleting a missing id is not an error). Its
        deliveries stay readable until their TTL. LOCAL_QUORUM."""
        await aexecute(self._session, self._delete, (webhook_id,))

    async def list_page(
        self, limit: int, cursor: str | None = None, account_id: str = DEFAULT_ACCOUNT
    ) -> tuple[list[Webhook], str | None]:
        """One page of at most ``limit`` of the account's webhooks (in token order, not by
        date) and the cursor of the next page, or None after the last one. Every webhook
        that exists for the whole walk appears exactly once; the last page may come back
        empty. LOCAL_QUORUM.

        The cursor is opaque to callers (base64url of the account and the last id; the next
        page starts after its token) and belongs to its account: another account's cursor is
        a ``ValueError``, never a page. Not the driver's paging state on purpose: Cassandra
        answers a forged paging state with a protocol error that makes the driver close the
        connection and mark the host down, so a bad cursor from the API would be an outage.
        Raises ``ValueError`` for a malformed or foreign cursor or a limit below 1.
        """
        if limit < 1:
            raise ValueError("limit must be at least 1")
        if cursor is None:
            page = await aexecute(self._session, self._first, (account_id, limit))
        else:
            owner, _, last_id = decode_id(cursor).partition("/")
            if owner != account_id or not last_id:
                raise ValueError("the cursor belongs to another list")
            page = await aexecute(self._session, self._after, (account_id, last_id, limit))
        webhooks = [self._ring.open_webhook(_webhook(row)) for row in page.rows]
        next_cursor = (
            encode_id(f"{account_id}/{webhooks[-1].id}") if len(webhooks) == limit else None
        )
        return webhooks, next_cursor

    async def count(self, account_id: str, up_to: int = 100_000) -> int:
        """How many webhooks the account has, counting at most ``up_to`` (its limit's
        measure). The ids through the account index, counted here: a CQL COUNT over an index
        makes Cassandra warn of an aggregation without a partition key on every call."""
        rows = await all_pages(self._session, self._ids, (account_id, up_to))
        return len(rows)

    async def all(self) -> list[Webhook]:
        """Every webhook (the workers' periodic reload), paged 1,000 at a time without
        blocking the loop. The table is small: one row per subscription."""
        rows = await all_pages(self._session, self._scan, None)
        return [self._ring.open_webhook(_webhook(row)) for row in rows]

    async def _write(self, webhook: Webhook) -> None:
        webhook = self._ring.seal_webhook(webhook)
        await aexecute(
            self._session,
            self._upsert,
            (
                webhook.id,
                webhook.url,
                list(webhook.events),
                webhook.secret,
                webhook.active,
                webhook.description,
                dict(webhook.metadata),
                webhook.created_at,
                webhook.updated_at,
                webhook.account_id,
                [(p.secret, p.expires_at) for p in webhook.previous_secrets],
                webhook.disabled_reason,
                webhook.disabled_at,
                webhook.filter.to_json() if webhook.filter is not None else None,
                dict(webhook.headers),
                webhook.rate_limit,
            ),
        )


def _webhook(row: Row) -> Webhook:
    created = from_cql(row["created_at"])
    updated = from_cql(row["updated_at"])
    assert created is not None and updated is not None  # written on every upsert
    return Webhook(
        id=row["id"],
        url=row["url"],
        events=tuple(row["events"] or ()),
        secret=row["secret"],
        active=bool(row["active"]),
        created_at=created,
        updated_at=updated,
        description=row["description"],
        metadata=dict(row["metadata"] or {}),
        account_id=row["account_id"] or DEFAULT_ACCOUNT,
        previous_secrets=tuple(
            PreviousSecret(secret, expires)
            for secret, at in row["previous_secrets"] or ()
            if (expires := from_cql(at)) is not None
        ),
        disabled_reason=row["disabled_reason"],
        disabled_at=from_cql(row["disabled_at"]),
        filter=filter_from_json(row["filter"]),
        headers=dict(row["headers"] or {}),
        rate_limit=row["rate_limit"],
    )
