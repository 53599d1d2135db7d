"""Exports: one thread (JSON or Markdown) and the caller's whole account (JSON), streamed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from app.api.deps import CurrentUserDep, OwnedThreadDep, SessionMakerDep
from app.errors import ERROR_RESPONSES
from app.models.base import utc_now
from app.models.export import ExportDocument
from app.services.export import ExportScope, stream_json
from app.services.export_markdown import stream_markdown

router = APIRouter(tags=["export"], responses=ERROR_RESPONSES)

_JSON_EXPORT: dict[int | str, dict[str, Any]] = {
    200: {"model": ExportDocument, "description": "The export document (streamed)"}
}


def _download(body: AsyncIterator[bytes], media_type: str, filename: str) -> StreamingResponse:
    return StreamingResponse(
        body,
        media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.get(
    "/threads/{thread_id}/export",
    response_class=StreamingResponse,
    responses={
        200: {
            "model": ExportDocument,
            "description": "The thread as an export document, or as Markdown",
            "content": {"text/markdown": {}},
        }
    },
)
async def export_thread(
    *,
    thread: OwnedThreadDep,
    user: CurrentUserDep,
    sessionmaker: SessionMakerDep,
    format: Literal["json", "markdown"] = "json",
) -> StreamingResponse:
    """One of your threads with its messages and tool calls (`format=json|markdown`)."""
    scope = ExportScope(user.id, user.subject, utc_now(), thread=thread)
    if format == "markdown":
        body = stream_markdown(sessionmaker, scope)
        return _download(body, "text/markdown; charset=utf-8", f"thread-{thread.id}.md")
    return _download(
        stream_json(sessionmaker, scope), "application/json", f"thread-{thread.id}.json"
    )


@router.get("/me/export", response_class=StreamingResponse, responses=_JSON_EXPORT)
async def export_account(
    *, user: CurrentUserDep, sessionmaker: SessionMakerDep
) -> StreamingResponse:
    """Everything of yours (threads, messages, tool calls, tasks) as one JSON document."""
    scope = ExportScope(user.id, user.subject, utc_now())
    filename = f"threadkeeper-export-{scope.exported_at:%Y%m%d}.json"
    return _download(stream_json(sessionmaker, scope), "application/json", filename)
