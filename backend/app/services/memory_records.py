"""What PostgreSQL records about each thread's memory, and the totals operators read.

Facts about memory (state, generation, items, bytes, activity) are mirrored on the thread
rows, so stats are one SQL query however many memory files there are.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from app.errors import NotFoundError
from app.memory import MemoryStats, StoredSummary
from app.models import MemoryState, Thread
from app.models.base import utc_now

# A live session with no turn for this long counts as idle (the dashboards' "without recent
# activity"): memory retention will expire it unless the thread is used again.
IDLE_AFTER = timedelta(days=1)


class MemoryTotals(BaseModel):
    sessions: int
    total_items: int
    average_items: float
    bytes_on_disk: int
    oldest_activity_at: datetime | None
    newest_activity_at: datetime | None
    over_cap: int
    expired: int
    idle: int = 0  # live sessions without a turn for IDLE_AFTER


class SummaryInfo(BaseModel):
    """The summary of pruned turns memory holds (compaction)."""

    chars: int
    made_at: datetime
    covers_messages: int  # log messages, from the first, memory holds only through it


class ThreadMemoryInfo(BaseModel):
    thread_id: uuid.UUID
    user_id: uuid.UUID
    memory_state: str
    items: int
    bytes: int
    last_activity_at: datetime
    pruned_at: datetime | None
    summary: SummaryInfo | None


async def memory_totals(db: AsyncSession, *, max_items: int) -> MemoryTotals:
    """Totals over every thread with live memory, from bookkeeping (no file scan)."""
    active = col(Thread.memory_state) == MemoryState.ACTIVE
    row = (
        await db.exec(  # type: ignore[call-overload]  # sqlmodel types exec() for at most 4 columns
            sa.select(
                sa.func.count().filter(active),
                sa.func.coalesce(sa.func.sum(Thread.memory_item_count).filter(active), 0),
                sa.func.coalesce(sa.func.sum(Thread.memory_bytes).filter(active), 0),
                sa.func.min(Thread.last_activity_at).filter(active),
                sa.func.max(Thread.last_activity_at).filter(active),
                sa.func.count().filter(active, col(Thread.memory_item_count) > max_items),
                sa.func.count().filter(col(Thread.memory_state) == MemoryState.EXPIRED),
                sa.func.count().filter(
                    active, col(Thread.last_activity_at) < sa.func.now() - IDLE_AFTER
                ),
            )
        )
    ).one()
    sessions, items, size, oldest, newest, over_cap, expired, idle = row
    return MemoryTotals(
        sessions=sessions,
        total_items=items,
        average_items=round(items / sessions, 2) if sessions else 0.0,
        bytes_on_disk=size,
        oldest_activity_at=oldest,
        newest_activity_at=newest,
        over_cap=over_cap,
        expired=expired,
        idle=idle,
    )


async def get_thread_memory_info(db: AsyncSession, thread_id: uuid.UUID) -> ThreadMemoryInfo:
    thread = await db.get(Thread, thread_id)
    if thread is None:
        raise NotFoundError(f"Thread {thread_id} not found")
    return thread_memory_info(thread)


def thread_memory_info(thread: Thread) -> ThreadMemoryInfo:
    return ThreadMemoryInfo(
        thread_id=thread.id,
        user_id=thread.user_id,
        memory_state=thread.memory_state,
        items=thread.memory_item_count,
        bytes=thread.memory_bytes,
        last_activity_at=thread.last_activity_at,
        pruned_at=thread.memory_pruned_at,
        summary=_summary_info(stored_summary(thread)),
    )


async def next_generation(db: AsyncSession) -> int:
    """A new memory generation, never handed out before (a PostgreSQL sequence).

    Drawn from a sequence rather than counted up per thread, so a file stamped by a rebuild
    whose transaction never committed cannot carry a number that another node commits later
    for a different state: the file would look current while it is not.
    """
    value = await db.scalar(sa.select(sa.func.nextval("memory_generations")))
    assert value is not None  # nextval always returns a number
    return int(value)


def _summary_info(summary: StoredSummary | None) -> SummaryInfo | None:
    if summary is None:
        return None
    return SummaryInfo(
        chars=len(summary.text), made_at=summary.made_at, covers_messages=summary.covers
    )


def stored_summary(thread: Thread) -> StoredSummary | None:
    """The summary PostgreSQL records for the thread's memory (what a rebuild puts back)."""
    if thread.memory_summary is None or thread.memory_summary_at is None:
        return None
    return StoredSummary(
        text=thread.memory_summary,
        covers=thread.memory_summary_covers,
        made_at=thread.memory_summary_at,
    )


async def forget_summary(db: AsyncSession, thread_id: uuid.UUID, *, covers: int) -> None:
    """The agent forgot the thread: no summary, and the first `covers` log messages are
    never folded into a later one (nor rebuilt into memory)."""
    await db.exec(
        sa.update(Thread)
        .where(col(Thread.id) == thread_id)
        .values(memory_summary=None, memory_summary_at=None, memory_summary_covers=covers)
    )


async def record_summary(
    db: AsyncSession,
    thread_id: uuid.UUID,
    *,
    holder: uuid.UUID,
    summary: StoredSummary,
    generation: int,
    stats: MemoryStats,
) -> bool:
    """Record a summary just written to memory, with its new generation, and give back
    `holder`'s lease: one statement, applied only while `holder` still has the lease.

    Returns:
        Whether it was recorded (False: the lease was lost; memory is then ahead of
        PostgreSQL and the next reconcile rebuilds it from the log).
    """
    result = await db.exec(
        sa.update(Thread)
        .where(col(Thread.id) == thread_id, col(Thread.active_turn_id) == holder)
        .values(
            memory_summary=summary.text,
            memory_summary_covers=summary.covers,
            memory_summary_at=summary.made_at,
            memory_generation=generation,
            memory_item_count=stats.items,
            memory_bytes=stats.bytes,
            memory_last_item_id=stats.last_id,
            active_turn_id=None,
            active_turn_expires_at=None,
        )
    )
    return bool(result.rowcount)


async def record_memory(
    db: AsyncSession,
    thread_id: uuid.UUID,
    *,
    stats: MemoryStats | None,
    generation: int | None = None,
    message_count: int | None = None,
    state: MemoryState = MemoryState.ACTIVE,
    pruned: bool = False,
    node: str | None = None,
) -> None:
    """Mirror the file's facts on the thread row (no stats: no file, zeros).

    Args:
        generation: the memory generation the file was (or is about to be) stamped with.
        message_count: how many log messages the memory now reflects.
        node: the node whose local file now holds this state (None: memory is not
            node-local); other nodes' copies are stale from now on.
    """
    values = _memory_values(
        stats, generation=generation, message_count=message_count, state=state, pruned=pruned
    )
    values["memory_node"] = node
    await db.exec(sa.update(Thread).where(col(Thread.id) == thread_id).values(**values))


async def record_memory_and_release(
    db: AsyncSession,
    thread_id: uuid.UUID,
    *,
    holder: uuid.UUID,
    stats: MemoryStats,
    message_count: int,
    pruned: bool = False,
    node: str | None = None,
) -> int | None:
    """A turn's last write: `record_memory` with a new generation (`next_generation`'s
    sequence, drawn inside the statement) and `holder`'s lease given back, in one UPDATE
    instead of three round trips, only while `holder` has the lease.

    Returns:
        The new generation; None when `holder` no longer has the lease (nothing written).
    """
    values = _memory_values(
        stats,
        generation=sa.func.nextval("memory_generations"),
        message_count=message_count,
        state=MemoryState.ACTIVE,
        pruned=pruned,
    )
    values.update(memory_node=node, active_turn_id=None, active_turn_expires_at=None)
    generation = (
        await db.exec(
            sa.update(Thread)
            .where(col(Thread.id) == thread_id, col(Thread.active_turn_id) == holder)
            .values(**values)
            .returning(col(Thread.memory_generation))
        )
    ).scalar_one_or_none()
    return None if generation is None else int(generation)


def _memory_values(
    stats: MemoryStats | None,
    *,
    generation: int | sa.ColumnElement[Any] | None,
    message_count: int | None,
    state: MemoryState,
    pruned: bool,
) -> dict[str, Any]:
    values: dict[str, Any] = {
        "memory_state": state,
        "memory_item_count": stats.items if stats else 0,
        "memory_bytes": stats.bytes if stats else 0,
        "memory_last_item_id": stats.last_id if stats else None,
    }
    if generation is not None:
        values["memory_generation"] = generation
    if message_count is not None:
        values["memory_message_count"] = message_count
    if pruned:
        values["memory_pruned_at"] = utc_now()
    return values
