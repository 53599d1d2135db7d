"""Message endpoints of a thread: list the log, send a message (or retry one) for a reply."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict

from app.api.deps import (
    CurrentUserDep,
    DbSessionDep,
    OwnedThreadDep,
    SettingsDep,
    TurnRunnerDep,
)
from app.api.streaming import TURN_RESPONSES, start_and_respond
from app.errors import ERROR_RESPONSES, ErrorPublic
from app.models import MessagesPublic, message_public
from app.models.text import StorableText
from app.services import messages
from app.services.messages import SortOrder, check_message_text
from app.services.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE

router = APIRouter(prefix="/threads", tags=["messages"], responses=ERROR_RESPONSES)

KEEPALIVE_SECONDS = 15.0


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
    data = [message_public(m, status) for m, status in page.data]
    return MessagesPublic(data=data, has_more=page.has_more, after=data[-1].id if data else None)


class MessageCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: StorableText


@router.post(
    "/{thread_id}/messages",
    responses={
        **TURN_RESPONSES,
        413: {"description": "Text over MAX_MESSAGE_CHARS or body too large", "model": ErrorPublic},
    },
)
async def send_message(
    *,
    request: Request,
    db: DbSessionDep,
    thread: OwnedThreadDep,
    user: CurrentUserDep,
    settings: SettingsDep,
    turns: TurnRunnerDep,
    body: MessageCreate,
) -> Response:
    """Send a message and get the agent's reply as Server-Sent Events (or JSON)."""
    text = check_message_text(body.text, settings.MAX_MESSAGE_CHARS)
    turn = await turns.prepare(db, thread, text=text, exempt=user.is_admin)
    return await start_and_respond(request, db, turns, turn)


@router.post("/{thread_id}/messages/{message_id}/retry", responses=TURN_RESPONSES)
async def retry_message(
    *,
    request: Request,
    db: DbSessionDep,
    thread: OwnedThreadDep,
    user: CurrentUserDep,
    turns: TurnRunnerDep,
    message_id: uuid.UUID,
) -> Response:
    """Answer a user message again: what followed it is forgotten in the log and in memory.

    The response is the new turn's reply, like a send's; its `user_message` event carries
    the retried message.
    """
    turn = await turns.prepare_retry(db, thread, message_id=message_id, exempt=user.is_admin)
    return await start_and_respond(request, db, turns, turn)
