"""The servers' jars, fetched once from Maven Central into ``<home>/jars/<server>-<version>/``.

Each server gets its own throw-away POM and its own ``lib/``: Kafka and Cassandra need different
logging bindings, Netty and Guava, so one classpath can never hold both. Maven resolves the
runtime dependency tree; ``~/.m2`` makes a second fetch of the same version fast.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from app.errors import StackError
from app.localstack.filelock import file_lock
from app.localstack.layout import render

COPY_DEPENDENCIES = "org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy-dependencies"
# Kafka 4.1.x pins log4j2 2.24.3; the tarball ships it, the Maven POM does not (see the template).
LOG4J2_VERSION = "2.24.3"
# Written last, so a fetch interrupted half-way is never mistaken for a complete lib dir.
MARKER = ".complete"
# A jar every complete lib dir must hold; guards against a marker over an emptied dir.
_KEY_JARS = {"kafka": "kafka_2.13-{version}.jar", "cassandra": "cassandra-all-{version}.jar"}
_FETCH_TIMEOUT = 1800.0


def lib_dir(jars_home: Path, server: str, version: str) -> Path:
    return jars_home / f"{server}-{version}" / "lib"


def fetch(
    jars_home: Path,
    server: str,
    version: str,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """The complete ``lib/`` of ``server`` at ``version``; runs Maven only when it is missing.

    Safe to call from several processes at once: the first fetches, the others wait and reuse.
    Raises ``StackError`` (with the tail of Maven's output) when Maven is missing or fails.
    """
    lib = lib_dir(jars_home, server, version)
    key_jar = _KEY_JARS[server].format(version=version)
    with file_lock(lib.parent / ".lock"):
        marker = lib / MARKER
        if marker.is_file() and marker.read_text().strip() == version and (lib / key_jar).is_file():
            return lib
        mvn = shutil.which("mvn")
        if mvn is None:
            raise StackError("Maven (mvn) is not on PATH; it fetches the Kafka and Cassandra jars")
        if progress:
            progress(f"fetching {server} {version} jars from Maven Central (one time)")
        pom = lib.parent / "pom.xml"
        pom.write_text(
            render(
                f"{server}-pom.xml",
                kafka_version=version,
                cassandra_version=version,
                log4j2_version=LOG4J2_VERSION,
            )
        )
        # Start from an empty dir: jars of an interrupted or older fetch must not linger.
        shutil.rmtree(lib, ignore_errors=True)
        lib.mkdir(parents=True)
        command = [
            mvn, "-B", "-q", "-f", str(pom), COPY_DEPENDENCIES,
            "-DincludeScope=runtime", f"-DoutputDirectory={lib}",
        ]  # fmt: skip
        try:
            done = subprocess.run(
                command,
                capture_output=True,
                text=True,
                timeout=_FETCH_TIMEOUT,
                stdin=subprocess.DEVNULL,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise StackError(f"Maven took over {_FETCH_TIMEOUT:.0f} s fetching {server}") from exc
        output = (done.stdout or "") + (done.stderr or "")
        if done.returncode != 0 or not (lib / key_jar).is_file():
            tail = "\n".join(output.strip().splitlines()[-40:])
            raise StackError(
                f"fetching {server} {version} jars failed (mvn exit {done.returncode}, "
                f"{key_jar} {'present' if (lib / key_jar).is_file() else 'missing'}); "
                f"command: {' '.join(command)}\n{tail}"
            )
        marker.write_text(version + "\n")
        return lib
