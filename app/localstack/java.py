"""The Java 17 binary both servers run on, and the environment they get.

Exactly 17: Kafka 4.x brokers need 17 or newer, and Cassandra 5.0 fails on 18-23 without extra
flags (Security Manager) and can never run on 24+. ``JAVA_HOME`` is ignored on purpose: CI may
point it at a newer JDK for Maven.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from app.errors import StackError

_VERSION = re.compile(r'version "(\d+)(?:[.\-+"]|$)')
# The JVM reads these itself; a developer's debug agent or heap flag must not reach the servers.
_STRIPPED = ("JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS", "JDK_JAVA_OPTIONS")


def check_java(java: str) -> str:
    """``java`` as an absolute path, after checking that it runs and is Java 17."""
    path = Path(java).expanduser()
    if not path.is_file() or not os.access(path, os.X_OK):
        raise StackError(
            f"Java 17 not found at {path} (HOOKSTREAM_STACK__JAVA); "
            "install OpenJDK 17 or point the setting at its bin/java"
        )
    try:
        done = subprocess.run(
            [str(path), "-version"],
            capture_output=True,
            text=True,
            timeout=30,
            env=server_env(),
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise StackError(f"{path} -version failed: {exc}") from exc
    match = _VERSION.search(done.stderr + done.stdout)
    if match is None or match.group(1) != "17":
        found = (done.stderr + done.stdout).strip().splitlines()[:1]
        raise StackError(
            f"{path} is not Java 17 ({found[0] if found else 'no version output'}); "
            "Kafka 4 and Cassandra 5.0 both run on 17 (HOOKSTREAM_STACK__JAVA)"
        )
    return str(path.resolve())


def server_env() -> dict[str, str]:
    """This process's environment without the variables that inject JVM options."""
    return {k: v for k, v in os.environ.items() if k not in _STRIPPED}
