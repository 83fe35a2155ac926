"""``python -m app.scheduler``: the scheduler role with settings from the environment.

(``hookstream scheduler`` in ``app.cli`` is the production entry point; this one exists for
development and the subprocess tests, so it sets up minimal logging itself.)
"""

from __future__ import annotations

import logging
import sys

from app.errors import HookstreamError
from app.scheduler.role import main
from app.settings import load_settings


def _run() -> int:
    try:
        settings = load_settings()
    except HookstreamError as exc:
        print(exc, file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log.level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        main(settings)
    except HookstreamError:
        logging.getLogger("app.scheduler").exception("scheduler stopped on an error")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(_run())
