"""The sender's per-URL check cache: the same answer as the check itself, and bounded."""

from __future__ import annotations

import asyncio

import pytest

from app.delivery import AttemptRequest, Refused
from app.delivery import sender as sender_module
from app.delivery.sender import AiohttpSender
from app.settings import DeliverySettings

REFUSED = [
    ("http://127.0.0.1:9/hook", "refused"),
    ("ftp://example.com/hook", "not an absolute http(s) URL"),
    ("http://user:pw@example.com/hook", "URL contains user info"),
    ("http://169.254.169.254/latest", "refused"),
]


def _send(sender: AiohttpSender, url: str) -> object:
    request = AttemptRequest(url=url, body=b"{}", headers={}, webhook_id="wh_1")
    return asyncio.run(sender.send(request))


@pytest.mark.parametrize(("url", "why"), REFUSED)
def test_a_refused_url_is_refused_again_from_the_cache(url: str, why: str) -> None:
    sender = AiohttpSender(DeliverySettings())
    first, second = _send(sender, url), _send(sender, url)
    assert isinstance(first, Refused) and why in first.reason
    assert second == first


def test_the_cache_restarts_when_full(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sender_module, "URL_CACHE_SIZE", 3)
    sender = AiohttpSender(DeliverySettings())
    for port in range(1, 8):
        assert isinstance(_send(sender, f"http://127.0.0.1:{port}/"), Refused)
        assert len(sender._urls) <= 3
