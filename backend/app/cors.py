"""CORS for browser front ends on other origins, limited to the API's paths.

A front end served elsewhere (another port in development, the host app's domain in
production) calls the API with `fetch` and a bearer token; the browser first sends a preflight
that must be answered for the origins in `CORS_ALLOW_ORIGINS`. Nothing else is opened up: the
chat page, the docs, the probes and `/metrics` stay same-origin.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from app.config import Settings

CORS_PATH_PREFIXES = ("/api/", "/chatkit")
# Browsers cap this anyway (Chromium at 2 hours); 10 minutes keeps config changes quick to land.
PREFLIGHT_MAX_AGE_SECONDS = 600
ALLOWED_METHODS = ["GET", "POST", "PATCH", "DELETE"]
# Authorization carries the token; Last-Event-ID resumes a reply stream (fetch, not EventSource).
ALLOWED_HEADERS = ["Authorization", "Content-Type", "Last-Event-ID"]
# A 503 or 429 tells the client when to retry; scripts only see headers that are exposed.
EXPOSED_HEADERS = ["Retry-After"]


class PathScopedCORSMiddleware:
    """Starlette's `CORSMiddleware` for requests under `prefixes`; others pass untouched."""

    def __init__(self, app: ASGIApp, *, origins: list[str], prefixes: tuple[str, ...]) -> None:
        self.app = app
        self.prefixes = prefixes
        # Tokens travel in a header, never in cookies, so credentials stay off: a listed
        # origin gets no ambient authority from the user's browser.
        self.cors = CORSMiddleware(
            app,
            allow_origins=origins,
            allow_methods=ALLOWED_METHODS,
            allow_headers=ALLOWED_HEADERS,
            expose_headers=EXPOSED_HEADERS,
            allow_credentials=False,
            max_age=PREFLIGHT_MAX_AGE_SECONDS,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and str(scope["path"]).startswith(self.prefixes):
            await self.cors(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def add_cors(app: FastAPI, settings: Settings) -> None:
    """Answer preflights for the API; with no origins configured, every origin is refused.

    Installed even with an empty list, so a cross-origin preflight gets a clear refusal
    (400, no `access-control-allow-origin`) instead of a 405 from the router. Add it last:
    it must wrap the other middleware so that their error responses carry CORS headers too.
    """
    app.add_middleware(
        PathScopedCORSMiddleware,
        origins=settings.CORS_ALLOW_ORIGINS,
        prefixes=CORS_PATH_PREFIXES,
    )
