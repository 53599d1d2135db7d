"""The chat page: `/` serves index.html, `/web/*` its modules, styles and vendored libraries.

Plain ES modules, no build step: what is in `static/` is what the browser runs, so `make run`
needs no Node and no network. Every response carries the page's Content-Security-Policy.
"""

from __future__ import annotations

import mimetypes
import os
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from starlette.responses import Response
from starlette.types import Scope

from app.config import Settings
from app.web.security import BASE_HEADERS, page_csp

STATIC_DIR = Path(__file__).parent / "static"
WEB_URL = "/web"
# Some systems' MIME tables lack .mjs; browsers refuse a module served as text/plain.
mimetypes.add_type("text/javascript", ".mjs")


class PageConfig(BaseModel):
    """What the page needs to know about this server before anyone signs in."""

    dev_sign_in: bool  # POST /api/dev/token exists ("Continue as <name>")
    host_origins: list[str]  # origins that may embed the page and hand it a token
    max_message_chars: int
    max_title_chars: int


class _PageFiles(StaticFiles):
    """Static files with the page's headers, revalidated on each load so upgrades show at once."""

    def __init__(self, *, directory: Path, headers: dict[str, str]) -> None:
        super().__init__(directory=directory)
        self._headers = headers

    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers.update(self._headers)
        return response


def add_page(app: FastAPI, settings: Settings) -> None:
    """Serve the chat page at `/` and its files under `/web`."""
    headers = {
        **BASE_HEADERS,
        "Content-Security-Policy": page_csp(settings.CORS_ALLOW_ORIGINS),
        "Cache-Control": "no-cache",
    }
    config = PageConfig(
        dev_sign_in=settings.dev_sign_in_enabled,
        host_origins=settings.CORS_ALLOW_ORIGINS,
        max_message_chars=settings.MAX_MESSAGE_CHARS,
        max_title_chars=settings.MAX_TITLE_CHARS,
    )

    @app.get("/", include_in_schema=False)
    async def chat_page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers=headers)

    # Declared before the mount below, which would otherwise answer for this path.
    @app.get(f"{WEB_URL}/config.json", include_in_schema=False)
    async def page_config() -> Response:
        return Response(config.model_dump_json(), media_type="application/json", headers=headers)

    app.mount(WEB_URL, _PageFiles(directory=STATIC_DIR, headers=headers), name="web")
