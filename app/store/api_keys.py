"""⑤ API keys created with ``hookstream apikey create`` (table ``api_keys``).

Only the SHA-256 of a key is stored, with a display prefix and a name: the plain key is shown
once, at creation, and cannot be recovered from the table. Keys live until revoked.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime

from app.settings import Settings
from app.store.session import CassandraSession, aexecute, prepare

KEY_PREFIX = "hsk_"
DISPLAY_CHARS = 8  # "hsk_" and the first 4 random characters: enough to tell keys apart


def hash_key(key: str) -> str:
    """The stored form of a key: lowercase hex SHA-256 of its UTF-8 bytes."""
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    """``hsk_`` + 32 URL-safe random characters (24 random bytes)."""
    return KEY_PREFIX + secrets.token_urlsafe(24)


class ApiKeyRepository:
    """Create, check and revoke API keys. Construct off the loop (prepares statements).
    Every method raises ``StoreUnavailable`` when Cassandra does not answer."""

    def __init__(self, session: CassandraSession, settings: Settings) -> None:
        self._session = session
        ks = settings.cassandra.keyspace
        self._insert = prepare(
            session,
            f"INSERT INTO {ks}.api_keys (key_hash, name, prefix, created_at) VALUES (?, ?, ?, ?)",
        )
        self._select = prepare(session, f"SELECT key_hash FROM {ks}.api_keys WHERE key_hash = ?")
        self._delete = prepare(session, f"DELETE FROM {ks}.api_keys WHERE key_hash = ?")

    async def create(self, name: str) -> str:
        """Generate a key, store its hash, prefix and name; return the plain key (once).

        Not idempotent by nature (each call makes a new key); the write itself is an upsert
        by hash at LOCAL_QUORUM.
        """
        key = new_key()
        await aexecute(
            self._session,
            self._insert,
            (hash_key(key), name, key[:DISPLAY_CHARS], datetime.now(UTC)),
        )
        return key

    async def exists(self, key: str) -> bool:
        """Whether ``key`` was created and not revoked: hash, then one point read
        (LOCAL_QUORUM, so a key works as soon as ``create`` returned)."""
        page = await aexecute(self._session, self._select, (hash_key(key),))
        return bool(page.rows)

    async def revoke(self, key_hash: str) -> None:
        """Delete the key with this hash; idempotent (revoking twice is not an error)."""
        await aexecute(self._session, self._delete, (key_hash,))
