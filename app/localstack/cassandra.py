"""Apache Cassandra 5.0 as one seed node: config, JVM command line and protocol probe."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from app.errors import StackError
from app.localstack.layout import Layout, render
from app.localstack.secure import CASSANDRA_SUPERUSER, USER, SecureProfile, override_yaml

READY_TIMEOUT = 240.0
# SIGTERM runs Cassandra's drain hook, which flushes memtables; give it time before SIGKILL.
STOP_GRACE = 30.0
LOCAL_DC = "datacenter1"  # what SimpleSnitch calls the only data centre

# Cassandra 5.0's conf/jvm-server.options and conf/jvm17-server.options, less what slows a
# small node down (AlwaysPreTouch, UseNUMA, a 16m G1 region size that leaves a 1g heap ~64
# regions). Every --add-exports/--add-opens is needed on 17: leave one out and the failure only
# moves to the next class that reaches into the JDK.
_JVM_FLAGS = [
    "-Xss256k",
    "-XX:+UseG1GC", "-XX:+ParallelRefProcEnabled", "-XX:MaxTenuringThreshold=1",
    "-XX:G1RSetUpdatingPauseTimePercent=5", "-XX:MaxGCPauseMillis=300",
    "-XX:InitiatingHeapOccupancyPercent=70",
    "-XX:+UseThreadPriorities", "-XX:+UseTLAB", "-XX:+ResizeTLAB", "-XX:+PerfDisableSharedMem",
    "-XX:+HeapDumpOnOutOfMemoryError", "-XX:+ExitOnOutOfMemoryError",
    "-ea", "-da:net.openhft...",
    "-Djava.net.preferIPv4Stack=true",
    # Chronicle phones home otherwise; pointless (and slow) without internet.
    "-Dchronicle.analytics.disable=true",
    "-Djdk.attach.allowAttachSelf=true",
    "--add-exports", "java.base/jdk.internal.misc=ALL-UNNAMED",
    "--add-exports", "java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED",
    "--add-exports", "java.management/com.sun.jmx.remote.security=ALL-UNNAMED",
    "--add-exports", "java.rmi/sun.rmi.registry=ALL-UNNAMED",
    "--add-exports", "java.rmi/sun.rmi.server=ALL-UNNAMED",
    "--add-exports", "java.sql/java.sql=ALL-UNNAMED",
    "--add-exports", "java.base/java.lang.ref=ALL-UNNAMED",
    "--add-exports", "jdk.unsupported/sun.misc=ALL-UNNAMED",
    "--add-opens", "java.base/java.lang.module=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.loader=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.ref=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.reflect=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.math=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.module=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.util.jar=ALL-UNNAMED",
    "--add-opens", "jdk.management/com.sun.management.internal=ALL-UNNAMED",
    "--add-opens", "java.base/sun.nio.ch=ALL-UNNAMED",
    "--add-opens", "java.base/java.io=ALL-UNNAMED",
    "--add-opens", "java.base/java.lang.reflect=ALL-UNNAMED",
    "--add-opens", "java.base/java.lang=ALL-UNNAMED",
    "--add-opens", "java.base/java.util=ALL-UNNAMED",
    "--add-opens", "java.base/java.nio=ALL-UNNAMED",
    "--add-exports", "jdk.attach/sun.tools.attach=ALL-UNNAMED",
    "--add-exports", "jdk.compiler/com.sun.tools.javac.file=ALL-UNNAMED",
    "--add-opens", "jdk.compiler/com.sun.tools.javac=ALL-UNNAMED",
    "-Dio.netty.tryReflectionSetAccessible=true",
    "-Dio.netty.allocator.useCacheForAllThreads=true", "-Dio.netty.allocator.maxOrder=11",
    # Without it CassandraDaemon closes stdout/stderr after start-up and server.log goes quiet.
    "-Dcassandra-foreground=yes",
    # One seed node has no peers to wait for: skips >= 8 s of gossip settling.
    "-Dcassandra.skip_wait_for_gossip_to_settle=0",
    "-Dcassandra.superuser_setup_delay_ms=0",
    # Never -Dcassandra.test.flush_local_schema_changes=false (faster DDL): Cassandra loads the
    # schema from its tables *before* it replays the commit log, so a keyspace that lived only
    # in the log was unknown at replay and every row written to it was skipped after a SIGKILL.
]  # fmt: skip


def connection_class() -> Any:
    """The driver's reactor for this Python; None keeps the driver's default.

    Python 3.12 removed asyncore, the driver's default reactor: prefer the libev extension
    when built, else the asyncio reactor, which needs nothing extra.
    """
    if sys.version_info < (3, 12):
        return None
    try:
        from cassandra.io.libevreactor import LibevConnection
    except ImportError:
        from cassandra.io.asyncioreactor import AsyncioConnection

        return AsyncioConnection
    return LibevConnection


class CassandraServer:
    name = "cassandra"
    ready_timeout = READY_TIMEOUT
    stop_grace = STOP_GRACE

    def __init__(
        self, layout: Layout, heap: str, secure: SecureProfile | None = None, client: Any = None
    ) -> None:
        """``secure``: password login and mandatory client TLS; ``client``: the settings the
        readiness probe connects with (``app.store.session.security_options``)."""
        self.dir = layout.run_dir / "cassandra"
        self.secure = secure
        self._client = client
        self.data_dir = self.dir / "data"
        self.port = layout.cassandra_port
        self.storage_port = layout.storage_port
        self.ports = {"native": layout.cassandra_port, "storage": layout.storage_port}
        self.heap = heap
        self._conf = self.dir / "conf"

    def clear_stale_files(self) -> None:
        """Cassandra leaves no lock files; a crash only leaves data it replays itself."""

    def check_data(self) -> None:
        """Nothing to check: a changed identity (cluster name, tokens) fails at start with a
        clear message in the log, which ``up`` reports."""

    def prepare(self, java: str, lib: Path, log_file: Path) -> None:
        for sub in ("data", "commitlog", "hints", "saved_caches"):
            (self.data_dir / sub).mkdir(parents=True, exist_ok=True)
        # Created so the harmless "Trigger directory doesn't exist" warning does not distract.
        (self._conf / "triggers").mkdir(parents=True, exist_ok=True)
        (self.dir / "logs").mkdir(exist_ok=True)
        (self.dir / "tmp").mkdir(exist_ok=True)
        (self._conf / "cassandra.yaml").write_text(self.config())
        (self._conf / "cassandra.yaml").chmod(0o600)  # the secure profile's keystore password
        (self._conf / "logback.xml").write_text(render("logback.xml"))

    def config(self) -> str:
        """The cassandra.yaml this node is started with (a running node keeps the one it read)."""
        config = render(
            "cassandra.yaml",
            storage_port=self.storage_port,
            native_port=self.port,
            data_dir=self.data_dir,
        )
        if self.secure is not None:
            config = override_yaml(config, self.secure.cassandra_yaml())
        return config

    def command(self, java: str, lib: Path) -> list[str]:
        jamm = sorted(lib.glob("jamm-*.jar"))
        if not jamm:
            raise StackError(f"no jamm-*.jar in {lib}: the Cassandra jar fetch is incomplete")
        return [
            java, f"-Xms{self.heap}", f"-Xmx{self.heap}", *_JVM_FLAGS,
            f"-XX:HeapDumpPath={self.dir}",
            # Cassandra measures object sizes through this agent (cassandra-env.sh adds it).
            f"-javaagent:{jamm[-1]}",
            # JNA unpacks its stub here; a noexec /tmp would otherwise be fatal.
            f"-Djna.tmpdir={self.dir / 'tmp'}",
            f"-Dcassandra.config=file://{self._conf / 'cassandra.yaml'}",
            f"-Dcassandra.storagedir={self.data_dir}",
            f"-Dcassandra.logdir={self.dir / 'logs'}",
            f"-Dlogback.configurationFile={self._conf / 'logback.xml'}",
            "-cp", f"{self._conf}:{lib}/*",
            "org.apache.cassandra.service.CassandraDaemon",
        ]  # fmt: skip

    def probe(self, timeout: float) -> str:
        """The node's release version; raises when it does not answer CQL within ``timeout``.

        Secure profile: logs in as ``hookstream`` over TLS; while that role does not exist yet,
        the default superuser creates it (idempotent)."""
        from cassandra.auth import PlainTextAuthProvider
        from cassandra.cluster import NoHostAvailable

        if self.secure is None or self._client is None:
            return self._query(timeout, {})
        from app.store.session import security_options

        options = security_options(self._client)
        try:
            return self._query(timeout, options)
        except NoHostAvailable as exc:
            if "authentication" not in str(exc).lower():
                raise
        password = self.secure.password("cassandra")
        self._query(
            timeout,
            {**options, "auth_provider": PlainTextAuthProvider(*CASSANDRA_SUPERUSER)},
            f"CREATE ROLE IF NOT EXISTS {USER} "
            f"WITH PASSWORD = '{password}' AND LOGIN = true AND SUPERUSER = true",
        )
        return self._query(timeout, options)

    def _query(self, timeout: float, options: dict[str, Any], statement: str = "") -> str:
        from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
        from cassandra.policies import DCAwareRoundRobinPolicy

        profile = ExecutionProfile(
            load_balancing_policy=DCAwareRoundRobinPolicy(local_dc=LOCAL_DC),
            request_timeout=timeout,
        )
        options = dict(options)
        if (reactor := connection_class()) is not None:
            options["connection_class"] = reactor
        cluster = Cluster(
            ["127.0.0.1"],
            port=self.port,
            protocol_version=5,
            connect_timeout=timeout,
            control_connection_timeout=timeout,
            execution_profiles={EXEC_PROFILE_DEFAULT: profile},
            **options,
        )
        try:
            session = cluster.connect()
            if statement:
                session.execute(statement)
            row = session.execute("SELECT release_version FROM system.local").one()
        finally:
            cluster.shutdown()
        return f"Cassandra {row.release_version}"
