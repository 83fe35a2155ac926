"""The CLI's contract with scripts: help everywhere, exit codes, clear refusals."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def run(
    *args: str, env: dict[str, str] | None = None, stdin: str = ""
) -> subprocess.CompletedProcess[str]:

    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        check=False,
        capture_output=True,
        text=True,
        input=stdin,
        env={**os.environ, **(env or {})},
        timeout=60,
    )


@pytest.mark.parametrize(
    "command",
    [[], ["api"], ["worker"], ["scheduler"], ["migrate"], ["up"], ["stack"], ["produce"],
     ["listen"], ["webhooks", "create"], ["deliveries", "tail"], ["apikey", "create"]],
)  # fmt: skip
def test_help_everywhere(command: list[str]) -> None:
    result = run(*command, "--help")
    assert result.returncode == 0, result.stderr
    assert "Usage" in result.stdout


def test_an_invalid_setting_stops_with_the_variable_name_and_exit_2() -> None:
    result = run("stack", "status", env={"HOOKSTREAM_KAFKA__PARTITIONS": "many"})
    assert result.returncode == 2
    assert "HOOKSTREAM_KAFKA__PARTITIONS" in result.stderr


@pytest.mark.parametrize(
    ("args", "stdin", "reason"),
    [
        (["--type", "User Created"], "", "bad_type"),
        (["--type", "user.created", "--data", "[1]"], "", "bad_data"),
        (["--type", "user.created", "--data", "{"], "", "bad_data"),
        (["--file", "-"], '{"id": "a.b", "type": "user.created", "data": {}}', "bad_id"),
        (["--file", "-"], "not json", "not_json"),
    ],
)
def test_produce_validates_before_sending(args: list[str], stdin: str, reason: str) -> None:
    # Nothing listens on this port: a validation error must come before any connection.
    result = run(
        "produce", *args, stdin=stdin, env={"HOOKSTREAM_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:1"}
    )
    assert result.returncode == 2, result.stderr
    assert reason in result.stderr
