"""The message log of a thread: written by turns, read by the API."""

from __future__ import annotations

import uuid
from typing import Any, Literal

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.errors import BadRequestError, ConflictError
from app.models import Message, MessageRole, Thread
from app.models.base import utc_now
from app.models.text import make_storable
from app.services import leases
from app.services.pagination import Page

SortOrder = Literal["asc", "desc"]


async def list_messages(
    db: AsyncSession,
    thread: Thread,
    *,
    limit: int,
    after: uuid.UUID | None,
    order: SortOrder,
) -> Page[Message]:
    """A page of the thread's messages by time (`asc`: oldest first).

    Takes the `Thread` row itself (which the route got through `OwnedThreadDep`), not an id,
    so listing another user's messages cannot be written by mistake.
    """
    thread_id = thread.id
    key = sa.tuple_(Message.created_at, Message.id)
    query = select(Message).where(Message.thread_id == thread_id)
    if after is not None:
        cursor = (
            await db.exec(
                select(Message.created_at, Message.id).where(
                    Message.id == after, Message.thread_id == thread_id
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


async def append_message(
    db: AsyncSession,
    *,
    thread_id: uuid.UUID,
    holder: uuid.UUID,
    role: MessageRole,
    content: str,
    meta: dict[str, Any] | None = None,
) -> tuple[Message, int]:
    """Append a message to the log of a thread whose lease `holder` has.

    One UPDATE bumps the thread's activity and count, and only while the lease is still
    ours: a turn that lost its thread can never add to the log.

    Returns:
        The message, and the thread's message count with it.

    Raises:
        ConflictError: `holder` no longer has the thread's lease.
    """
    now = utc_now()
    count = (
        await db.exec(
            sa.update(Thread)
            .where(col(Thread.id) == thread_id, leases.held_by(holder))
            .values(
                message_count=col(Thread.message_count) + 1,
                last_activity_at=now,
                updated_at=now,
            )
            .returning(col(Thread.message_count))
        )
    ).scalar_one_or_none()
    if count is None:
        raise ConflictError("This thread was taken over by another request; send it again")
    message = Message(
        thread_id=thread_id,
        role=role,
        content=make_storable(content),
        created_at=now,
        meta=meta or {},
    )
    db.add(message)
    await db.flush()
    return message, count


async def messages_after(db: AsyncSession, *, thread_id: uuid.UUID, offset: int) -> list[Message]:
    """The thread's messages after the first `offset`, oldest first (what memory lacks)."""
    rows = await db.exec(
        select(Message)
        .where(Message.thread_id == thread_id)
        .order_by(col(Message.created_at), col(Message.id))
        .offset(offset)
    )
    return list(rows.all())


async def recent_messages(
    db: AsyncSession, *, thread_id: uuid.UUID, limit: int, skip: int = 0
) -> list[Message]:
    """The newest `limit` messages in chronological order (to rebuild memory from the log),
    leaving out the first `skip` (those a summary covers)."""
    query = select(Message).where(Message.thread_id == thread_id)
    if skip:
        after = (
            select(Message.id)
            .where(Message.thread_id == thread_id)
            .order_by(col(Message.created_at), col(Message.id))
            .offset(skip)
        )
        query = query.where(col(Message.id).in_(after))
    rows = (
        await db.exec(
            query.order_by(col(Message.created_at).desc(), col(Message.id).desc()).limit(limit)
        )
    ).all()
    return list(reversed(rows))


async def messages_between(
    db: AsyncSession, *, thread_id: uuid.UUID, start: int, end: int
) -> list[Message]:
    """Messages `start` (inclusive) to `end` (exclusive) by position in the log."""
    if end <= start:
        return []
    rows = await db.exec(
        select(Message)
        .where(Message.thread_id == thread_id)
        .order_by(col(Message.created_at), col(Message.id))
        .offset(start)
        .limit(end - start)
    )
    return list(rows.all())


async def count_user_messages(db: AsyncSession, *, thread_id: uuid.UUID) -> int:
    count = await db.scalar(
        select(sa.func.count())
        .select_from(Message)
        .where(Message.thread_id == thread_id, Message.role == MessageRole.USER)
    )
    return int(count or 0)


async def nth_user_message(
    db: AsyncSession, *, thread_id: uuid.UUID, n: int
) -> tuple[int, Message] | None:
    """The `n`-th user message (from 0) and its position in the log, or None."""
    numbered = (
        select(
            col(Message.id).label("id"),
            col(Message.role).label("role"),
            (
                sa.func.row_number().over(order_by=(col(Message.created_at), col(Message.id))) - 1
            ).label("position"),
        )
        .where(Message.thread_id == thread_id)
        .subquery()
    )
    row = (
        await db.exec(
            select(numbered.c.position, Message)
            .join(Message, col(Message.id) == numbered.c.id)
            .where(numbered.c.role == MessageRole.USER)
            .order_by(numbered.c.position)
            .offset(n)
            .limit(1)
        )
    ).first()
    return None if row is None else (int(row[0]), row[1])
