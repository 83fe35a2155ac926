"""⑤ API keys created with ``hookstream apikey create`` or ``POST /v1/keys`` (table ``api_keys``).

Only the SHA-256 of a key is stored, with its id (``key_…``, what lists show and what revoking
names), a display prefix, a name and the account it acts in: the plain key is shown once, at
creation, and cannot be recovered from the table. Keys live until revoked; revoking deletes
the row, and since every request looks its key up (no cache), a revoked key is refused by
every API replica from the next request on.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from app.accounts import DEFAULT_ACCOUNT
from app.settings import Settings
from app.store.session import CassandraSession, Row, aexecute, all_pages, prepare
from app.store.timeline import from_cql

KEY_PREFIX = "hsk_"
DISPLAY_CHARS = 8  # "hsk_" and the first 4 random characters: enough to tell keys apart
_COLUMNS = "key_hash, id, account_id, name, prefix, created_at"


def hash_key(key: str) -> str:
    """The stored form of a key: lowercase hex SHA-256 of its UTF-8 bytes."""
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    """``hsk_`` + 32 URL-safe random characters (24 random bytes)."""
    return KEY_PREFIX + secrets.token_urlsafe(24)


def new_key_id() -> str:
    return "key_" + secrets.token_hex(8)


@dataclass(frozen=True, slots=True)
class StoredKey:
    """A key as the table holds it: everything but the key itself."""

    id: str
    account_id: str
    name: str
    prefix: str
    created_at: datetime


class ApiKeyRepository:
    """Create, look up, list and revoke API keys. Construct off the loop (prepares
    statements). Every method raises ``StoreUnavailable`` when Cassandra does not answer."""

    def __init__(self, session: CassandraSession, settings: Settings) -> None:
        self._session = session
        table = f"{settings.cassandra.keyspace}.api_keys"
        self._insert = prepare(
            session, f"INSERT INTO {table} ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)"
        )
        self._select = prepare(session, f"SELECT {_COLUMNS} FROM {table} WHERE key_hash = ?")
        self._by_account = prepare(session, f"SELECT {_COLUMNS} FROM {table} WHERE account_id = ?")
        self._by_id = prepare(session, f"SELECT {_COLUMNS} FROM {table} WHERE id = ?")
        self._delete = prepare(session, f"DELETE FROM {table} WHERE key_hash = ?")

    async def create(self, name: str, account_id: str = DEFAULT_ACCOUNT) -> tuple[str, StoredKey]:
        """Generate a key for the account, store its hash; return the plain key (once) and
        what is stored. An upsert by hash at LOCAL_QUORUM (each call makes a new key)."""
        key = new_key()
        now = datetime.now(UTC)
        now = now.replace(microsecond=now.microsecond // 1000 * 1000)  # Cassandra keeps ms
        stored = StoredKey(new_key_id(), account_id, name, key[:DISPLAY_CHARS], now)
        await aexecute(
            self._session,
            self._insert,
            (hash_key(key), stored.id, account_id, name, stored.prefix, stored.created_at),
        )
        return key, stored

    async def lookup(self, key: str) -> StoredKey | None:
        """The stored key for ``key``, or None if it was never created or is revoked: hash,
        then one point read (LOCAL_QUORUM, so a key works as soon as ``create`` returned)."""
        page = await aexecute(self._session, self._select, (hash_key(key),))
        return _stored(page.rows[0]) if page.rows else None

    async def exists(self, key: str) -> bool:
        return await self.lookup(key) is not None

    async def list(self, account_id: str) -> list[StoredKey]:
        """The account's keys, oldest first (through the account index)."""
        rows = await all_pages(self._session, self._by_account, (account_id,))
        return sorted((_stored(row) for row in rows), key=lambda k: (k.created_at, k.id))

    async def get(self, key_id: str) -> StoredKey | None:
        page = await aexecute(self._session, self._by_id, (key_id,))
        return _stored(page.rows[0]) if page.rows else None

    async def revoke(self, key_id: str) -> bool:
        """Delete the key with this id; False if there is none (revoking twice is not an
        error for the caller to fear, it just reports False)."""
        page = await aexecute(self._session, self._by_id, (key_id,))
        for row in page.rows:
            await aexecute(self._session, self._delete, (row["key_hash"],))
        return bool(page.rows)


def _stored(row: Row) -> StoredKey:
    created = from_cql(row["created_at"])
    assert created is not None  # written by create()
    return StoredKey(
        id=row["id"] or "key_" + row["key_hash"][:16],  # as ``migrate`` names older keys
        account_id=row["account_id"] or DEFAULT_ACCOUNT,
        name=row["name"] or "",
        prefix=row["prefix"] or "",
        created_at=created,
    )
