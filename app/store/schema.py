"""⑤ The Cassandra schema: one table per query, created idempotently by ``migrate``.

    accounts                        id                                  who owns the rest
    webhooks                        id                                  the subscriptions; SAI
                                                                        on account_id lists an
                                                                        account's webhooks
    api_keys                        key_hash                            sha256 of created keys;
                                                                        SAI on account_id, id
    deliveries                      id                                  a delivery's state
    attempts                        delivery_id │ number ASC            its HTTP requests
    deliveries_by_webhook           (webhook_id, bucket)                the delivery log,
                                      │ created_at DESC, delivery_id    newest first; SAI
                                                                        indexes on status and
                                                                        event_type filter it
    events                          id                                  payloads for redelivery
    webhook_health                  webhook_id                          endpoint health
    replays                         id                                  replay jobs and their
                                                                        progress (app.replay)

Status and event-type filters are storage-attached indexes (SAI, Cassandra 5.0) on the log
table, not tables of their own: a filtered page is the same partition slice with an index
restriction, returned in clustering order and paged like the unfiltered one (verified on
5.0.8, SSTables and memtables, rows that changed status included). So a status change
needs no delete of the row under its old status, and no table per filter is written.
``migrate`` no longer creates ``deliveries_by_webhook_status`` and
``deliveries_by_webhook_type``; a keyspace that has them keeps them, unused, until dropped.

Who got an event needs no table either: a delivery's id derives from (event id, webhook id),
so the event's deliveries are read from ``deliveries`` by the ids of its account's webhooks
(``DeliveryRepository.list_by_event``). ``migrate`` no longer creates
``deliveries_by_event`` and nothing writes it (a fifth partition update per delivery state,
measured at 16 % of Cassandra's CPU per delivery); a keyspace that has it keeps it, unused,
its rows expiring with the retention, until dropped (``DROP TABLE
<keyspace>.deliveries_by_event`` once no API of an earlier version runs).

``bucket`` is the UTC day of the delivery's ``created_at`` (days since the epoch), so a busy
webhook writes one partition per day instead of one unbounded partition. The log tables carry
the whole delivery state, so a page is one partition slice and never a read per row.

Columns added after a table first shipped are in ``ADDED_COLUMNS`` and added with ``ALTER
TABLE … ADD IF NOT EXISTS`` (Cassandra 5.0), so ``migrate`` upgrades an existing keyspace in
place; a row written before a column existed reads it as null, which the readers map to the
old meaning (no ``account_id`` means the default account).

Every row but an account's, a webhook's or an API key's expires after
``settings.cassandra.retention``: writes say ``USING TTL`` and the tables'
``default_time_to_live`` is the same safety net (``migrate`` re-applies it, so changing the
retention and migrating again takes effect).
"""

from __future__ import annotations

import logging

from app.accounts import DEFAULT_ACCOUNT
from app.settings import Settings
from app.store.session import CassandraSession, connect

DDL_TIMEOUT = 60.0  # seconds: schema changes wait for agreement, slow on a busy node

log = logging.getLogger(__name__)

ACCOUNTS = "accounts"
WEBHOOKS = "webhooks"
API_KEYS = "api_keys"
DELIVERIES = "deliveries"
ATTEMPTS = "attempts"
BY_WEBHOOK = "deliveries_by_webhook"
# Indexes on the log table (SAI): the delivery log's status and event-type filters.
BY_WEBHOOK_STATUS_INDEX = "deliveries_by_webhook_status_idx"
BY_WEBHOOK_TYPE_INDEX = "deliveries_by_webhook_type_idx"
WEBHOOKS_ACCOUNT_INDEX = "webhooks_account_idx"
API_KEYS_ACCOUNT_INDEX = "api_keys_account_idx"
API_KEYS_ID_INDEX = "api_keys_id_idx"
INDEXES: dict[str, str] = {
    WEBHOOKS_ACCOUNT_INDEX: "CREATE INDEX IF NOT EXISTS {name} ON {ks}.webhooks (account_id) "
    "USING 'sai'",
    API_KEYS_ACCOUNT_INDEX: "CREATE INDEX IF NOT EXISTS {name} ON {ks}.api_keys (account_id) "
    "USING 'sai'",
    API_KEYS_ID_INDEX: "CREATE INDEX IF NOT EXISTS {name} ON {ks}.api_keys (id) USING 'sai'",
    BY_WEBHOOK_STATUS_INDEX: "CREATE INDEX IF NOT EXISTS {name} ON {ks}.deliveries_by_webhook "
    "(status) USING 'sai'",
    BY_WEBHOOK_TYPE_INDEX: "CREATE INDEX IF NOT EXISTS {name} ON {ks}.deliveries_by_webhook "
    "(event_type) USING 'sai'",
}
BY_EVENT = "deliveries_by_event"  # no longer created nor written (see the docstring)
EVENTS = "events"
WEBHOOK_HEALTH = "webhook_health"  # endpoint health (app.health)
REPLAYS = "replays"

# The delivery state, as stored in every delivery table (the key columns vary).
DELIVERY_STATE = """
    webhook_id text,
    event_id text,
    event_type text,
    status text,
    attempts int,
    created_at timestamp,
    updated_at timestamp,
    status_code int,
    error text,
    delivered_at timestamp,
    next_attempt_at timestamp"""

# Log tables are append-mostly time series that expire whole: time-window compaction drops
# an expired day's sstables without rewriting them. (Braces doubled: the CQL is .format()ted.)
_TIME_SERIES = (
    "compaction = {{'class': 'TimeWindowCompactionStrategy', "
    "'compaction_window_unit': 'DAYS', 'compaction_window_size': 1}}"
)

TABLES: dict[str, str] = {
    ACCOUNTS: """
        CREATE TABLE IF NOT EXISTS {ks}.accounts (
            id text PRIMARY KEY,
            name text,
            active boolean,
            max_webhooks int,
            disabled_reason text,
            created_at timestamp
        )""",
    WEBHOOKS: """
        CREATE TABLE IF NOT EXISTS {ks}.webhooks (
            id text PRIMARY KEY,
            url text,
            events list<text>,
            secret text,
            active boolean,
            description text,
            metadata map<text, text>,
            created_at timestamp,
            updated_at timestamp
        )""",
    API_KEYS: """
        CREATE TABLE IF NOT EXISTS {ks}.api_keys (
            key_hash text PRIMARY KEY,
            name text,
            prefix text,
            created_at timestamp
        )""",
    DELIVERIES: f"""
        CREATE TABLE IF NOT EXISTS {{ks}}.deliveries (
            id text PRIMARY KEY,{DELIVERY_STATE}
        ) WITH default_time_to_live = {{ttl}}""",
    ATTEMPTS: f"""
        CREATE TABLE IF NOT EXISTS {{ks}}.attempts (
            delivery_id text,
            number int,
            started_at timestamp,
            duration_ms int,
            outcome text,
            status_code int,
            error text,
            response_excerpt text,
            request_headers map<text, text>,
            PRIMARY KEY (delivery_id, number)
        ) WITH CLUSTERING ORDER BY (number ASC)
          AND default_time_to_live = {{ttl}} AND {_TIME_SERIES}""",
    BY_WEBHOOK: f"""
        CREATE TABLE IF NOT EXISTS {{ks}}.deliveries_by_webhook (
            bucket int,
            delivery_id text,{DELIVERY_STATE},
            PRIMARY KEY ((webhook_id, bucket), created_at, delivery_id)
        ) WITH CLUSTERING ORDER BY (created_at DESC, delivery_id DESC)
          AND default_time_to_live = {{ttl}} AND {_TIME_SERIES}""",
    WEBHOOK_HEALTH: """
        CREATE TABLE IF NOT EXISTS {ks}.webhook_health (
            webhook_id text PRIMARY KEY,
            account_id text,
            last_success_at timestamp,
            last_failure_at timestamp,
            failing_since timestamp,
            consecutive_failures int,
            last_status_code int,
            last_error text,
            window_start timestamp,
            window_ok int,
            window_failed int,
            prior_ok int,
            prior_failed int
        ) WITH default_time_to_live = {ttl}""",
    EVENTS: """
        CREATE TABLE IF NOT EXISTS {ks}.events (
            id text PRIMARY KEY,
            type text,
            created_at text,
            body blob,
            received_at timestamp
        ) WITH default_time_to_live = {ttl}""",
}

# Columns added after their table first shipped: {table: {column: CQL type}}. Every table
# carrying a delivery's state gains its account (the delivery log is scoped by it).
ADDED_COLUMNS: dict[str, dict[str, str]] = {
    WEBHOOKS: {
        "account_id": "text",
        # Rotation: secrets still signing beside the current one, (secret, expires_at).
        "previous_secrets": "list<frozen<tuple<text, timestamp>>>",
        "disabled_reason": "text",  # auto-disable (app.health)
        "disabled_at": "timestamp",
        "headers": "map<text, text>",  # custom request headers
        "rate_limit": "int",  # deliveries per second at most
    },
    API_KEYS: {"account_id": "text", "id": "text"},
    # An attempt's request headers as one frozen cell: the first column, a non-frozen map,
    # cost a cell per header plus the collection's tombstone on every insert (Cassandra
    # ~589 against ~633 µs per recorded delivery, bench.record_cost). Rows written before
    # keep theirs in request_headers, which readers fall back to.
    ATTEMPTS: {"sent_headers": "frozen<map<text, text>>"},
    DELIVERIES: {"account_id": "text"},
    BY_WEBHOOK: {"account_id": "text"},
    EVENTS: {"account_id": "text"},
}
# A webhook's payload filter (app.filters), as JSON text; null for none.
ADDED_COLUMNS[WEBHOOKS]["filter"] = "text"

# Replay jobs (app.replay): the API writes the request, the replayer its status and counts,
# each with UPDATEs of its own columns, so a cancel (cancel_requested) never races a
# progress write. Expires with the retention, like the deliveries it made.
TABLES[REPLAYS] = """
        CREATE TABLE IF NOT EXISTS {ks}.replays (
            id text PRIMARY KEY,
            account_id text,
            webhook_id text,
            mode text,
            since timestamp,
            until timestamp,
            status text,
            cancel_requested boolean,
            scanned bigint,
            matched bigint,
            enqueued bigint,
            skipped bigint,
            progress double,
            earliest timestamp,
            error text,
            created_at timestamp,
            updated_at timestamp,
            finished_at timestamp
        ) WITH default_time_to_live = {ttl}"""
# Where a running replay has read to, per partition (offset of the next event): a replayer
# that takes a job over resumes there instead of from the start.
ADDED_COLUMNS[REPLAYS] = {"positions": "map<int, bigint>"}

EXPIRING = (DELIVERIES, ATTEMPTS, BY_WEBHOOK, EVENTS, REPLAYS, WEBHOOK_HEALTH)


def ttl_seconds(settings: Settings) -> int:
    """The retention as a CQL TTL (0 means rows never expire)."""
    return int(settings.cassandra.retention.total_seconds())


def migrate(settings: Settings) -> None:
    """Create the keyspace, every table and index if missing; re-apply the retention TTL.

    Blocking (run it from the CLI or a test fixture, never on a serving event loop) and
    idempotent: running it again changes nothing but a changed retention. The keyspace uses
    SimpleStrategy with ``settings.cassandra.replication_factor``; an existing keyspace's
    replication is left alone. Raises ``StoreUnavailable`` if Cassandra cannot be reached.
    """
    cfg = settings.cassandra
    ttl = ttl_seconds(settings)
    session = connect(settings)
    try:
        session.execute(
            f"CREATE KEYSPACE IF NOT EXISTS {cfg.keyspace} WITH replication = "
            f"{{'class': 'SimpleStrategy', 'replication_factor': {cfg.replication_factor}}}",
            timeout=DDL_TIMEOUT,
        )
        for name, cql in TABLES.items():
            session.execute(cql.format(ks=cfg.keyspace, ttl=ttl), timeout=DDL_TIMEOUT)
            if name in EXPIRING:
                session.execute(
                    f"ALTER TABLE {cfg.keyspace}.{name} WITH default_time_to_live = {ttl}",
                    timeout=DDL_TIMEOUT,
                )
        for table, columns in ADDED_COLUMNS.items():
            for column, cql_type in columns.items():
                session.execute(
                    f"ALTER TABLE {cfg.keyspace}.{table} ADD IF NOT EXISTS {column} {cql_type}",
                    timeout=DDL_TIMEOUT,
                )
        for name, cql in INDEXES.items():
            session.execute(cql.format(name=name, ks=cfg.keyspace), timeout=DDL_TIMEOUT)
        _backfill_accounts(session, cfg.keyspace)
        log.info("cassandra schema ready", extra={"keyspace": cfg.keyspace, "ttl_s": ttl})
    finally:
        session.cluster.shutdown()


def _backfill_accounts(session: CassandraSession, ks: str) -> None:
    """Webhooks and keys from before accounts belong to the default account (and a key gets
    an id): written out, so the account indexes list them. Both tables are small."""
    for row in session.execute(f"SELECT id, account_id FROM {ks}.webhooks", timeout=DDL_TIMEOUT):
        if row["account_id"] is None:
            session.execute(
                f"UPDATE {ks}.webhooks SET account_id = %s WHERE id = %s",
                (DEFAULT_ACCOUNT, row["id"]),
                timeout=DDL_TIMEOUT,
            )
    keys = session.execute(f"SELECT key_hash, id, account_id FROM {ks}.api_keys")
    for row in keys:
        if row["account_id"] is None or row["id"] is None:
            session.execute(
                f"UPDATE {ks}.api_keys SET account_id = %s, id = %s WHERE key_hash = %s",
                (
                    row["account_id"] or DEFAULT_ACCOUNT,
                    row["id"] or "key_" + row["key_hash"][:16],
                    row["key_hash"],
                ),
                timeout=DDL_TIMEOUT,
            )


def drop(settings: Settings) -> None:
    """Drop the whole keyspace (tests and local resets only). Blocking."""
    session = connect(settings)
    try:
        session.execute(
            f"DROP KEYSPACE IF EXISTS {settings.cassandra.keyspace}", timeout=DDL_TIMEOUT
        )
    finally:
        session.cluster.shutdown()
