"""Message endpoints of a thread: list the log, and send a message to get a reply."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import JSONResponse
from fastapi.sse import KEEPALIVE_COMMENT, EventSourceResponse, format_sse_event
from pydantic import BaseModel, ConfigDict

from app.api.deps import DbSessionDep, OwnedThreadDep, SettingsDep, TurnRunnerDep
from app.errors import (
    ERROR_RESPONSES,
    ErrorPublic,
    NotFoundError,
    PayloadTooLargeError,
    UnprocessableError,
    error_body,
)
from app.models import MessagePublic, MessagesPublic
from app.models.text import StorableText
from app.services import messages
from app.services.messages import SortOrder
from app.services.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from app.turns.log import TurnLog
from app.turns.turn import TurnResult

router = APIRouter(prefix="/threads", tags=["messages"], responses=ERROR_RESPONSES)

KEEPALIVE_SECONDS = 15.0
DEFAULT_RETRY_AFTER_SECONDS = 5


@router.get("/{thread_id}/messages", response_model=MessagesPublic)
async def list_thread_messages(
    *,
    db: DbSessionDep,
    thread: OwnedThreadDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
    after: uuid.UUID | None = None,
    order: SortOrder = "asc",
) -> MessagesPublic:
    """The thread's messages by time (`order=asc` oldest first, `desc` newest first)."""
    page = await messages.list_messages(db, thread, limit=limit, after=after, order=order)
    data = [MessagePublic.model_validate(m) for m in page.data]
    return MessagesPublic(data=data, has_more=page.has_more, after=data[-1].id if data else None)


class MessageCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: StorableText


def wants_json(request: Request) -> bool:
    """JSON only when asked for explicitly; browsers and SSE clients get the stream."""
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/event-stream" not in accept


@router.post(
    "/{thread_id}/messages",
    responses={
        200: {
            "description": "The reply: an SSE stream, or with `Accept: application/json` the "
            "finished turn",
            "content": {"text/event-stream": {}, "application/json": {}},
        },
        409: {"description": "A reply is already being generated", "model": ErrorPublic},
        413: {"description": "Text over MAX_MESSAGE_CHARS or body too large", "model": ErrorPublic},
    },
)
async def send_message(
    *,
    request: Request,
    db: DbSessionDep,
    thread: OwnedThreadDep,
    settings: SettingsDep,
    turns: TurnRunnerDep,
    body: MessageCreate,
) -> Response:
    """Send a message and get the agent's reply as Server-Sent Events (or JSON)."""
    text = check_message_text(body.text, settings.MAX_MESSAGE_CHARS)
    turn = await turns.prepare(db, thread, text=text)
    try:
        await db.commit()  # before streaming: the dependency would only commit at the end
    except BaseException:
        await turns.abandon(turn)
        raise
    turns.start(turn)
    if wants_json(request):
        return turn_json_response(await asyncio.shield(turn.result))
    return EventSourceResponse(sse_stream(turn.log))


def check_message_text(text: str, max_chars: int) -> str:
    if not text.strip():
        raise UnprocessableError("text must not be empty")
    if len(text) > max_chars:
        raise PayloadTooLargeError(f"text is {len(text)} characters; the limit is {max_chars}")
    return text


def turn_json_response(result: TurnResult) -> JSONResponse:
    body = result.model_dump(mode="json")
    if result.error is None:
        return JSONResponse(body)
    error = result.error
    # Retryable: 503 with when to retry (the provider's Retry-After when it gave one).
    retry_after = str(error.retry_after_seconds or DEFAULT_RETRY_AFTER_SECONDS)
    # code, retryable and, when the class has them, retry_after_seconds and setting.
    fields = {k: v for k, v in error.model_dump().items() if k != "message"}
    return JSONResponse(
        error_body("TurnFailed", error.message, **fields, turn=body),
        status_code=503 if error.retryable else 502,
        headers={"Retry-After": retry_after} if error.retryable else None,
    )


async def sse_stream(log: TurnLog, after: int = 0) -> AsyncIterator[bytes]:
    """The turn's events after id `after` as SSE, with keep-alives while the model thinks."""
    async for event in log.follow(after, idle_timeout_s=KEEPALIVE_SECONDS):
        if event is None:
            yield KEEPALIVE_COMMENT
            continue
        sequence, kind, data = event
        yield format_sse_event(data_str=data, event=kind, id=str(sequence))


@router.get(
    "/{thread_id}/turns/{turn_id}/events",
    responses={
        200: {"description": "The turn's remaining events", "content": {"text/event-stream": {}}}
    },
)
async def resume_turn_events(
    *,
    thread: OwnedThreadDep,
    turns: TurnRunnerDep,
    turn_id: uuid.UUID,
    last_event_id: Annotated[int, Header(ge=0, alias="Last-Event-ID")] = 0,
) -> Response:
    """Resume a turn's stream after the last event id a client saw (header Last-Event-ID).

    A turn is kept by the worker that ran it while it runs and for TURN_REPLAY_SECONDS
    after; elsewhere the finished turn is in the thread's messages. Resuming at or after the
    last event of a finished turn returns no events and closes.
    """
    replay = turns.find(turn_id)
    if replay is None or replay.thread_id != thread.id:
        raise NotFoundError(
            f"Turn {turn_id} cannot be resumed here; list the thread's messages instead"
        )
    return EventSourceResponse(sse_stream(replay.log, after=last_event_id))
