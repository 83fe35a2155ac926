"""The local stack for a test session: reuse a ready one, or start one and stop it afterwards.

In ``tests/integration/conftest.py``::

    @pytest.fixture(scope="session")
    def stack_settings(request: pytest.FixtureRequest) -> Settings:
        settings = Settings()
        ensure_stack(settings, request.addfinalizer)
        return settings
"""

from __future__ import annotations

import atexit
import logging
import os
from collections.abc import Callable

from app.localstack.stack import LocalStack
from app.settings import Settings

log = logging.getLogger(__name__)

# Set to 1 to leave a stack this session started running for the next one (fast local loops).
KEEP_ENV = "HOOKSTREAM_TEST_KEEP_STACK"


def ensure_stack(
    settings: Settings,
    addfinalizer: Callable[[Callable[[], None]], object] | None = None,
    *,
    keep: bool | None = None,
    progress: Callable[[str], None] | None = None,
    secure: bool = False,
    fresh: bool = False,
) -> LocalStack:
    """A ready stack on the ports of ``settings``.

    When both servers already answer their protocol there (started by ``hookstream stack up``,
    an earlier session, or anything else), it is reused and never stopped here. Otherwise the
    missing servers are started and ``stack.down`` is registered with ``addfinalizer`` (pytest's
    ``request.addfinalizer``; ``atexit`` when None), unless ``keep`` (default: the
    ``HOOKSTREAM_TEST_KEEP_STACK`` environment variable) says to leave it running.
    Raises ``StackError`` when the stack cannot start (busy port, wrong Java, server log tail).
    ``secure``: the secure test profile (its ``settings`` are then the client settings).
    ``fresh``: a stack this call has to start begins with empty data directories (a test session
    never needs an earlier one's data, and a node reloading hundreds of stale keyspaces starts
    slower and with less heap to spare).
    """
    say = progress or log.info
    stack = LocalStack(settings, secure=secure)
    if stack.is_ready():
        say(f"reusing the ready local stack on {settings.kafka.bootstrap_servers}")
        return stack
    if fresh:
        stack.down(wipe=True, progress=say)
    stack.up(say)
    if keep is None:
        keep = os.environ.get(KEEP_ENV, "") not in ("", "0", "false")
    if not keep:
        (addfinalizer or atexit.register)(stack.down)
    return stack
