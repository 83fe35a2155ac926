"""Webhook secrets encrypted at rest: AES-256-GCM under a key ring from the settings.

A webhook's signing secrets (current and previous) are sealed where they leave the process —
the Cassandra row (``app.store.webhooks``) and the compacted webhooks topic (``app.api.publish``)
— and opened where they come back (the same repository, ``app.worker.feed``). In memory they are
plain: workers sign with them.

    HOOKSTREAM_SECRETS__KEYS=<newest>,<older>,...     base64 of 32 random bytes each

A sealed value reads ``hsenc:v1:<key id>:<base64url(nonce ‖ ciphertext ‖ tag)>``: the key id
(8 hex digits of the key's SHA-256) picks the key that opens it, so any key on the ring opens
what it sealed while new values are always sealed with the newest. The webhook's id is the
associated data: a sealed secret copied onto another webhook does not open. A value without
the prefix is a plain secret from before encryption and reads as it is; ``hookstream migrate``
re-seals every webhook to the newest key (``reseal``), so an old key can leave the ring after.

With no key configured secrets stay plain (a local stack needs no key) and the ring says so
in one warning per process.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import logging
import os
from dataclasses import replace

from app.errors import HookstreamError
from app.settings import SecretsSettings, Settings
from app.webhooks import PreviousSecret, Webhook

log = logging.getLogger(__name__)

PREFIX = "hsenc:v1:"
KEY_BYTES = 32
NONCE_BYTES = 12


class SealedSecretError(HookstreamError):
    """A sealed secret that no key on the ring opens (a key missing, or the value altered)."""


def new_key() -> str:
    """A fresh key, in the spelling ``HOOKSTREAM_SECRETS__KEYS`` takes."""
    return base64.b64encode(os.urandom(KEY_BYTES)).decode()


def key_id(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:8]


def is_sealed(value: str) -> bool:
    return value.startswith(PREFIX)


class KeyRing:
    """Seal with the newest key, open with any. Empty: plain in, plain out."""

    def __init__(self, keys: list[bytes]) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self._newest = key_id(keys[0]) if keys else None
        self._ciphers = {key_id(key): AESGCM(key) for key in keys}

    @property
    def enabled(self) -> bool:
        return self._newest is not None

    @property
    def newest(self) -> str | None:
        """The id of the key new values are sealed with (None: no key, values stay plain)."""
        return self._newest

    def seal(self, owner: str, secret: str) -> str:
        """``secret`` sealed for webhook ``owner`` with the newest key (unchanged if none)."""
        if self._newest is None:
            return secret
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[self._newest].encrypt(nonce, secret.encode(), _aad(owner))
        return f"{PREFIX}{self._newest}:{base64.urlsafe_b64encode(nonce + sealed).decode()}"

    def open(self, owner: str, value: str) -> str:
        """The secret in ``value`` (a plain value is returned as it is)."""
        if not is_sealed(value):
            return value
        kid, _, body = value[len(PREFIX) :].partition(":")
        cipher = self._ciphers.get(kid)
        if cipher is None:
            raise SealedSecretError(
                f"webhook {owner}: its secret is sealed with key {kid}, which "
                "HOOKSTREAM_SECRETS__KEYS does not hold (add the key back, newest first)"
            )
        from cryptography.exceptions import InvalidTag

        try:
            raw = base64.urlsafe_b64decode(body)
            return cipher.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], _aad(owner)).decode()
        except (InvalidTag, binascii.Error, ValueError):
            raise SealedSecretError(
                f"webhook {owner}: its sealed secret does not open with key {kid} "
                "(altered, or sealed for another webhook)"
            ) from None

    def is_current(self, value: str) -> bool:
        """Whether ``value`` is already what ``seal`` writes now (no re-seal needed)."""
        if self._newest is None:
            return True  # nothing to seal with; sealed values stay readable while their key is
        return value.startswith(f"{PREFIX}{self._newest}:")

    def seal_webhook(self, webhook: Webhook) -> Webhook:
        """``webhook`` as it may be stored or published: every secret sealed."""
        return replace(
            webhook,
            secret=self.seal(webhook.id, webhook.secret),
            previous_secrets=tuple(
                PreviousSecret(self.seal(webhook.id, p.secret), p.expires_at)
                for p in webhook.previous_secrets
            ),
        )

    def open_webhook(self, webhook: Webhook) -> Webhook:
        """``webhook`` as read from storage or the topic, with every secret opened."""
        return replace(
            webhook,
            secret=self.open(webhook.id, webhook.secret),
            previous_secrets=tuple(
                PreviousSecret(self.open(webhook.id, p.secret), p.expires_at)
                for p in webhook.previous_secrets
            ),
        )


def _aad(owner: str) -> bytes:
    return f"hookstream webhook secret:{owner}".encode()


def key_ring(settings: Settings) -> KeyRing:
    """The process's key ring for these settings (built once per configuration)."""
    return _ring(settings.secrets)


@functools.lru_cache(maxsize=4)
def _ring(cfg: SecretsSettings) -> KeyRing:
    keys = [decode_key(k.get_secret_value()) for k in cfg.keys]
    if not keys:
        log.warning(
            "no HOOKSTREAM_SECRETS__KEYS: webhook secrets are stored and published in plain "
            "text (fine for a local stack, not for production)"
        )
    return KeyRing(keys)


def decode_key(text: str) -> bytes:
    """A key from its base64 spelling; ValueError unless it is 32 bytes."""
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("a key is base64 of 32 random bytes (`openssl rand -base64 32`)") from None
    if len(key) != KEY_BYTES:
        raise ValueError(f"a key is 32 bytes (base64), this one is {len(key)}")
    return key
