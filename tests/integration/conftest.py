"""Integration tests share the session fixtures of ``tests/conftest.py``; ``isolated`` gives a
test its own topics, groups and keyspace on the one local stack."""

from tests.support import isolated

__all__ = ["isolated"]
