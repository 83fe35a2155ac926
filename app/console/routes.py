"""Console pages (``/console/...``), their static assets, and ``/docs`` / ``/redoc`` with
locally served Swagger UI and ReDoc assets (FastAPI's defaults load them from a CDN)."""

from __future__ import annotations

import hashlib
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

HERE = Path(__file__).parent
STATIC = HERE / "static"
PREFIX = "/console"
DOCS_ASSETS = "/docs-assets"

# Scripts and styles come only from this origin (no inline script), the page talks only to
# this origin, and no other site may frame it (clickjacking a retry or a pause).
CONSOLE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONSOLE_CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

# The docs pages run their bundles' inline bootstrap and styles; everything else is held to
# this origin, so what a bundle would fetch from elsewhere (ReDoc's footer logo) never leaves.
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; "
    "frame-ancestors 'none'"
)

# (path under /console, template, title); the nav shows those with a nav label.
PAGES: tuple[tuple[str, str, str, str | None], ...] = (
    ("/signin", "signin.html", "Sign in", None),
    ("/webhooks", "webhooks.html", "Webhooks", "Webhooks"),
    ("/events", "events.html", "Event lookup", "Event lookup"),
    ("/event-types", "event_types.html", "Event types", "Event types"),
)

templates = Jinja2Templates(directory=HERE / "templates")


@cache
def asset_version(name: str) -> str:
    """A short digest of a static file, appended to its URL so a new release is never served
    from a browser's cache of the old one."""
    return hashlib.sha256((STATIC / name).read_bytes()).hexdigest()[:12]


def nav_items() -> list[tuple[str, str]]:
    """(path, label) of the pages in the navigation bar."""
    return [(PREFIX + path, label) for path, _, _, label in PAGES if label]


def render(request: Request, template: str, title: str, **context: Any) -> HTMLResponse:
    root = request.scope.get("root_path", "")
    response = templates.TemplateResponse(
        request,
        template,
        {
            "title": title,
            "root": root,
            "prefix": root + PREFIX,
            "nav": [(root + path, label) for path, label in nav_items()],
            "asset": lambda name: f"{root}{PREFIX}/static/{name}?v={asset_version(name)}",
            **context,
        },
    )
    response.headers.update(SECURITY_HEADERS)
    return response


router = APIRouter(prefix=PREFIX, include_in_schema=False)


@router.get("")
@router.get("/")
async def console_home(request: Request) -> Response:
    # The webhooks page sends a signed-out person on to the sign-in page (it is the script
    # that knows about the key).
    return RedirectResponse(request.scope.get("root_path", "") + PREFIX + "/webhooks", 302)


def _page(template: str, title: str) -> Any:
    async def page(request: Request) -> HTMLResponse:
        return render(request, template, title)

    return page


for _path, _template, _title, _ in PAGES:
    router.add_api_route(_path, _page(_template, _title), methods=["GET"])


@router.get("/webhooks/{webhook_id}")
async def webhook_page(request: Request, webhook_id: str) -> HTMLResponse:
    return render(request, "webhook.html", "Webhook", webhook_id=webhook_id)


@router.get("/deliveries/{delivery_id}")
async def delivery_page(request: Request, delivery_id: str) -> HTMLResponse:
    return render(request, "delivery.html", "Delivery", delivery_id=delivery_id)


def docs_assets_dir() -> Path:
    """fastapi-offline ships Swagger UI's and ReDoc's bundles; only those files are used."""
    return Path(str(files("fastapi_offline") / "static"))


def install_docs(app: FastAPI) -> None:
    """``/docs`` and ``/redoc`` on locally served assets (create the app with
    ``docs_url=None, redoc_url=None``)."""
    app.mount(DOCS_ASSETS, StaticFiles(directory=docs_assets_dir()), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_swagger_ui_html(
            openapi_url=root + (app.openapi_url or "/openapi.json"),
            title=f"{app.title} — API",
            swagger_js_url=f"{root}{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{DOCS_ASSETS}/favicon.png",
            # Swagger UI would otherwise send the spec to an online validator.
            swagger_ui_parameters={"validatorUrl": None},
        )
        page.headers["Content-Security-Policy"] = DOCS_CSP
        return page

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_redoc_html(
            openapi_url=root + (app.openapi_url or "/openapi.json"),
            title=f"{app.title} — API",
            redoc_js_url=f"{root}{DOCS_ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{DOCS_ASSETS}/favicon.png",
            with_google_fonts=False,
        )
        page.headers["Content-Security-Policy"] = DOCS_CSP
        return page


def install(app: FastAPI) -> None:
    """Mount the console and the offline docs on ``app``."""
    app.include_router(router)
    app.mount(PREFIX + "/static", StaticFiles(directory=STATIC), name="console-static")
    install_docs(app)
