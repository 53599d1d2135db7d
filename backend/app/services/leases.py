"""The thread lease: one writer (a turn, a delete, a maintenance job) per thread at a time.

A lease is two columns on the conversation row (`active_turn_id`, `active_turn_expires_at`),
not an advisory lock: it works through transaction-mode poolers, and a crashed worker's lease
simply expires. Expiry is measured on the database's clock, so nodes with skewed clocks agree.

Every claim, renewal and release here runs in a short transaction of its own, so a lease
claim never holds a row lock while its holder waits on anything else (a memory file, the
model): that ordering is what rules out the deadlock of a claim waiting on a turn that waits
on the claim's row.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.db import SessionMaker, session_scope
from app.errors import ConflictError, NotFoundError
from app.models import Conversation

# Jobs hold a batch of threads while they rewrite or delete files; they renew nothing.
MAINTENANCE_LEASE = timedelta(minutes=5)

BUSY_MESSAGE = "A reply is already being generated in this thread; try again when it ends"


def is_free() -> sa.ColumnElement[bool]:
    """No live lease: nobody holds it, or the holder's lease ran out."""
    return sa.or_(
        col(Conversation.active_turn_id).is_(None),
        col(Conversation.active_turn_expires_at) < sa.func.now(),
    )


def _expires(lease: timedelta) -> sa.ColumnElement[Any]:
    return sa.func.now() + lease


async def claim(
    sessionmaker: SessionMaker,
    *,
    user_id: uuid.UUID,
    conversation_id: uuid.UUID,
    holder: uuid.UUID,
    lease: timedelta,
) -> Conversation:
    """Take the caller's thread's lease in a transaction of its own, committed at once.

    One UPDATE ... RETURNING does the lookup, the ownership check and the claim.

    Returns:
        The conversation as of the claim (detached; its lease is `holder`'s).

    Raises:
        NotFoundError: no such thread for this user.
        ConflictError: another holder has a live lease.
    """
    async with session_scope(sessionmaker) as db:
        claimed = (
            (
                await db.exec(
                    sa.update(Conversation)
                    .where(
                        col(Conversation.id) == conversation_id,
                        col(Conversation.user_id) == user_id,
                        is_free(),
                    )
                    .values(active_turn_id=holder, active_turn_expires_at=_expires(lease))
                    .returning(Conversation)
                    .execution_options(populate_existing=True)
                )
            )
            .scalars()
            .first()
        )
        if claimed is None:
            owned = await db.exec(
                select(Conversation.id).where(
                    Conversation.id == conversation_id, Conversation.user_id == user_id
                )
            )
            if owned.first() is None:
                raise NotFoundError(f"Thread {conversation_id} not found")
            raise ConflictError(BUSY_MESSAGE)
        conversation: Conversation = claimed
        return conversation


async def renew(
    db: AsyncSession, holders: Iterable[tuple[uuid.UUID, uuid.UUID]], lease: timedelta
) -> set[uuid.UUID]:
    """Extend every (conversation, holder) lease still held, in one statement.

    Returns:
        The conversations whose lease was renewed; the others are no longer their holder's.
    """
    pairs = list(holders)
    if not pairs:
        return set()
    rows = await db.exec(
        sa.update(Conversation)
        .where(sa.tuple_(col(Conversation.id), col(Conversation.active_turn_id)).in_(pairs))
        .values(active_turn_expires_at=_expires(lease))
        .returning(col(Conversation.id))
    )
    return set(rows.scalars().all())


async def release(
    db: AsyncSession, conversation_ids: Iterable[uuid.UUID], holder: uuid.UUID
) -> None:
    """Give back `holder`'s lease on each conversation, if it still holds it."""
    ids = list(conversation_ids)
    if not ids:
        return
    await db.exec(
        sa.update(Conversation)
        .where(col(Conversation.id).in_(ids), col(Conversation.active_turn_id) == holder)
        .values(active_turn_id=None, active_turn_expires_at=None)
    )


async def claim_batch(
    db: AsyncSession,
    conversation_ids: list[uuid.UUID],
    where: sa.ColumnElement[bool],
    *,
    holder: uuid.UUID,
    lease: timedelta = MAINTENANCE_LEASE,
) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """Lease each idle conversation of the batch that still matches `where`.

    Returns:
        (conversation id, owner's user id) of every conversation now held by `holder`.
    """
    rows = await db.exec(
        sa.update(Conversation)
        .where(col(Conversation.id).in_(conversation_ids), where, is_free())
        .values(active_turn_id=holder, active_turn_expires_at=_expires(lease))
        .returning(col(Conversation.id), col(Conversation.user_id))
    )
    return [(row[0], row[1]) for row in rows.all()]


def held_by(holder: uuid.UUID) -> sa.ColumnElement[bool]:
    """The condition of a write that must only happen while `holder` has the lease."""
    return col(Conversation.active_turn_id) == holder
