"""Webhook secrets sealed at rest (app.keyring): AES-GCM under a ring, newest key first."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import SecretStr

from app.errors import SettingsError
from app.keyring import KeyRing, SealedSecretError, decode_key, is_sealed, key_ring, new_key
from app.settings import SecretsSettings, Settings, load_settings
from app.webhooks import PreviousSecret, Webhook

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def ring(*keys: str) -> KeyRing:
    return KeyRing([decode_key(k) for k in keys])


def webhook() -> Webhook:
    now = datetime(2026, 1, 15, tzinfo=UTC)
    return Webhook(
        id="hook_1",
        url="https://example.com/hook",
        events=("user.created",),
        secret=SECRET,
        active=True,
        created_at=now,
        updated_at=now,
        previous_secrets=(PreviousSecret("old-secret-123", now),),
    )


def test_a_sealed_secret_hides_the_secret_and_opens_again() -> None:
    keys = ring(new_key())
    sealed = keys.seal("hook_1", SECRET)
    assert is_sealed(sealed)
    assert SECRET not in sealed
    assert keys.open("hook_1", sealed) == SECRET
    assert keys.seal("hook_1", SECRET) != sealed  # a fresh nonce every time


def test_an_older_key_still_opens_and_new_values_use_the_newest() -> None:
    old, new = new_key(), new_key()
    sealed_before = ring(old).seal("hook_1", SECRET)
    rotated = ring(new, old)
    assert rotated.open("hook_1", sealed_before) == SECRET
    assert not rotated.is_current(sealed_before)
    assert rotated.is_current(rotated.seal("hook_1", SECRET))


def test_a_plain_secret_from_before_reads_as_it_is() -> None:
    assert ring(new_key()).open("hook_1", SECRET) == SECRET
    assert not ring(new_key()).is_current(SECRET)


def test_a_sealed_secret_does_not_open_for_another_webhook_or_without_its_key() -> None:
    key = new_key()
    sealed = ring(key).seal("hook_1", SECRET)
    with pytest.raises(SealedSecretError, match="sealed for another webhook"):
        ring(key).open("hook_2", sealed)
    with pytest.raises(SealedSecretError, match="HOOKSTREAM_SECRETS__KEYS does not hold"):
        ring(new_key()).open("hook_1", sealed)


def test_without_keys_secrets_stay_plain() -> None:
    empty = KeyRing([])
    assert not empty.enabled
    assert empty.seal("hook_1", SECRET) == SECRET
    assert empty.seal_webhook(webhook()) == webhook()


def test_a_webhook_is_sealed_whole_and_opened_whole() -> None:
    keys = ring(new_key())
    sealed = keys.seal_webhook(webhook())
    assert SECRET not in repr(sealed.secret) and is_sealed(sealed.secret)
    assert all(is_sealed(p.secret) for p in sealed.previous_secrets)
    assert keys.open_webhook(sealed) == webhook()


def test_keys_come_from_the_environment_or_a_mounted_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = new_key(), new_key()
    monkeypatch.setenv("HOOKSTREAM_SECRETS__KEYS", f"{first},{second}")
    settings = Settings()
    assert [k.get_secret_value() for k in settings.secrets.keys] == [first, second]
    assert first not in repr(settings)
    path = tmp_path / "keys"
    path.write_text(f"{second}\n{first}\n")
    monkeypatch.setenv("HOOKSTREAM_SECRETS__KEYS_FILE", str(path))
    assert [k.get_secret_value() for k in Settings().secrets.keys] == [second, first]


def test_a_malformed_key_fails_start_up_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HOOKSTREAM_SECRETS__KEYS", "c2hvcnQ=")  # 5 bytes
    with pytest.raises(SettingsError, match="HOOKSTREAM_SECRETS__KEYS"):
        load_settings()


def test_the_ring_is_built_once_per_configuration() -> None:
    cfg = SecretsSettings(keys=(SecretStr(new_key()),))
    settings = Settings().model_copy(update={"secrets": cfg})
    assert key_ring(settings) is key_ring(settings)
    assert key_ring(settings).enabled
