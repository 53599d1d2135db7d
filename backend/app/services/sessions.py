"""Operator-facing operations on agent memory, shared by the turn, jobs, CLI and admin API.

Facts about sessions (state, items, bytes, activity) are mirrored on the conversation rows,
so stats are one SQL query however many files there are.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from agents.items import TResponseInputItem
from pydantic import BaseModel
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from app.assistant.memory import MemorySession, MemoryStats
from app.assistant.pruning import is_turn_start, items_from_log, plan_cut
from app.errors import NotFoundError
from app.models import Conversation, MemoryState
from app.models.base import utc_now
from app.services import messages


class SessionStats(BaseModel):
    sessions: int
    total_items: int
    average_items: float
    bytes_on_disk: int
    oldest_activity_at: datetime | None
    newest_activity_at: datetime | None
    over_cap: int
    expired: int


class SessionInfo(BaseModel):
    thread_id: uuid.UUID
    user_id: uuid.UUID
    memory_state: str
    items: int
    bytes: int
    last_activity_at: datetime
    pruned_at: datetime | None


async def session_stats(db: AsyncSession, *, max_items: int) -> SessionStats:
    """Totals over every conversation with live memory, from bookkeeping (no file scan)."""
    active = col(Conversation.memory_state) == MemoryState.ACTIVE
    row = (
        await db.exec(  # type: ignore[call-overload]  # sqlmodel types exec() for at most 4 columns
            sa.select(
                sa.func.count().filter(active),
                sa.func.coalesce(sa.func.sum(Conversation.memory_item_count).filter(active), 0),
                sa.func.coalesce(sa.func.sum(Conversation.memory_bytes).filter(active), 0),
                sa.func.min(Conversation.last_activity_at).filter(active),
                sa.func.max(Conversation.last_activity_at).filter(active),
                sa.func.count().filter(active, col(Conversation.memory_item_count) > max_items),
                sa.func.count().filter(col(Conversation.memory_state) == MemoryState.EXPIRED),
            )
        )
    ).one()
    sessions, items, size, oldest, newest, over_cap, expired = row
    return SessionStats(
        sessions=sessions,
        total_items=items,
        average_items=round(items / sessions, 2) if sessions else 0.0,
        bytes_on_disk=size,
        oldest_activity_at=oldest,
        newest_activity_at=newest,
        over_cap=over_cap,
        expired=expired,
    )


async def get_session_info(db: AsyncSession, thread_id: uuid.UUID) -> SessionInfo:
    conversation = await db.get(Conversation, thread_id)
    if conversation is None:
        raise NotFoundError(f"Thread {thread_id} not found")
    return session_info(conversation)


def session_info(conversation: Conversation) -> SessionInfo:
    return SessionInfo(
        thread_id=conversation.id,
        user_id=conversation.user_id,
        memory_state=conversation.memory_state,
        items=conversation.memory_item_count,
        bytes=conversation.memory_bytes,
        last_activity_at=conversation.last_activity_at,
        pruned_at=conversation.memory_pruned_at,
    )


async def rebuild_memory(
    db: AsyncSession,
    memory: MemorySession,
    *,
    conversation_id: uuid.UUID,
    max_items: int,
    generation: int,
) -> int:
    """Replace the memory with the newest whole turns of the PostgreSQL log, tool calls
    included, and stamp the file with `generation` (the caller records it in PostgreSQL).

    Returns:
        The number of items written.
    """
    logged = await messages.recent_messages(db, conversation_id=conversation_id, limit=max_items)
    items = items_from_log([(m.role, m.content, m.meta) for m in logged])
    starts = [is_turn_start(item) for item in items]
    first_turn = starts.index(True) if True in starts else len(items)
    items, starts = items[first_turn:], starts[first_turn:]
    items = items[plan_cut(starts, max_items).keep_from :]
    await memory.replace_after(0, cast(list[TResponseInputItem], items))
    await memory.stamp(generation)
    return len(items)


async def record_memory(
    db: AsyncSession,
    conversation_id: uuid.UUID,
    *,
    stats: MemoryStats | None,
    generation: int | None = None,
    message_count: int | None = None,
    state: MemoryState = MemoryState.ACTIVE,
    pruned: bool = False,
) -> None:
    """Mirror the file's facts on the conversation row (no stats: no file, zeros).

    Args:
        generation: the memory generation the file was (or is about to be) stamped with.
        message_count: how many log messages the memory now reflects.
    """
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
    await db.exec(
        sa.update(Conversation).where(col(Conversation.id) == conversation_id).values(**values)
    )
