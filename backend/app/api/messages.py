"""Message endpoints of a thread: list the log, and send a message to get a reply."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from app.deps import CurrentUserDep, DbSessionDep
from app.errors import ERROR_RESPONSES
from app.models import MessagePublic, MessagesPublic
from app.services import conversations, messages
from app.services.messages import SortOrder
from app.services.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE

router = APIRouter(prefix="/threads", tags=["messages"], responses=ERROR_RESPONSES)


@router.get("/{thread_id}/messages", response_model=MessagesPublic)
async def list_thread_messages(
    *,
    db: DbSessionDep,
    user: CurrentUserDep,
    thread_id: uuid.UUID,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
    after: uuid.UUID | None = None,
    order: SortOrder = "asc",
) -> MessagesPublic:
    """The thread's messages by time (`order=asc` oldest first, `desc` newest first)."""
    await conversations.get_conversation(db, user_id=user.id, conversation_id=thread_id)
    page = await messages.list_messages(
        db, conversation_id=thread_id, limit=limit, after=after, order=order
    )
    data = [MessagePublic.model_validate(m) for m in page.data]
    return MessagesPublic(data=data, has_more=page.has_more, after=data[-1].id if data else None)
