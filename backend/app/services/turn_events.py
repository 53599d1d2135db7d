"""Turn events in PostgreSQL: batches written by the worker running a turn, read by any node.

A batch is consecutive events of one turn in the text `TurnLog.encode_after` produces. One
transaction writes every running turn's new events of a worker at once, and notifies
`CHANNEL` with `<turn id>:<last id>` for each, so followers on other nodes wake up without
polling (when LISTEN works; see `turns.event_feed`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.models import Thread, Turn, TurnEventBatch, TurnStatus

CHANNEL = "threadkeeper_turn_events"

# Rows are inserted from arrays, skipping turns deleted meanwhile (their thread was deleted).
# A batch written again from the same first id is the retry of a write whose commit went
# through but whose answer was lost (the writer's timeout fired): the retry carries the
# events that came meanwhile too, so the longer batch replaces the stored one. Keeping the
# first would lose the turn's tail, `done` included, while the writer counts it as written.
# The insert rides in a data-modifying WITH (PostgreSQL runs it once, whether or not the
# query reads it), so the batches and their notifications are one round trip, not two: a
# turn writes two or three batches, and each statement costs the worker's loop CPU.
_WRITE = sa.text(
    """
    WITH inserted AS (
        INSERT INTO turn_events (turn_id, first_id, last_id, events)
        SELECT b.turn_id, b.first_id, b.last_id, b.events
        FROM unnest(CAST(:turn_ids AS uuid[]), CAST(:first_ids AS integer[]),
                    CAST(:last_ids AS integer[]), CAST(:events AS text[]))
             AS b(turn_id, first_id, last_id, events)
        WHERE EXISTS (SELECT 1 FROM turns t WHERE t.id = b.turn_id)
        ON CONFLICT (turn_id, first_id) DO UPDATE
            SET last_id = EXCLUDED.last_id, events = EXCLUDED.events
            WHERE turn_events.last_id < EXCLUDED.last_id
    )
    SELECT pg_notify(:channel, p) FROM unnest(CAST(:payloads AS text[])) AS p
    """
)


@dataclass(frozen=True)
class EventBatch:
    turn_id: uuid.UUID
    first_id: int
    last_id: int
    events: str


@dataclass(frozen=True)
class TurnState:
    """Whether a turn can still add events: running and holding its thread's lease."""

    status: TurnStatus
    finished_at: datetime | None
    holds_lease: bool

    @property
    def alive(self) -> bool:
        return self.status == TurnStatus.RUNNING and self.holds_lease


async def write_batches(db: AsyncSession, batches: list[EventBatch]) -> None:
    """Insert the batches and notify their followers (delivered when the caller commits)."""
    if not batches:
        return
    await (await db.connection()).execute(
        _WRITE,
        {
            "turn_ids": [b.turn_id for b in batches],
            "first_ids": [b.first_id for b in batches],
            "last_ids": [b.last_id for b in batches],
            "events": [b.events for b in batches],
            "channel": CHANNEL,
            "payloads": [f"{b.turn_id}:{b.last_id}" for b in batches],
        },
    )


async def read_batches(db: AsyncSession, turn_id: uuid.UUID, *, after: int) -> list[EventBatch]:
    """The turn's batches holding events after id `after`, in order."""
    rows = await db.exec(
        select(TurnEventBatch.first_id, TurnEventBatch.last_id, TurnEventBatch.events)
        .where(col(TurnEventBatch.turn_id) == turn_id, col(TurnEventBatch.last_id) > after)
        .order_by(col(TurnEventBatch.first_id))
    )
    return [EventBatch(turn_id, first, last, events) for first, last, events in rows.all()]


async def read_last_batch(db: AsyncSession, turn_id: uuid.UUID) -> EventBatch | None:
    """The turn's newest batch: where its events end, and whether `done` is among them."""
    rows = await db.exec(
        select(TurnEventBatch.first_id, TurnEventBatch.last_id, TurnEventBatch.events)
        .where(col(TurnEventBatch.turn_id) == turn_id)
        .order_by(col(TurnEventBatch.first_id).desc())
        .limit(1)
    )
    row = rows.first()
    return None if row is None else EventBatch(turn_id, *row)


async def has_events(db: AsyncSession, turn_id: uuid.UUID) -> bool:
    found = await db.exec(
        select(TurnEventBatch.first_id).where(col(TurnEventBatch.turn_id) == turn_id).limit(1)
    )
    return found.first() is not None


async def turn_state(
    db: AsyncSession, turn_id: uuid.UUID, thread_id: uuid.UUID
) -> TurnState | None:
    """The turn's status and whether it still holds its thread's lease; None: no such turn."""
    holds = sa.and_(
        col(Thread.active_turn_id) == turn_id,
        col(Thread.active_turn_expires_at) > sa.func.now(),
    )
    row = (
        await db.exec(
            select(Turn.status, Turn.finished_at, holds)
            .join(Thread, col(Thread.id) == col(Turn.thread_id))
            .where(col(Turn.id) == turn_id, col(Turn.thread_id) == thread_id)
        )
    ).first()
    if row is None:
        return None
    return TurnState(status=TurnStatus(row[0]), finished_at=row[1], holds_lease=bool(row[2]))


async def expire(db: AsyncSession, *, after_end: timedelta, max_age: timedelta) -> int:
    """Remove the events of turns that ended more than `after_end` ago, and any batch older
    than `max_age` (turns a crash left running).

    Returns:
        How many batches were removed.
    """
    ended = select(Turn.id).where(
        col(Turn.id) == col(TurnEventBatch.turn_id),
        col(Turn.finished_at) < sa.func.now() - after_end,
    )
    result = await db.exec(
        sa.delete(TurnEventBatch).where(
            sa.or_(
                ended.exists(),
                col(TurnEventBatch.created_at) < sa.func.now() - max_age,
            )
        )
    )
    return int(result.rowcount)
