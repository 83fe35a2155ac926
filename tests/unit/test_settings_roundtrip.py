"""Every setting can be written as an environment variable and read back unchanged — the
property the deploy files and the role subprocesses in tests rely on."""

import pytest

from app.settings import Settings
from tests.support import settings_env


def test_every_setting_round_trips_through_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    original = Settings(
        retry_schedule="0,1s,2s,250ms",  # type: ignore[arg-type]
        allowed_networks="127.0.0.0/8,::1/128",  # type: ignore[arg-type]
        api_keys="k1,k2",  # type: ignore[arg-type]
    )
    env = settings_env(original)
    for name in list(__import__("os").environ):
        if name.startswith("HOOKSTREAM_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    rebuilt = Settings()
    assert rebuilt.model_dump(exclude={"log", "api_keys"}) == original.model_dump(
        exclude={"log", "api_keys"}
    )
    assert [k.get_secret_value() for k in rebuilt.api_keys] == ["k1", "k2"]
