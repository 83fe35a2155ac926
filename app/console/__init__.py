"""The web console at ``/console`` and the OpenAPI docs pages, both served by the API process.

The console's pages are server-rendered shells (Jinja2 templates); a little vanilla JavaScript
fills them from the REST API (``/v1/...``) with the API key the person signed in with, kept in
``sessionStorage`` (never in a URL or a cookie). The server therefore renders nothing an API
key would unlock: scoping by account is the API's, exactly as for any other client.
Every asset is in the package (no CDN, no front-end build), so both work air-gapped.
"""

from app.console.routes import install

__all__ = ["install"]
