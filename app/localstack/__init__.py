"""Real Apache Kafka 4 (KRaft) and Apache Cassandra 5.0 on this machine, from Maven Central jars.

No Docker, no tarballs: ``jars`` fetches each server's runtime classpath with Maven,
``kafka``/``cassandra`` write their config and command line, ``process`` runs each as a
detached JVM with a pid file, and ``stack.LocalStack`` ties them together:

    stack = LocalStack(settings)
    stack.up(print)          # idempotent; returns when both answer their protocol
    stack.status()           # per server: pid, ready, ports
    stack.down(wipe=False)   # SIGTERM, then SIGKILL; wipe also deletes the data

Files live under ``settings.stack.home``: ``jars/<server>-<version>/lib`` (shared) and
``run/<k…-c…-n…-s…>/`` (one per set of ports). ``testing.ensure_stack`` serves test sessions.
"""

from app.localstack.stack import LocalStack, ServerStatus, StackStatus

__all__ = ["LocalStack", "ServerStatus", "StackStatus"]
