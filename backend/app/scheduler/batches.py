"""Claiming threads in batches for jobs, and which threads' files are on this node."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, select

from app.db import session_scope
from app.models import Thread
from app.scheduler.context import JobContext
from app.services import leases

# Files deleted between yields to the event loop (each unlink is ~20-60 us).
YIELD_EVERY_FILES = 8


async def claimed_batches(
    ctx: JobContext, where: Any, *, lease_id: uuid.UUID
) -> AsyncIterator[list[tuple[uuid.UUID, uuid.UUID]]]:
    """Yield batches of idle threads matching `where`, each batch under our lease.

    Candidates are read once (oldest activity first), so a job visits each at most once.
    Each batch is claimed with the same condition re-checked, skipping any thread
    whose turn lease is taken: a turn in progress is never touched.
    """
    async with ctx.sessionmaker() as db:
        candidates = list(
            (
                await db.exec(select(Thread.id).where(where).order_by(col(Thread.last_activity_at)))
            ).all()
        )
    size = ctx.settings.AGENT_SESSION_CLEANUP_BATCH_SIZE
    for start in range(0, len(candidates), size):
        if ctx.on_progress is not None:
            ctx.on_progress(start, len(candidates))
        async with session_scope(ctx.sessionmaker) as db:
            batch = await leases.claim_batch(
                db,
                candidates[start : start + size],
                where,
                holder=lease_id,
                incarnation=ctx.incarnation,
            )
        if batch:
            yield batch
    if ctx.on_progress is not None:
        ctx.on_progress(len(candidates), len(candidates))


def local_threads(ctx: JobContext) -> sa.ColumnElement[bool]:
    """Threads whose current memory may be in this node's files (all, for a shared backend)."""
    if ctx.memory_node is None:
        return sa.true()
    return sa.or_(col(Thread.memory_node) == ctx.memory_node, col(Thread.memory_node).is_(None))


async def present_here(
    ctx: JobContext, lease_id: uuid.UUID, batch: list[tuple[uuid.UUID, uuid.UUID]]
) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """The threads of a claimed batch whose file is on this node; the others are released
    (their memory is on another node, which handles it)."""
    if ctx.memory_node is None:
        return batch
    here = [(c, u) for c, u in batch if await ctx.memory_store.exists(u, c)]
    if len(here) < len(batch):
        kept = {c for c, _ in here}
        await release_lease(ctx, lease_id, [c for c, _ in batch if c not in kept])
    return here


async def release_lease(ctx: JobContext, lease_id: uuid.UUID, ids: list[uuid.UUID]) -> None:
    """Give back the turn lease of `ids` if we still hold it."""
    async with session_scope(ctx.sessionmaker) as db:
        await leases.release(db, ids, lease_id)
