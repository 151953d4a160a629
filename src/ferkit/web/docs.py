"""The API docs pages, /docs (Swagger UI) and /redoc (ReDoc), served from files on this machine.

FastAPI's own pages load Swagger UI and ReDoc from a CDN, so on an offline machine they stay blank. This follows
FastAPI's recipe for self-hosted docs (the app is built with docs_url=None, redoc_url=None): the pages come from
``get_swagger_ui_html`` / ``get_redoc_html`` pointed at the JavaScript, CSS and icon that the pinned package
fastapi-offline ships (Swagger UI 5 under Apache-2.0, ReDoc 2 under MIT), mounted at ``/docs/assets``.

Swagger UI starts from an inline script: each page's Content-Security-Policy allows exactly its own inline
scripts by their SHA-256 hashes (ferkit.web.guard.docs_csp), never 'unsafe-inline'. ReDoc's side menu shows
Redocly's logo from their CDN: that one URL is served blanked (the image then hides itself), so the page makes
no request that leaves the machine.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

from ferkit.web.guard import docs_csp

ASSETS_DIR = Path(fastapi_offline.__file__).resolve().parent / "static"
ASSETS_URL = "/docs/assets"
INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)
REDOC_LOGO = b"https://cdn.redoc.ly/redoc/logo-mini.svg"


def add_docs(app: FastAPI, docs_url: str = "/docs", redoc_url: str = "/redoc") -> None:
    """Add the two docs pages, Swagger UI's OAuth2 redirect page and the mount of their files to app."""
    @app.get(f"{ASSETS_URL}/redoc.standalone.js", include_in_schema=False)  # before the mount: this one wins
    async def redoc_js():
        return Response(_offline_redoc_js(), media_type="text/javascript; charset=utf-8",
                        headers={"Cache-Control": "no-cache"})

    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS_DIR), name="docs-assets")
    redirect_url = app.swagger_ui_oauth2_redirect_url
    favicon = f"{ASSETS_URL}/favicon.png"

    @app.get(docs_url, include_in_schema=False)
    async def swagger_ui():
        # validatorUrl None: Swagger UI would otherwise show a badge image from validator.swagger.io
        return _with_csp(get_swagger_ui_html(
            openapi_url=app.openapi_url, title=f"{app.title} - Swagger UI", oauth2_redirect_url=redirect_url,
            swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js", swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=favicon, swagger_ui_parameters={"validatorUrl": None}))

    if redirect_url:
        @app.get(redirect_url, include_in_schema=False)
        async def swagger_ui_redirect():
            return _with_csp(get_swagger_ui_oauth2_redirect_html())

    @app.get(redoc_url, include_in_schema=False)
    async def redoc():
        return _with_csp(get_redoc_html(openapi_url=app.openapi_url, title=f"{app.title} - ReDoc",
                                        redoc_js_url=f"{ASSETS_URL}/redoc.standalone.js",
                                        redoc_favicon_url=favicon, with_google_fonts=False))


@functools.lru_cache(maxsize=1)
def _offline_redoc_js() -> bytes:
    return (ASSETS_DIR / "redoc.standalone.js").read_bytes().replace(REDOC_LOGO, b"data:,")


def _with_csp(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = docs_csp(INLINE_SCRIPT.findall(page.body.decode()))
    page.headers["Cache-Control"] = "no-cache"
    return page
