"""The `turns` rows: a turn's status, cost and stop requests, as PostgreSQL records them.

Written in the same transactions as the turn's messages (its start with the user message,
its end with the reply), so a turn's row never disagrees with the log it wrote.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.errors import ConflictError, NotFoundError
from app.models import Message, Thread, Turn, TurnStatus
from app.models.base import utc_now
from app.services.rows import row_insert


@dataclass(frozen=True)
class TurnUsage:
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0


async def start_turn(db: AsyncSession, thread: Thread, turn_id: uuid.UUID) -> None:
    """Record a running turn; first mark the thread's previous turn failed if a crash left
    it 'running' (its lease is gone: we hold the thread now)."""
    await end_interrupted(db, thread)
    await (await db.connection()).execute(insert_turn(thread, turn_id))


async def end_interrupted(db: AsyncSession, thread: Thread) -> None:
    """Mark the thread's previous turn failed if a crash left it 'running' (the caller
    holds the thread now, so its lease is gone); otherwise no statement at all."""
    if thread.last_turn_status == TurnStatus.RUNNING and thread.last_turn_id is not None:
        await db.exec(
            sa.update(Turn)
            .where(col(Turn.id) == thread.last_turn_id, col(Turn.status) == TurnStatus.RUNNING)
            .values(status=TurnStatus.FAILED, error_code="interrupted", finished_at=utc_now())
        )


def insert_turn(thread: Thread, turn_id: uuid.UUID) -> sa.Insert:
    """The INSERT of a running turn's row, as a statement so it can ride with the user's
    message (`messages.append_message(also=...)`); call `end_interrupted` first."""
    return row_insert(Turn(id=turn_id, thread_id=thread.id, user_id=thread.user_id))


async def finish_turn(
    db: AsyncSession,
    *,
    thread_id: uuid.UUID,
    turn_id: uuid.UUID,
    status: TurnStatus,
    error_code: str | None = None,
    usage: TurnUsage | None = None,
) -> None:
    """Record how the turn ended, on its row and as the thread's newest turn (a turn that
    appends its reply sends `finish_statement` with it instead: the append records the
    thread's side)."""
    await db.exec(finish_statement(turn_id, status=status, error_code=error_code, usage=usage))
    await db.exec(
        sa.update(Thread)
        .where(col(Thread.id) == thread_id, col(Thread.last_turn_id) == turn_id)
        .values(last_turn_status=status)
    )


def finish_statement(
    turn_id: uuid.UUID,
    *,
    status: TurnStatus,
    error_code: str | None = None,
    usage: TurnUsage | None = None,
) -> sa.Update:
    """The UPDATE of the turn's own row as it ends, as a statement so it can ride with the
    reply (`messages.append_message(also=...)`)."""
    usage = usage or TurnUsage()
    return (
        sa.update(Turn)
        .where(col(Turn.id) == turn_id)
        .values(
            status=status,
            error_code=error_code,
            finished_at=utc_now(),
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
        )
    )


async def attach_message(db: AsyncSession, message: Message, turn_id: uuid.UUID) -> None:
    """Make an existing (user) message the start of turn `turn_id` (a retry)."""
    message.turn_id = turn_id
    meta = dict(message.meta)
    meta["turn_id"] = str(turn_id)
    message.meta = meta
    db.add(message)
    await db.flush()


async def request_cancel(db: AsyncSession, thread: Thread, turn_id: uuid.UUID) -> None:
    """Leave a stop request on a turn running on another worker (it polls for it).

    Raises:
        NotFoundError: no such turn in this thread.
        ConflictError: the turn already ended.
    """
    turn = (
        await db.exec(select(Turn).where(Turn.id == turn_id, Turn.thread_id == thread.id))
    ).first()
    if turn is None:
        raise NotFoundError(f"Turn {turn_id} not found")
    if turn.status != TurnStatus.RUNNING:
        raise ConflictError(f"Turn {turn_id} already ended ({turn.status})")
    turn.cancel_requested_at = utc_now()
    db.add(turn)
    await db.flush()


async def cancel_requested(db: AsyncSession, turn_ids: list[uuid.UUID]) -> set[uuid.UUID]:
    """Which of these running turns a stop request reached through PostgreSQL."""
    if not turn_ids:
        return set()
    rows = await db.exec(
        select(Turn.id).where(
            col(Turn.id).in_(turn_ids), col(Turn.cancel_requested_at).is_not(None)
        )
    )
    return set(rows.all())
