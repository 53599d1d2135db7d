"""Conversations (threads) owned by one user: every lookup is scoped to the caller.

A thread that is someone else's is reported exactly like one that does not exist, so ids
leak nothing across users.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.assistant.memory import AgentMemoryStore
from app.db import SessionMaker, session_scope
from app.errors import BadRequestError, NotFoundError
from app.models import Conversation
from app.models.base import utc_now
from app.services import leases
from app.services.pagination import Page

# A delete holds the thread only while it removes the file and the row.
DELETE_LEASE = timedelta(seconds=30)


async def create_conversation(
    db: AsyncSession, *, user_id: uuid.UUID, title: str | None
) -> Conversation:
    conversation = Conversation(user_id=user_id, title=title)
    db.add(conversation)
    await db.flush()
    return conversation


async def get_conversation(
    db: AsyncSession, *, user_id: uuid.UUID, conversation_id: uuid.UUID, for_update: bool = False
) -> Conversation:
    """Return the caller's conversation.

    Raises:
        NotFoundError: when it does not exist or belongs to another user.
    """
    query = select(Conversation).where(
        Conversation.id == conversation_id, Conversation.user_id == user_id
    )
    if for_update:
        query = query.with_for_update()
    conversation = (await db.exec(query)).first()
    if conversation is None:
        raise NotFoundError(f"Thread {conversation_id} not found")
    return conversation


async def list_conversations(
    db: AsyncSession, *, user_id: uuid.UUID, limit: int, after: uuid.UUID | None
) -> Page[Conversation]:
    """The caller's threads, most recent activity first (ties broken by id)."""
    query = select(Conversation).where(Conversation.user_id == user_id)
    if after is not None:
        cursor = (
            await db.exec(
                select(Conversation.last_activity_at, Conversation.id).where(
                    Conversation.id == after, Conversation.user_id == user_id
                )
            )
        ).first()
        if cursor is None:
            raise BadRequestError(f"Unknown cursor 'after={after}'")
        query = query.where(
            sa.tuple_(Conversation.last_activity_at, Conversation.id) < sa.tuple_(*cursor)
        )
    query = query.order_by(
        col(Conversation.last_activity_at).desc(), col(Conversation.id).desc()
    ).limit(limit + 1)
    return Page.from_rows((await db.exec(query)).all(), limit)


async def rename_conversation(
    db: AsyncSession, *, user_id: uuid.UUID, conversation_id: uuid.UUID, title: str | None
) -> Conversation:
    conversation = await get_conversation(db, user_id=user_id, conversation_id=conversation_id)
    conversation.title = title
    conversation.updated_at = utc_now()
    db.add(conversation)
    await db.flush()
    return conversation


async def delete_conversation(
    db: AsyncSession,
    *,
    sessionmaker: SessionMaker,
    memory_store: AgentMemoryStore,
    user_id: uuid.UUID,
    conversation_id: uuid.UUID,
    wait_s: float,
) -> None:
    """Delete the caller's thread, its messages (cascade) and its memory file.

    The memory file's lock is taken first (bounded), then the lease in a transaction of its
    own, so no turn in any worker is writing the file and no row lock is held while waiting;
    the row is deleted in the request's transaction only while the lease is still ours.

    Raises:
        NotFoundError: no such thread for this user.
        ConflictError: a turn is running in it.
    """
    holder = uuid.uuid4()
    async with memory_store.open(user_id, conversation_id, wait_s=wait_s) as memory:
        await leases.claim(
            sessionmaker,
            user_id=user_id,
            conversation_id=conversation_id,
            holder=holder,
            lease=DELETE_LEASE,
        )
        try:
            memory_store.remove(memory)
            await db.exec(
                sa.delete(Conversation).where(
                    col(Conversation.id) == conversation_id, leases.held_by(holder)
                )
            )
        except BaseException:
            async with session_scope(sessionmaker) as release_db:
                await leases.release(release_db, [conversation_id], holder)
            raise
