"""Headless Debian Chromium (``make test`` installs it) driven by Playwright, against a real
pipeline: api, worker, scheduler and recorder as role processes on the session's stack.

Every page of a test runs in a context that lets requests reach loopback only and records any
other: the console and the docs must work air-gapped, so a test asserts that list is empty.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest

from app.settings import Settings
from tests.support import (
    API_KEY,
    Receiver,
    pipeline_settings,
    running,
)

LOOPBACK = {"127.0.0.1", "localhost", "[::1]", "::1"}


def chromium_path() -> str:
    found = os.environ.get("HOOKSTREAM_CHROMIUM") or shutil.which("chromium")
    if not found:
        pytest.fail("Chromium is missing: `make browser` installs it (apt-get install chromium)")
    return found


@dataclass
class Console:
    settings: Settings
    receiver: Receiver
    api: Any  # httpx.AsyncClient with the test key

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.settings.api.port}"


@dataclass
class Traffic:
    """What the browser asked for: every URL, the off-loopback ones (refused), and the /v1
    requests that went without the key."""

    urls: list[str] = field(default_factory=list)
    external: list[str] = field(default_factory=list)
    unauthenticated: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
async def console(stack_settings: Settings) -> AsyncIterator[Console]:
    # Two attempts 1 s apart: a receiver answering 500 twice leaves a failed delivery fast.
    settings = pipeline_settings(
        stack_settings,
        uuid.uuid4().hex[:10],
        retry_schedule=(timedelta(0), timedelta(seconds=1)),
    )
    async with running(settings) as run:
        yield Console(settings, run.receiver, run.api)


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=chromium_path(), headless=True)
        try:
            yield launched
        finally:
            await launched.close()


async def guarded_context(browser: Any, traffic: Traffic, **options: Any) -> Any:
    context = await browser.new_context(**options)

    async def route(request_route: Any) -> None:
        request = request_route.request
        traffic.urls.append(request.url)
        parts = urlsplit(request.url)
        if parts.scheme in {"http", "https"} and parts.hostname not in LOOPBACK:
            traffic.external.append(request.url)
            await request_route.abort()
            return
        if parts.path.startswith("/v1/") and "authorization" not in request.headers:
            traffic.unauthenticated.append(request.url)
        await request_route.continue_()

    await context.route("**/*", route)
    return context


@pytest.fixture
async def traffic() -> Traffic:
    return Traffic()


@pytest.fixture
async def page(browser: Any, traffic: Traffic) -> AsyncIterator[Any]:
    context = await guarded_context(browser, traffic, viewport={"width": 1280, "height": 900})
    try:
        yield await context.new_page()
    finally:
        await context.close()


@pytest.fixture
async def phone(browser: Any, traffic: Traffic) -> AsyncIterator[Any]:
    context = await guarded_context(
        browser, traffic, viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
    )
    try:
        yield await context.new_page()
    finally:
        await context.close()


async def sign_in(page: Any, console: Console, path: str = "/console/webhooks") -> None:
    from playwright.async_api import expect

    await page.goto(console.base + path)
    await expect(page).to_have_url(re.compile(r".*/console/signin\?next="))
    await page.get_by_label("API key").fill(API_KEY)
    await page.get_by_label("API key").press("Enter")
    await expect(page).to_have_url(console.base + path)
    await expect(page.locator("body[data-ready=true]")).to_have_count(1)
