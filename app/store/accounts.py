"""⑤ Accounts in Cassandra (table ``accounts``): the source of truth of who exists.

A small table (one row per customer), read whole by the workers' periodic reload and by the
admin list. Accounts are never deleted, only disabled: their ids stay reserved, so a key or an
event naming a disabled account is refused rather than landing on a new owner.
"""

from __future__ import annotations

from app.accounts import Account
from app.settings import Settings
from app.store.session import CassandraSession, Row, aexecute, all_pages, prepare
from app.store.timeline import from_cql

_COLUMNS = "id, name, active, max_webhooks, disabled_reason, created_at"


class AccountRepository:
    """Create, read, update and list accounts. Construct off the loop (prepares statements).
    Every method raises ``StoreUnavailable`` when Cassandra does not answer."""

    def __init__(self, session: CassandraSession, settings: Settings) -> None:
        self._session = session
        table = f"{settings.cassandra.keyspace}.accounts"
        self._upsert = prepare(
            session, f"INSERT INTO {table} ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)"
        )
        self._select = prepare(session, f"SELECT {_COLUMNS} FROM {table} WHERE id = ?")
        self._scan = prepare(session, f"SELECT {_COLUMNS} FROM {table}")

    async def create(self, account: Account) -> None:
        """Store a new account (an upsert by id; the API checks the id is free first, and
        generated ids are random)."""
        await aexecute(self._session, self._upsert, _values(account))

    async def get(self, account_id: str) -> Account | None:
        page = await aexecute(self._session, self._select, (account_id,))
        return _account(page.rows[0]) if page.rows else None

    async def update(self, account: Account) -> None:
        """Replace every field (callers ``get`` first)."""
        await aexecute(self._session, self._upsert, _values(account))

    async def all(self) -> list[Account]:
        """Every account, by id."""
        rows = await all_pages(self._session, self._scan, None)
        return sorted((_account(row) for row in rows), key=lambda a: a.id)


def _values(account: Account) -> tuple[object, ...]:
    return (
        account.id,
        account.name,
        account.active,
        account.max_webhooks,
        account.disabled_reason,
        account.created_at,
    )


def _account(row: Row) -> Account:
    created = from_cql(row["created_at"])
    assert created is not None  # written by create()
    return Account(
        id=row["id"],
        name=row["name"] or "",
        active=bool(row["active"]),
        created_at=created,
        max_webhooks=row["max_webhooks"],
        disabled_reason=row["disabled_reason"],
    )
