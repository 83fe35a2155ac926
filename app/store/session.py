"""⑤ The Cassandra session and the bridge from the driver's callbacks to asyncio.

cassandra-driver runs its own I/O thread and reports results through callbacks on a
``ResponseFuture``. ``submit`` turns one ``execute_async`` into an ``asyncio.Future`` resolved
on the event loop (``add_callbacks`` + ``loop.call_soon_threadsafe``); ``aexecute`` awaits one,
``aexecute_batch`` sends several writes as one request. Nothing here calls the blocking
``Session.execute`` — that is kept for ``migrate`` and start-up, which run off the loop.

Paging is stateless: a page is one request with ``fetch_size`` and, after the first, the
``paging_state`` of the previous page. The first page of a result is what the callback
receives, so nothing ever blocks on ``ResultSet`` iteration.

Every statement Hookstream writes is an idempotent upsert or delete, prepared with
``is_idempotent = True``: ``IdempotentRetryPolicy`` retries those on a server-side write
timeout, and the bridge sends them once more after a client-side timeout. Reads use the same
consistency as writes (``HOOKSTREAM_CASSANDRA__CONSISTENCY``, LOCAL_QUORUM by default), so a read
after an acknowledged write sees it.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

from cassandra import (
    AuthenticationFailed,
    ConsistencyLevel,
    DriverException,
    OperationTimedOut,
    ProtocolVersion,
    RequestValidationException,
)
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import (
    EXEC_PROFILE_DEFAULT,
    Cluster,
    ExecutionProfile,
    NoHostAvailable,
    ResponseFuture,
    ResultSet,
    Session,
)
from cassandra.connection import ConnectionBusy, ConnectionException
from cassandra.policies import DCAwareRoundRobinPolicy, RetryPolicy, TokenAwarePolicy
from cassandra.protocol import OverloadedErrorMessage
from cassandra.query import (
    BatchStatement,
    BatchType,
    BoundStatement,
    PreparedStatement,
    Statement,
    dict_factory,
)

from app.inbox import inbox
from app.settings import Settings
from app.store.errors import StoreUnavailable

CassandraSession: TypeAlias = Session  # the driver is untyped: Any to mypy
Row = dict[str, Any]
Params = Sequence[object] | None

REQUEST_TIMEOUT = 10.0  # seconds, client side, per request (the server's own are shorter)
CONNECT_TIMEOUT = 5.0
CLIENT_RETRIES = 1  # extra tries of an idempotent statement after a client-side timeout
SERVER_RETRIES = 2  # extra tries of an idempotent write after a server-side write timeout

# Errors that mean "Cassandra could not do it now" — as opposed to a malformed request.
_OUTAGES: tuple[type[BaseException], ...] = (
    DriverException,
    NoHostAvailable,
    ConnectionException,
)


class IdempotentRetryPolicy(RetryPolicy):  # type: ignore[misc]
    """Retry write timeouts and connection errors, but only of idempotent statements.

    The driver's default retries a write timeout only for batch-log writes, and retries
    request errors on the next host whether or not the statement is idempotent.
    """

    def on_write_timeout(  # noqa: PLR0917 (the driver's signature)
        self,
        query: Statement | None,
        consistency: int,
        write_type: str,
        required_responses: int,
        received_responses: int,
        retry_num: int,
    ) -> tuple[int, int | None]:
        if query is not None and query.is_idempotent and retry_num < SERVER_RETRIES:
            return self.RETRY, consistency
        return self.RETHROW, None

    def on_request_error(
        self, query: Statement | None, consistency: int, error: Exception, retry_num: int
    ) -> tuple[int, int | None]:
        if query is not None and query.is_idempotent and retry_num < SERVER_RETRIES:
            return self.RETRY_NEXT_HOST, None
        return self.RETHROW, None


def security_options(settings: Settings) -> dict[str, Any]:
    """``Cluster`` keyword arguments for authentication and client TLS (empty: neither).

    The one place that maps the Cassandra security settings to the driver; the local stack's
    readiness probe uses it too.
    """
    cfg = settings.cassandra
    options: dict[str, Any] = {}
    if cfg.username is not None:
        options["auth_provider"] = PlainTextAuthProvider(
            username=cfg.username,
            password=cfg.password.get_secret_value() if cfg.password is not None else "",
        )
    if cfg.ssl:
        context = ssl.create_default_context(
            cafile=str(cfg.ssl_ca_file) if cfg.ssl_ca_file is not None else None
        )
        # The driver passes the contact address as server_hostname when this is on.
        context.check_hostname = cfg.ssl_check_hostname
        if cfg.ssl_cert_file is not None:
            context.load_cert_chain(
                str(cfg.ssl_cert_file), str(cfg.ssl_key_file) if cfg.ssl_key_file else None
            )
        options["ssl_context"] = context
    return options


def explain_connect_error(settings: Settings, exc: BaseException) -> str:
    """A start-up failure in words, naming the setting that most likely causes it."""
    text = str(exc)
    if isinstance(exc, NoHostAvailable):
        text = "; ".join(f"{host}: {err}" for host, err in exc.errors.items()) or text
    lowered = text.lower()
    where = f"Cassandra at {settings.cassandra.hosts}:{settings.cassandra.port}"
    if "authentication" in lowered or "credentials" in lowered or "password" in lowered:
        return (
            f"{where} refused the login ({text}); check HOOKSTREAM_CASSANDRA__USERNAME and "
            "HOOKSTREAM_CASSANDRA__PASSWORD (or HOOKSTREAM_CASSANDRA__PASSWORD_FILE)"
        )
    if "certificate" in lowered or "ssl" in lowered or "tls" in lowered:
        return (
            f"{where}: TLS failed ({text}); check HOOKSTREAM_CASSANDRA__SSL, "
            "HOOKSTREAM_CASSANDRA__SSL_CA_FILE and HOOKSTREAM_CASSANDRA__SSL_CHECK_HOSTNAME"
        )
    return f"cannot connect to {where}: {text}"


def connect(settings: Settings) -> CassandraSession:
    """Open a cluster and a session (blocking: call at start-up, off the event loop).

    Protocol v5, token-aware round robin over the local data centre, the configured
    consistency (LOCAL_QUORUM by default), authentication and TLS from ``security_options``,
    rows as dicts. The session is bound to no keyspace: statements name ``keyspace.table``
    (Cassandra 5 warns about prepared statements under ``USE``). Raises ``StoreUnavailable`` if no
    contact point answers.
    """
    cfg = settings.cassandra
    profile = ExecutionProfile(
        load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy(local_dc=cfg.local_dc)),
        retry_policy=IdempotentRetryPolicy(),
        consistency_level=ConsistencyLevel.name_to_value[cfg.consistency],
        request_timeout=REQUEST_TIMEOUT,
        row_factory=dict_factory,
    )
    cluster = Cluster(
        contact_points=list(cfg.hosts),
        port=cfg.port,
        protocol_version=ProtocolVersion.V5,
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
        connect_timeout=CONNECT_TIMEOUT,
        control_connection_timeout=CONNECT_TIMEOUT,
        idle_heartbeat_interval=15,
        idle_heartbeat_timeout=15,
        **security_options(settings),
    )
    try:
        return cluster.connect()
    except (*_OUTAGES, AuthenticationFailed, ssl.SSLError) as exc:
        cluster.shutdown()
        raise StoreUnavailable(explain_connect_error(settings, exc)) from exc


def prepare(session: CassandraSession, cql: str) -> PreparedStatement:
    """Prepare once (blocking); every statement Hookstream runs is an idempotent one."""
    statement = session.prepare(cql)
    statement.is_idempotent = True
    return statement


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a result: its rows and the state to fetch the next (None: last page)."""

    rows: list[Row]
    paging_state: bytes | None


def submit(
    session: CassandraSession,
    statement: Statement | PreparedStatement,
    params: Params = None,
    *,
    paging_state: bytes | None = None,
    fetch_size: int | None = None,
) -> asyncio.Future[Page]:
    """Send one request now and return an asyncio future of its first (or only) page.

    Must be called on the event loop's thread; the future resolves on that loop.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Page] = loop.create_future()
    if fetch_size is not None:
        if isinstance(statement, PreparedStatement):
            statement = statement.bind(params)
            params = None
        statement.fetch_size = fetch_size
    response: ResponseFuture = session.execute_async(statement, params, paging_state=paging_state)

    # Both callbacks run on the driver's I/O thread (or right here, if already done).
    def on_rows(rows: list[Row] | None) -> None:
        result = ResultSet(response, rows)
        page = Page(list(result.current_rows), result.paging_state)
        _resolve(loop, future, page, None)

    def on_error(exc: BaseException) -> None:
        _resolve(loop, future, None, exc)

    response.add_callbacks(on_rows, on_error)
    return future


def _resolve(
    loop: asyncio.AbstractEventLoop,
    future: asyncio.Future[Page],
    page: Page | None,
    exc: BaseException | None,
) -> None:
    def settle() -> None:
        if future.done():  # the awaiting task was cancelled; nothing to deliver
            return
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(page)  # type: ignore[arg-type]

    inbox(loop).put(settle)  # one loop wake-up per burst of results


# Requests in flight per session. Beyond the driver's per-connection limit it answers
# "ConnectionBusy ... overloaded" (seen with 256 KB events): waiting here is back-pressure,
# not an outage.
MAX_IN_FLIGHT = 512


def _slots(session: CassandraSession) -> asyncio.Semaphore:
    slots: asyncio.Semaphore | None = getattr(session, "_hookstream_slots", None)
    if slots is None:
        slots = asyncio.Semaphore(MAX_IN_FLIGHT)
        session._hookstream_slots = slots  # type: ignore[attr-defined]
    return slots


async def aexecute(
    session: CassandraSession,
    statement: Statement | PreparedStatement,
    params: Params = None,
    *,
    paging_state: bytes | None = None,
    fetch_size: int | None = None,
) -> Page:
    """Run one statement without blocking the loop; return its first (or only) page.

    An idempotent statement that times out on the client is sent once more. Raises
    ``StoreUnavailable`` for timeouts and outages; validation errors propagate unchanged.
    """
    tries = busy = 0
    while True:
        try:
            async with _slots(session):
                return await submit(
                    session, statement, params, paging_state=paging_state, fetch_size=fetch_size
                )
        except OperationTimedOut as exc:
            if statement.is_idempotent and tries < CLIENT_RETRIES:
                tries += 1
                continue
            raise StoreUnavailable(f"Cassandra timed out: {exc}") from exc
        except RequestValidationException:
            raise
        except _OUTAGES as exc:
            if _overloaded(exc) and statement.is_idempotent and busy < BUSY_RETRIES:
                # Back-pressure, not an outage: the node (or the connection) sheds load.
                busy += 1
                await asyncio.sleep(min(1.0, 0.01 * 2**busy))
                continue
            raise StoreUnavailable(f"Cassandra request failed: {exc}") from exc


BUSY_RETRIES = 12  # about 8 s of backing off before an overload counts as an outage


def _overloaded(exc: BaseException) -> bool:
    """True for "too busy" answers: a full connection or the server's Overloaded error."""
    errors = getattr(exc, "errors", None)
    causes = list(errors.values()) if isinstance(errors, dict) and errors else [exc]
    return all(
        isinstance(cause, ConnectionBusy | OverloadedErrorMessage)
        or "overloaded" in str(cause).lower()
        for cause in causes
    )


async def aexecute_batch(
    session: CassandraSession,
    requests: Sequence[tuple[PreparedStatement | BoundStatement, Params]],
) -> None:
    """Send several idempotent writes as one UNLOGGED batch: one request, one round trip.

    Not for atomicity (an unlogged batch has none across partitions) but for cost: the
    driver spends most of its CPU per request, so one request of eight statements costs a
    fraction of eight requests. All statements get the same write timestamp. The batch is
    idempotent, so the driver retries it on a write timeout and ``aexecute`` once more on a
    client timeout; then raises ``StoreUnavailable`` (some statements may have applied).
    """
    batch = BatchStatement(batch_type=BatchType.UNLOGGED)
    batch.is_idempotent = all(statement.is_idempotent for statement, _ in requests)
    for statement, params in requests:
        batch.add(statement, params)
    await aexecute(session, batch)


async def all_pages(
    session: CassandraSession,
    statement: PreparedStatement,
    params: Params,
    *,
    fetch_size: int = 1000,
) -> list[Row]:
    """Every row of a bounded query, page by page, without blocking the loop."""
    rows: list[Row] = []
    state: bytes | None = None
    while True:
        page = await aexecute(session, statement, params, paging_state=state, fetch_size=fetch_size)
        rows.extend(page.rows)
        if page.paging_state is None:
            return rows
        state = page.paging_state
