"""⑤ Endpoint health in Cassandra (table ``webhook_health``): one row per webhook, written by
the worker that owns the webhook's partition (``app.worker.health``), read by the API.

Each write replaces the whole row; the table's default TTL is the retention, so a deleted
webhook's row goes away with its delivery log. Statements prepared once, at LOCAL_QUORUM.
"""

from __future__ import annotations

from app.accounts import DEFAULT_ACCOUNT
from app.health import WebhookHealth
from app.settings import Settings
from app.store.session import CassandraSession, Row, aexecute, prepare
from app.store.timeline import from_cql

_COLUMNS = (
    "webhook_id, account_id, last_success_at, last_failure_at, failing_since, "
    "consecutive_failures, last_status_code, last_error, window_start, window_ok, "
    "window_failed, prior_ok, prior_failed"
)


class HealthRepository:
    """Read and write webhook health. Construct off the loop (prepares); ``Store`` does.
    Every method raises ``StoreUnavailable`` when Cassandra does not answer."""

    def __init__(self, session: CassandraSession, settings: Settings) -> None:
        self._session = session
        table = f"{settings.cassandra.keyspace}.webhook_health"
        marks = ", ".join("?" for _ in _COLUMNS.split(","))
        self._upsert = prepare(session, f"INSERT INTO {table} ({_COLUMNS}) VALUES ({marks})")
        self._select = prepare(session, f"SELECT {_COLUMNS} FROM {table} WHERE webhook_id = ?")

    async def get(self, webhook_id: str) -> WebhookHealth | None:
        """The webhook's health, or None before its first attempt (LOCAL_QUORUM)."""
        page = await aexecute(self._session, self._select, (webhook_id,))
        return _health(page.rows[0]) if page.rows else None

    async def put(self, health: WebhookHealth) -> None:
        """Replace the webhook's health row; an idempotent upsert (LOCAL_QUORUM)."""
        h = health
        await aexecute(
            self._session,
            self._upsert,
            (
                h.webhook_id, h.account_id, h.last_success_at, h.last_failure_at,
                h.failing_since, h.consecutive_failures, h.last_status_code, h.last_error,
                h.window_start, h.window_ok, h.window_failed, h.prior_ok, h.prior_failed,
            ),
        )  # fmt: skip


def _health(row: Row) -> WebhookHealth:
    return WebhookHealth(
        webhook_id=row["webhook_id"],
        account_id=row["account_id"] or DEFAULT_ACCOUNT,
        last_success_at=from_cql(row["last_success_at"]),
        last_failure_at=from_cql(row["last_failure_at"]),
        failing_since=from_cql(row["failing_since"]),
        consecutive_failures=row["consecutive_failures"] or 0,
        last_status_code=row["last_status_code"],
        last_error=row["last_error"],
        window_start=from_cql(row["window_start"]),
        window_ok=row["window_ok"] or 0,
        window_failed=row["window_failed"] or 0,
        prior_ok=row["prior_ok"] or 0,
        prior_failed=row["prior_failed"] or 0,
    )
