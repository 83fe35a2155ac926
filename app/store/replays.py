"""⑤ Replay jobs in Cassandra (table ``replays``): the request, its status and its counts.

Each writer updates only its own columns: the API writes the request and ``cancel_requested``,
the replayer the status, counts and progress. So a cancel never races a progress write (no
read-modify-write anywhere). Rows expire with the retention. LOCAL_QUORUM; every method
raises ``StoreUnavailable`` when Cassandra does not answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from app.replay.jobs import Counts, Replay, ReplayMode, ReplayStatus
from app.settings import Settings
from app.store.schema import ttl_seconds
from app.store.session import CassandraSession, Row, aexecute, prepare
from app.store.timeline import from_cql

_COLUMNS = (
    "id, account_id, webhook_id, mode, since, until, status, cancel_requested, scanned, "
    "matched, enqueued, skipped, progress, earliest, error, created_at, updated_at, "
    "finished_at, positions"
)


class ReplayRepository:
    """Construct off the event loop (it prepares its statements); ``Store`` does."""

    def __init__(self, session: CassandraSession, settings: Settings) -> None:
        self._session = session
        table = f"{settings.cassandra.keyspace}.replays"
        ttl = f" USING TTL {ttl_seconds(settings)}"
        self._create = prepare(
            session,
            f"INSERT INTO {table} (id, account_id, webhook_id, mode, since, until, status, "
            f"cancel_requested, scanned, matched, enqueued, skipped, progress, created_at, "
            f"updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, false, 0, 0, 0, 0, 0, ?, ?){ttl}",
        )
        self._select = prepare(session, f"SELECT {_COLUMNS} FROM {table} WHERE id = ?")
        self._cancel = prepare(
            session, f"UPDATE {table}{ttl} SET cancel_requested = true WHERE id = ?"
        )
        self._cancelled = prepare(session, f"SELECT cancel_requested FROM {table} WHERE id = ?")
        self._status = prepare(
            session,
            f"UPDATE {table}{ttl} SET status = ?, error = ?, updated_at = ?, finished_at = ? "
            "WHERE id = ?",
        )
        self._progress = prepare(
            session,
            f"UPDATE {table}{ttl} SET scanned = ?, matched = ?, enqueued = ?, skipped = ?, "
            "progress = ?, earliest = ?, positions = ?, updated_at = ? WHERE id = ?",
        )

    async def create(self, replay: Replay) -> None:
        """Store a new (queued) replay; an idempotent upsert by id."""
        await aexecute(
            self._session,
            self._create,
            (
                replay.id,
                replay.account_id,
                replay.webhook_id,
                replay.mode.value,
                replay.since,
                replay.until,
                replay.status.value,
                replay.created_at,
                replay.updated_at,
            ),
        )

    async def get(self, replay_id: str) -> Replay | None:
        page = await aexecute(self._session, self._select, (replay_id,))
        return _replay(page.rows[0]) if page.rows else None

    async def request_cancel(self, replay_id: str) -> None:
        """Ask the replayer to stop (it checks between batches). Idempotent."""
        await aexecute(self._session, self._cancel, (replay_id,))

    async def cancel_requested(self, replay_id: str) -> bool:
        page = await aexecute(self._session, self._cancelled, (replay_id,))
        return bool(page.rows and page.rows[0]["cancel_requested"])

    async def set_status(
        self, replay_id: str, status: ReplayStatus, error: str | None = None
    ) -> None:
        """The replayer's status change; a finished status stamps ``finished_at``."""
        now = datetime.now(UTC)
        finished = now if status.finished else None
        await aexecute(self._session, self._status, (status.value, error, now, finished, replay_id))

    async def set_progress(
        self,
        replay_id: str,
        counts: Counts,
        progress: float,
        earliest: datetime | None,
        positions: Mapping[int, int],
    ) -> None:
        """The counts and where the replay has read to; an idempotent overwrite."""
        await aexecute(
            self._session,
            self._progress,
            (
                counts.scanned,
                counts.matched,
                counts.enqueued,
                counts.skipped,
                progress,
                earliest,
                dict(positions),
                datetime.now(UTC),
                replay_id,
            ),
        )


def _replay(row: Row) -> Replay:
    created, updated = from_cql(row["created_at"]), from_cql(row["updated_at"])
    since, until = from_cql(row["since"]), from_cql(row["until"])
    assert created and updated and since and until  # written at creation
    return Replay(
        id=row["id"],
        account_id=row["account_id"],
        webhook_id=row["webhook_id"],
        mode=ReplayMode(row["mode"]),
        since=since,
        until=until,
        status=ReplayStatus(row["status"]),
        created_at=created,
        updated_at=updated,
        counts=Counts(
            scanned=row["scanned"] or 0,
            matched=row["matched"] or 0,
            enqueued=row["enqueued"] or 0,
            skipped=row["skipped"] or 0,
        ),
        progress=row["progress"] or 0.0,
        cancel_requested=bool(row["cancel_requested"]),
        earliest=from_cql(row["earliest"]),
        error=row["error"],
        finished_at=from_cql(row["finished_at"]),
        positions=dict(row["positions"] or {}),
    )
