"""The message log of a conversation: written by turns, read by the API."""

from __future__ import annotations

import uuid
from typing import Any, Literal

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.errors import BadRequestError
from app.models import Conversation, Message, MessageRole
from app.models.base import utc_now
from app.services.pagination import Page

SortOrder = Literal["asc", "desc"]


async def list_messages(
    db: AsyncSession,
    *,
    conversation_id: uuid.UUID,
    limit: int,
    after: uuid.UUID | None,
    order: SortOrder,
) -> Page[Message]:
    """A page of the thread's messages by time (`asc`: oldest first)."""
    key = sa.tuple_(Message.created_at, Message.id)
    query = select(Message).where(Message.conversation_id == conversation_id)
    if after is not None:
        cursor = (
            await db.exec(
                select(Message.created_at, Message.id).where(
                    Message.id == after, Message.conversation_id == conversation_id
                )
            )
        ).first()
        if cursor is None:
            raise BadRequestError(f"Unknown cursor 'after={after}'")
        bound = sa.tuple_(*cursor)
        query = query.where(key > bound if order == "asc" else key < bound)
    if order == "asc":
        query = query.order_by(col(Message.created_at), col(Message.id))
    else:
        query = query.order_by(col(Message.created_at).desc(), col(Message.id).desc())
    return Page.from_rows((await db.exec(query.limit(limit + 1))).all(), limit)


async def add_message(
    db: AsyncSession,
    *,
    conversation: Conversation,
    role: MessageRole,
    content: str,
    meta: dict[str, Any] | None = None,
) -> Message:
    """Append a message and bump the conversation's activity and count."""
    now = utc_now()
    message = Message(
        conversation_id=conversation.id,
        role=role,
        content=content,
        created_at=now,
        meta=meta or {},
    )
    db.add(message)
    conversation.message_count += 1
    conversation.last_activity_at = now
    conversation.updated_at = now
    db.add(conversation)
    await db.flush()
    return message


async def recent_messages(
    db: AsyncSession, *, conversation_id: uuid.UUID, limit: int
) -> list[Message]:
    """The newest `limit` messages in chronological order (to rebuild memory from the log)."""
    rows = (
        await db.exec(
            select(Message)
            .where(Message.conversation_id == conversation_id)
            .order_by(col(Message.created_at).desc(), col(Message.id).desc())
            .limit(limit)
        )
    ).all()
    return list(reversed(rows))
