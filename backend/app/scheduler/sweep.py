"""`sweep-orphans`: this node's memory files checked against the thread rows (see `jobs`)."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, select

from app.db import session_scope
from app.models import MemoryState, Thread
from app.scheduler.batches import delete_files, local_threads, release_lease
from app.scheduler.context import JobContext
from app.services import leases


async def sweep_orphans(ctx: JobContext, *, remove: bool = True) -> dict[str, Any]:
    """Check this node's memory files against the thread rows.

    Finds files with no thread (orphans), files superseded elsewhere (stale copies: another
    node saved the thread's memory since, or retention expired it), and live rows whose
    current memory should be here but whose file is gone.

    Args:
        remove: delete orphans and stale copies (a stale one under its thread's lease, so a
            turn starting here meanwhile is never written into a deleted file) and mark rows
            without a file expired (they rebuild from the log on their next turn); False
            only reports.
    """
    files = {thread_id: user_id async for user_id, thread_id in ctx.memory_store.iter_sessions()}
    async with ctx.sessionmaker() as db:
        rows = (
            await db.exec(
                select(Thread.id, Thread.user_id, Thread.memory_state, Thread.memory_node)
            )
        ).all()
    owners = {row[0]: row[1] for row in rows}
    orphan_files = [(u, c) for c, u in files.items() if owners.get(c) != u]
    stale_ids = [row[0] for row in rows if row[0] in files and _superseded(ctx, row[2], row[3])]
    missing = [
        row[0]
        for row in rows
        if row[2] == MemoryState.ACTIVE
        and row[3] in (ctx.memory_node, None)
        and row[0] not in files
    ]
    removed_stale = 0
    if remove:
        for user_id, thread_id in orphan_files:
            await ctx.memory_store.delete(user_id, thread_id)
        removed_stale = await _remove_stale(ctx, stale_ids)
        await _expire_missing(ctx, missing)
    return {
        "orphan_files": len(orphan_files),
        "stale_copies": len(stale_ids),
        "stale_removed": removed_stale,
        "rows_without_file": len(missing),
        "removed": remove,
        "orphan_ids": [str(c) for _, c in orphan_files[:50]],
        "missing_ids": [str(c) for c in missing[:50]],
    }


def _superseded(ctx: JobContext, state: str, node: str | None) -> bool:
    """Whether this node's file of a thread is no longer its memory."""
    if state == MemoryState.EXPIRED:
        return True
    return ctx.memory_node is not None and node is not None and node != ctx.memory_node


def _superseded_sql(ctx: JobContext) -> sa.ColumnElement[bool]:
    """`_superseded`, re-checked when the thread is claimed."""
    expired = col(Thread.memory_state) == MemoryState.EXPIRED
    if ctx.memory_node is None:
        return expired
    elsewhere = sa.and_(
        col(Thread.memory_node).is_not(None), col(Thread.memory_node) != ctx.memory_node
    )
    return sa.or_(expired, elsewhere)


async def _remove_stale(ctx: JobContext, stale_ids: list[uuid.UUID]) -> int:
    if not stale_ids:
        return 0
    lease_id = uuid.uuid4()
    async with session_scope(ctx.sessionmaker) as db:
        claimed = await leases.claim_batch(
            db, stale_ids, _superseded_sql(ctx), holder=lease_id, incarnation=ctx.incarnation
        )
    removed = await delete_files(ctx, claimed)
    await release_lease(ctx, lease_id, [thread_id for thread_id, _ in claimed])
    return removed


async def _expire_missing(ctx: JobContext, missing: list[uuid.UUID]) -> None:
    if not missing:
        return
    async with session_scope(ctx.sessionmaker) as db:
        await db.exec(
            sa.update(Thread)
            .where(
                col(Thread.id).in_(missing),
                col(Thread.active_turn_id).is_(None),
                col(Thread.memory_state) == MemoryState.ACTIVE,
                local_threads(ctx),
            )
            .values(
                memory_state=MemoryState.EXPIRED,
                memory_item_count=0,
                memory_bytes=0,
                memory_node=None,
            )
        )
