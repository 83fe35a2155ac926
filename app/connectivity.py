"""Start-up checks of the connections every role needs, so a wrong password or an untrusted
certificate stops a role within seconds with a message naming the setting.

Without them librdkafka retries a refused login forever (the role hangs, "all brokers down"),
and a refused Cassandra login surfaces as a traceback from inside uvicorn or Faust.
"""

from __future__ import annotations

import logging

from app.settings import Settings

log = logging.getLogger(__name__)

KAFKA_CHECK_TIMEOUT = 15.0  # seconds; an outage is reported after this, a refusal at once


def check_connectivity(settings: Settings, *, cassandra: bool = True) -> None:
    """Raise ``HookstreamError`` (``StoreUnavailable`` for Cassandra) naming the setting at
    fault when Kafka or Cassandra refuses or does not answer; return when both answer."""
    from app.kafka import metadata
    from app.store.session import connect

    found = metadata(settings, timeout=KAFKA_CHECK_TIMEOUT)
    log.info("kafka: %d broker(s) over %s", len(found.brokers), settings.kafka.security_protocol)
    if cassandra:
        # The driver logs each failed attempt with its traceback; the error raised here says it
        # once, in words. Its loggers are quiet only for this one check.
        quiet = [logging.getLogger(name) for name in ("cassandra.cluster", "cassandra.connection")]
        levels = [logger.level for logger in quiet]
        for logger in quiet:
            logger.setLevel(logging.CRITICAL)
        try:
            session = connect(settings)
        finally:
            for logger, level in zip(quiet, levels, strict=True):
                logger.setLevel(level)
        session.cluster.shutdown()
        log.info("cassandra: connected%s", " over TLS" if settings.cassandra.ssl else "")
