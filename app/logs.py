"""Logging, configured once per process: JSON lines in containers, readable text on a tty.

Every line about a delivery carries event_id, webhook_id, delivery_id and attempt (pass them
in ``extra=``). Secrets and signatures are never passed to a logger; ``redact`` is a last net.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

import orjson

from app.settings import LogSettings

CONTEXT_FIELDS = ("event_id", "webhook_id", "delivery_id", "attempt", "status_code", "outcome")
_SECRETISH = re.compile(r"(whsec_[A-Za-z0-9+/=]{8,}|hsk_[A-Za-z0-9_\-]{8,}|v1,[A-Za-z0-9+/=]{20,})")


def redact(text: str) -> str:
    return _SECRETISH.sub("[redacted]", text)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        for name in CONTEXT_FIELDS:
            if hasattr(record, name):
                out[name] = getattr(record, name)
        if record.exc_info:
            out["exc"] = redact(self.formatException(record.exc_info))
        return orjson.dumps(out, default=str).decode()


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        context = " ".join(
            f"{name}={getattr(record, name)}" for name in CONTEXT_FIELDS if hasattr(record, name)
        )
        line = f"{self.formatTime(record, '%H:%M:%S')} {record.levelname:<7} {record.name}: "
        line += redact(record.getMessage()) + (f"  [{context}]" if context else "")
        if record.exc_info:
            line += "\n" + redact(self.formatException(record.exc_info))
        return line


def configure(settings: LogSettings) -> None:
    fmt = settings.format
    if fmt == "auto":
        fmt = "text" if sys.stderr.isatty() else "json"
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.level)
    for noisy in ("cassandra", "aiokafka", "faust", "mode", "kafka", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
