"""The console's server side without a browser or a stack: its pages are shells that carry
no data and load nothing from another origin, and /docs works air-gapped (the app without
its store and producer, driven through ASGI)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from html.parser import HTMLParser

import httpx
import pytest

from app.api.app import build
from app.console.routes import (
    CONSOLE_CSP,
    DOCS_CSP,
    PAGES,
    PREFIX,
    STATIC,
    asset_version,
    nav_items,
)
from app.settings import Settings

EXTERNAL = re.compile(r"""(?:https?:)?//(?!127\.0\.0\.1|localhost)[\w.-]+""")
PAGE_PATHS = [
    *(PREFIX + path for path, *_ in PAGES),
    f"{PREFIX}/webhooks/hook_abc123",
    f"{PREFIX}/deliveries/del_abc123",
]


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = build(Settings(), lifespan=None)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://console.test"
    ) as client:
        yield client


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def tags(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = Tags()
    parser.feed(html)
    return parser.tags


@pytest.mark.parametrize("path", PAGE_PATHS)
async def test_every_page_is_a_shell_with_strict_headers(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.get(path)
    assert response.status_code == 200
    assert response.headers["content-security-policy"] == CONSOLE_CSP
    assert "script-src 'self'" in CONSOLE_CSP and "frame-ancestors 'none'" in CONSOLE_CSP
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["referrer-policy"] == "no-referrer"
    found = tags(response.text)
    scripts = [a for t, a in found if t == "script"]
    # One script, from this origin, never inline (the CSP would refuse it anyway).
    assert [s["src"] for s in scripts] == [
        f"{PREFIX}/static/console.js?v={asset_version('console.js')}"
    ]
    # Nothing it loads or links to is on another origin.
    refs = [a.get(k) or "" for _, a in found for k in ("src", "href", "action") if a.get(k)]
    assert refs and not [r for r in refs if EXTERNAL.match(r)], refs
    # Every form control has a label pointing at it.
    labelled = {a.get("for") for t, a in found if t == "label"}
    controls = [
        a["id"] for t, a in found if t in {"input", "select"} and a.get("type") != "checkbox"
    ]
    assert all(c in labelled for c in controls), (controls, labelled)
    assert ("main", {"id": "main", "tabindex": "-1"}) in found


async def test_ids_in_the_path_are_escaped(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{PREFIX}/webhooks/%3Cimg%20src=x%20onerror=alert(1)%3E")
    assert response.status_code == 200
    assert "<img src=x" not in response.text
    assert "&lt;img src=x onerror=alert(1)&gt;" in response.text


async def test_the_console_root_leads_to_the_webhooks(client: httpx.AsyncClient) -> None:
    for path in (PREFIX, PREFIX + "/"):
        response = await client.get(path)
        assert response.status_code == 302
        assert response.headers["location"] == f"{PREFIX}/webhooks"


async def test_static_assets_are_served(client: httpx.AsyncClient) -> None:
    for name in ("console.js", "console.css"):
        response = await client.get(f"{PREFIX}/static/{name}")
        assert response.status_code == 200
        assert response.content == (STATIC / name).read_bytes()


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
async def test_the_docs_reference_no_external_url(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 200
    assert not EXTERNAL.search(response.text), EXTERNAL.search(response.text)
    # What the bundles themselves would fetch from elsewhere is refused by the browser.
    assert response.headers["content-security-policy"] == DOCS_CSP
    assert "img-src 'self' data:;" in DOCS_CSP and "connect-src 'self';" in DOCS_CSP
    refs = [
        a.get("src") or a.get("href") for t, a in tags(response.text) if t in {"script", "link"}
    ]
    refs = [r for r in refs if r]
    assert refs and all(r.startswith("/docs-assets/") for r in refs), refs
    for ref in refs:
        asset = await client.get(ref)
        assert asset.status_code == 200 and len(asset.content) > 1000, ref


async def test_swagger_ui_sends_the_spec_to_no_online_validator(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/docs")
    assert '"validatorUrl": null' in response.text


async def test_the_console_stays_out_of_the_openapi_document(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert not [p for p in paths if p.startswith(PREFIX) or p in {"/docs", "/redoc"}]


def test_asset_versions_follow_the_content() -> None:
    version = asset_version("console.js")
    assert re.fullmatch(r"[0-9a-f]{12}", version)
    assert version != asset_version("console.css")


def test_the_nav_lists_the_pages_but_not_sign_in() -> None:
    assert nav_items() == [
        (f"{PREFIX}/webhooks", "Webhooks"),
        (f"{PREFIX}/events", "Event lookup"),
        (f"{PREFIX}/event-types", "Event types"),
    ]
