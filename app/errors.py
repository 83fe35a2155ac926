"""Hookstream's errors: one root, grouped by what the caller should do.

    HookstreamError
    ├── SettingsError            invalid configuration; start-up stops with the variable's name
    ├── InvalidEvent             an event that cannot be delivered; goes to the dead topic
    ├── InvalidWebhook           a webhook field the API refuses (422); carries the field
    ├── NotFound                 an unknown or deleted id (404)
    ├── StackError               the local Kafka/Cassandra stack could not start or stop
    └── HandOffError             Kafka or Cassandra refused durable work (an outage): the
                                 worker holds the message unacknowledged and retries the
                                 hand-off until the dependency is back; it never acks it

"Retry or not?" is a question about the category, never about a message string.
"""

from __future__ import annotations


class HookstreamError(Exception):
    """Root of every error Hookstream raises on purpose."""


class SettingsError(HookstreamError):
    """A setting has an invalid value; the message names the environment variable."""


class InvalidEvent(HookstreamError):
    """An event that can never be delivered. ``reason`` is a short machine-readable code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class InvalidWebhook(HookstreamError):
    """A webhook field that is refused; ``field`` names it for the API's error shape."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class NotFound(HookstreamError):
    """An id that does not exist (or no longer does)."""


class StackError(HookstreamError):
    """The local stack failed; the message carries the tail of the server's log."""


class HandOffError(HookstreamError):
    """Durable hand-off (Kafka produce or Cassandra write) failed after its own retries."""
