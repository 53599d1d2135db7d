"""The message log of a thread: written by turns, read by the API."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, Literal

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.errors import (
    BadRequestError,
    ConflictError,
    NotFoundError,
    PayloadTooLargeError,
    UnprocessableError,
)
from app.models import ChatKitItem, Message, MessageRole, Thread, Turn, TurnStatus
from app.models.base import utc_now
from app.models.text import make_storable
from app.services import leases
from app.services.pagination import Page
from app.services.rows import insert_from

SortOrder = Literal["asc", "desc"]


def check_message_text(text: str, max_chars: int) -> str:
    """A user's message as a turn takes it: not blank, at most `max_chars` characters.

    Raises:
        UnprocessableError: blank text.
        PayloadTooLargeError: text over the limit (MAX_MESSAGE_CHARS).
    """
    if not text.strip():
        raise UnprocessableError("text must not be empty")
    if len(text) > max_chars:
        raise PayloadTooLargeError(f"text is {len(text)} characters; the limit is {max_chars}")
    return text


async def list_messages(
    db: AsyncSession,
    thread: Thread,
    *,
    limit: int,
    after: uuid.UUID | None,
    order: SortOrder,
) -> Page[tuple[Message, str | None]]:
    """A page of the thread's messages by time (`asc`: oldest first), each with the status
    of the turn that wrote it.

    Takes the `Thread` row itself (which the route got through `OwnedThreadDep`), not an id,
    so listing another user's messages cannot be written by mistake.
    """
    thread_id = thread.id
    key = sa.tuple_(Message.created_at, Message.id)
    query = (
        select(Message, Turn.status)
        .outerjoin(Turn, col(Turn.id) == col(Message.turn_id))
        .where(Message.thread_id == thread_id)
    )
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
    rows = (await db.exec(query.limit(limit + 1))).all()
    return Page.from_rows([(message, status) for message, status in rows], limit)


async def append_message(
    db: AsyncSession,
    *,
    thread_id: uuid.UUID,
    holder: uuid.UUID,
    role: MessageRole,
    content: str,
    meta: dict[str, Any] | None = None,
    turn_id: uuid.UUID | None = None,
    turn_status: TurnStatus | None = None,
    also: Sequence[sa.UpdateBase] = (),
) -> tuple[Message, int]:
    """Append a message to the log of a thread whose lease `holder` has.

    One UPDATE bumps the thread's activity and count (and records its newest turn's status,
    when given), and only while the lease is still ours: a turn that lost its thread can
    never add to the log. The message's INSERT rides in the same statement, fed by the
    UPDATE's row (no row, no message): a turn appends twice, and each round trip costs the
    loop SQLAlchemy's and psycopg's CPU.

    Args:
        also: further writes of the caller's transaction sent in the same statement (the
            turn's row as it starts or ends). They run whether or not the lease is still
            ours: on ConflictError the caller rolls the transaction back, and them with it.

    Returns:
        The message, and the thread's message count with it.

    Raises:
        ConflictError: `holder` no longer has the thread's lease.
    """
    now = utc_now()
    message = Message(
        thread_id=thread_id,
        role=role,
        content=make_storable(content),
        created_at=now,
        meta=meta or {},
        turn_id=turn_id,
    )
    bumped = (
        sa.update(Thread)
        .where(col(Thread.id) == thread_id, leases.held_by(holder))
        .values(
            message_count=col(Thread.message_count) + 1,
            last_activity_at=now,
            updated_at=now,
            **(
                {}
                if turn_status is None
                else {"last_turn_id": turn_id, "last_turn_status": turn_status}
            ),
        )
        .returning(col(Thread.message_count))
        .cte("bumped")
    )
    inserted = insert_from(message, bumped).cte("inserted")
    riders = [write.cte(f"also_{n}") for n, write in enumerate(also)]
    count = (
        await (await db.connection()).execute(
            sa.select(bumped.c.message_count).add_cte(*riders, inserted)
        )
    ).scalar_one_or_none()
    if count is None:
        raise ConflictError("This thread was taken over by another request; send it again")
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
    db: AsyncSession,
    *,
    thread_id: uuid.UUID,
    limit: int,
    skip: int = 0,
    before: Message | None = None,
) -> list[Message]:
    """The newest `limit` messages (before `before`, if given) in chronological order (to
    rebuild memory from the log), leaving out the first `skip` (those a summary covers)."""
    query = select(Message).where(Message.thread_id == thread_id)
    if before is not None:
        query = query.where(
            sa.tuple_(Message.created_at, Message.id) < sa.tuple_(before.created_at, before.id)
        )
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


async def get_message(db: AsyncSession, thread: Thread, message_id: uuid.UUID) -> Message:
    """One message of the caller's thread.

    Raises:
        NotFoundError: no such message in this thread.
    """
    message = (
        await db.exec(
            select(Message).where(Message.id == message_id, Message.thread_id == thread.id)
        )
    ).first()
    if message is None:
        raise NotFoundError(f"Message {message_id} not found")
    return message


async def delete_after(db: AsyncSession, message: Message, *, keep: Message | None = None) -> int:
    """Delete every message of `message`'s thread that comes after it (but `keep`), and the
    ChatKit items stored after it (widgets, workflows, ...: see `ChatKitItem`); returns how
    many messages."""
    statement = sa.delete(Message).where(
        col(Message.thread_id) == message.thread_id,
        sa.tuple_(Message.created_at, Message.id) > sa.tuple_(message.created_at, message.id),
    )
    if keep is not None:
        statement = statement.where(col(Message.id) != keep.id)
    deleted = await db.exec(statement)
    await db.exec(
        sa.delete(ChatKitItem).where(
            col(ChatKitItem.thread_id) == message.thread_id,
            col(ChatKitItem.created_at) > message.created_at,
        )
    )
    return int(deleted.rowcount)


async def failed_reply_of(db: AsyncSession, message: Message) -> Message | None:
    """What `message`'s turn kept when it failed (its completed tool calls), or None."""
    if message.turn_id is None:
        return None
    return (
        await db.exec(
            select(Message)
            .join(Turn, col(Turn.id) == col(Message.turn_id))
            .where(
                Message.turn_id == message.turn_id,
                Message.role == MessageRole.ASSISTANT,
                Turn.status == TurnStatus.FAILED,
            )
        )
    ).first()


async def count_before(db: AsyncSession, message: Message) -> int:
    """How many messages of the thread come before `message`."""
    return int(
        (
            await db.exec(
                select(sa.func.count()).where(
                    Message.thread_id == message.thread_id,
                    sa.tuple_(Message.created_at, Message.id)
                    < sa.tuple_(message.created_at, message.id),
                )
            )
        ).one()
    )


async def count_users_after(db: AsyncSession, message: Message) -> int:
    """How many user messages of the thread come after `message`."""
    return int(
        (
            await db.exec(
                select(sa.func.count()).where(
                    Message.thread_id == message.thread_id,
                    Message.role == MessageRole.USER,
                    sa.tuple_(Message.created_at, Message.id)
                    > sa.tuple_(message.created_at, message.id),
                )
            )
        ).one()
    )


async def forget_count(db: AsyncSession, thread_id: uuid.UUID, removed: int) -> None:
    """Take `removed` deleted messages off the thread's count."""
    if removed:
        await db.exec(
            sa.update(Thread)
            .where(col(Thread.id) == thread_id)
            .values(message_count=col(Thread.message_count) - removed)
        )


async def touch_thread(db: AsyncSession, thread_id: uuid.UUID, *, turn_id: uuid.UUID) -> None:
    """Mark new activity in the thread: a turn (a retry) started without a new message."""
    now = utc_now()
    await db.exec(
        sa.update(Thread)
        .where(col(Thread.id) == thread_id)
        .values(
            last_activity_at=now,
            updated_at=now,
            last_turn_id=turn_id,
            last_turn_status=TurnStatus.RUNNING,
        )
    )


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
