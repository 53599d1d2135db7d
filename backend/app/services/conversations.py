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

from app.errors import BadRequestError, ConflictError, NotFoundError
from app.models import Conversation
from app.models.base import utc_now
from app.services.pagination import Page


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


async def claim_turn(
    db: AsyncSession,
    *,
    user_id: uuid.UUID,
    conversation_id: uuid.UUID,
    turn_id: uuid.UUID,
    lease: timedelta,
) -> Conversation:
    """Take the caller's conversation's turn lease, so one turn (or delete) runs at a time.

    A lease row, not an advisory lock: it works through transaction-mode poolers and a
    crashed worker's lease simply expires. One UPDATE ... RETURNING does the lookup, the
    ownership check and the claim in a single round trip.

    Returns:
        The conversation, now leased to `turn_id`.

    Raises:
        NotFoundError: no such conversation for this user.
        ConflictError: another turn holds an unexpired lease.
    """
    now = utc_now()
    claimed: Conversation | None = (
        (
            await db.exec(
                sa.update(Conversation)
                .where(
                    col(Conversation.id) == conversation_id,
                    col(Conversation.user_id) == user_id,
                    sa.or_(
                        col(Conversation.active_turn_id).is_(None),
                        col(Conversation.active_turn_expires_at) < now,
                    ),
                )
                .values(active_turn_id=turn_id, active_turn_expires_at=now + lease)
                .returning(Conversation)
                .execution_options(populate_existing=True)
            )
        )
        .scalars()
        .first()
    )
    if claimed is None:
        await get_conversation(db, user_id=user_id, conversation_id=conversation_id)  # 404?
        raise ConflictError(
            "A reply is already being generated in this thread; try again when it ends"
        )
    return claimed


async def renew_turn(
    db: AsyncSession, *, conversation_id: uuid.UUID, turn_id: uuid.UUID, lease: timedelta
) -> None:
    """Extend a lease we still hold."""
    await db.exec(
        sa.update(Conversation)
        .where(col(Conversation.id) == conversation_id, col(Conversation.active_turn_id) == turn_id)
        .values(active_turn_expires_at=utc_now() + lease)
    )


async def release_turn(db: AsyncSession, *, conversation_id: uuid.UUID, turn_id: uuid.UUID) -> None:
    await db.exec(
        sa.update(Conversation)
        .where(col(Conversation.id) == conversation_id, col(Conversation.active_turn_id) == turn_id)
        .values(active_turn_id=None, active_turn_expires_at=None)
    )


async def delete_conversation(db: AsyncSession, *, conversation: Conversation) -> None:
    """Delete the row (messages cascade). The caller removes the memory file."""
    await db.delete(conversation)
    await db.flush()
