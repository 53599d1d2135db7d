"""One-thread memory operations for operators: clear, rebuild, prune, inspect.

Each takes the thread's turn lease first, so it never races a turn.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlmodel import col

from app.db import session_scope
from app.errors import ConflictError, NotFoundError
from app.memory import MemoryVersionError
from app.models import MemoryState, Thread
from app.scheduler.context import JobContext
from app.services import leases, memory_records
from app.turns.memory import rebuild_memory


@asynccontextmanager
async def leased(ctx: JobContext, thread_id: uuid.UUID) -> AsyncIterator[uuid.UUID]:
    """Hold the thread's turn lease for the block; yields the owning user's id.

    Raises:
        NotFoundError: no such thread.
        ConflictError: a turn is running in it.
    """
    lease_id = uuid.uuid4()
    async with session_scope(ctx.sessionmaker) as db:
        claimed = await leases.claim_batch(
            db,
            [thread_id],
            col(Thread.id) == thread_id,
            holder=lease_id,
            incarnation=ctx.incarnation,
        )
        if not claimed and await db.get(Thread, thread_id) is None:
            raise NotFoundError(f"Thread {thread_id} not found")
    if not claimed:
        raise ConflictError("A turn is running in this thread; try again when it ends")
    try:
        yield claimed[0][1]
    finally:
        async with session_scope(ctx.sessionmaker) as db:
            await leases.release(db, [thread_id], lease_id)


async def clear(ctx: JobContext, thread_id: uuid.UUID) -> dict[str, Any]:
    """Make the agent forget the thread: delete its memory file (the messages stay)."""
    async with leased(ctx, thread_id) as user_id:
        existed = await ctx.memory_store.delete(user_id, thread_id)
        async with session_scope(ctx.sessionmaker) as db:
            thread = await db.get_one(Thread, thread_id)
            # A new generation: a stale copy of the file (another node's) is emptied too.
            await memory_records.record_memory(
                db,
                thread_id,
                stats=None,
                state=MemoryState.EMPTY,
                generation=await memory_records.next_generation(db),
                message_count=thread.message_count,
                node=ctx.memory_node,
            )
            await memory_records.forget_summary(db, thread_id, covers=thread.message_count)
    return {"thread_id": str(thread_id), "deleted_file": existed}


async def rebuild(ctx: JobContext, thread_id: uuid.UUID) -> dict[str, Any]:
    """Replace the thread's memory with its summary (if any) and its newest whole turns from
    the PostgreSQL log; after a clear, the whole log counts again."""
    async with (
        leased(ctx, thread_id) as user_id,
        ctx.memory_store.open(user_id, thread_id) as memory,
        session_scope(ctx.sessionmaker) as db,
    ):
        thread = await db.get_one(Thread, thread_id)
        if thread.memory_summary is None and thread.memory_summary_covers:
            # Asked for by an operator after a clear: the whole log again (a summary, when
            # there is one, is kept: it stands for what it covers).
            thread.memory_summary_covers = 0
            await memory_records.forget_summary(db, thread_id, covers=0)
        generation = await memory_records.next_generation(db)
        written = await rebuild_memory(
            db,
            memory,
            thread=thread,
            max_items=ctx.settings.memory_max_items,
            generation=generation,
        )
        await memory_records.record_memory(
            db,
            thread_id,
            stats=await memory.stats(),
            generation=generation,
            message_count=thread.message_count,
            node=ctx.memory_node,
        )
    return {"thread_id": str(thread_id), "items": written}


async def inspect(ctx: JobContext, thread_id: uuid.UUID) -> dict[str, Any]:
    """Bookkeeping plus what the file itself says (it is opened read-side only)."""
    async with ctx.sessionmaker() as db:
        info = await memory_records.get_thread_memory_info(db, thread_id)
    details: dict[str, Any] = info.model_dump(mode="json")
    exists = await ctx.memory_store.exists(info.user_id, thread_id)
    details["file_exists"] = exists
    if exists:
        try:
            async with ctx.memory_store.open(info.user_id, thread_id) as memory:
                stats = await memory.stats()
                head = await memory.head()
        except MemoryVersionError as e:
            details["file_error"] = e.message  # a newer format: the file is not opened
            return details
        details["file_items"], details["file_bytes"] = stats.items, stats.bytes
        summary = head.summary
        details["file_summary"] = (
            None
            if summary is None
            else {
                "chars": len(summary.text),
                "made_at": summary.made_at.isoformat(),
                "covers_messages": summary.covers,
            }
        )
    return details
