"""Maintenance jobs: plain async functions with explicit dependencies that return a summary.

The scheduler, the CLI (`sessions run-job NAME`) and the admin API all call these same
functions through `run_job`, which serializes each job across processes and records the run.

A job never touches a memory file that a turn holds: before deleting or rewriting a file it
takes the thread's turn lease in PostgreSQL (skipping threads whose lease is
taken), so a turn that starts meanwhile gets a 409 instead of writing into a deleted file.

With several nodes (each its own DATA_DIR, one PostgreSQL), memory files are node-local.
Global decisions (which threads expired: `cleanup`; old stream events) are made once, by
whichever node holds the job's advisory lock. Jobs that read or rewrite files (`prune`,
`vacuum`, `reconcile`, `sweep-orphans`) run on every node for its own files only: the threads
whose current memory this node holds (`threads.memory_node`), or, for rows saved before nodes
were recorded, whose file is here; with the shared `postgres` backend, the threads no node's
files hold. `sweep-orphans` also removes this node's copies that another node has superseded
and those of expired threads.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from typing import Any, cast

import sqlalchemy as sa
from sqlmodel import col, select

from app.db import session_scope
from app.memory import MemoryVersionError
from app.memory.provider_binding import ProviderConversationLostError
from app.models import MemoryState, Thread
from app.models.base import utc_now
from app.scheduler.batches import (
    claimed_batches,
    delete_files,
    local_threads,
    present_here,
    release_lease,
)
from app.scheduler.context import JobContext
from app.scheduler.sweep import sweep_orphans as sweep_orphans  # a job like the others here
from app.services import turn_events
from app.turns.memory import reconcile_memory

logger = logging.getLogger(__name__)


async def cleanup(
    ctx: JobContext, *, older_than_days: int | None = None, dry_run: bool = False
) -> dict[str, Any]:
    """Delete the memory files of threads inactive for longer than the retention.

    The threads and their messages stay; the next message rebuilds memory from the log.

    Args:
        older_than_days: overrides AGENT_SESSION_RETENTION_DAYS (whose 0 disables cleanup).
        dry_run: only count what would be deleted.
    """
    days = ctx.settings.AGENT_SESSION_RETENTION_DAYS if older_than_days is None else older_than_days
    if days <= 0:
        return {"disabled": True}
    cutoff = ctx.clock() - timedelta(days=days)
    expired = sa.and_(
        col(Thread.memory_state) == MemoryState.ACTIVE,
        col(Thread.last_activity_at) < cutoff,
    )
    if dry_run:
        async with ctx.sessionmaker() as db:
            count = (await db.exec(select(sa.func.count()).where(expired))).one()
        return {"dry_run": True, "would_delete": count, "cutoff": cutoff.isoformat()}
    lease_id, deleted, batches = uuid.uuid4(), 0, 0
    async for batch in claimed_batches(ctx, expired, lease_id=lease_id):
        await delete_files(ctx, batch)  # off the loop, a couple at a time
        await _mark_expired(ctx, lease_id, [thread_id for thread_id, _ in batch])
        deleted, batches = deleted + len(batch), batches + 1
        logger.info("cleanup: %d memory files deleted so far (batch %d)", deleted, batches)
    return {"deleted": deleted, "batches": batches, "cutoff": cutoff.isoformat()}


async def _mark_expired(ctx: JobContext, lease_id: uuid.UUID, ids: list[uuid.UUID]) -> None:
    async with session_scope(ctx.sessionmaker) as db:
        await db.exec(
            sa.update(Thread)
            .where(col(Thread.id).in_(ids), col(Thread.active_turn_id) == lease_id)
            .values(
                memory_state=MemoryState.EXPIRED,
                memory_item_count=0,
                memory_bytes=0,
                memory_node=None,  # every node's copy is stale now (sweep-orphans removes it)
                active_turn_id=None,
                active_turn_expires_at=None,
            )
        )


async def prune(
    ctx: JobContext, *, thread_id: uuid.UUID | None = None, dry_run: bool = False
) -> dict[str, Any]:
    """Prune sessions over the cap (after the cap was lowered, say) and vacuum fragmented files.

    Args:
        thread_id: only this thread (any size); default every one over the cap.
        dry_run: only count the sessions over the cap.
    """
    cap = ctx.settings.memory_cap
    recently = ctx.clock() - timedelta(
        minutes=2 * ctx.settings.AGENT_SESSION_PRUNE_INTERVAL_MINUTES
    )
    where = sa.and_(col(Thread.memory_state) == MemoryState.ACTIVE, local_threads(ctx))
    if thread_id is not None:
        where = sa.and_(where, col(Thread.id) == thread_id)
    else:
        where = sa.and_(
            where,
            sa.or_(
                col(Thread.memory_item_count) > cap,
                col(Thread.memory_pruned_at) >= recently,
            ),
        )
    if dry_run:
        async with ctx.sessionmaker() as db:
            count = (await db.exec(select(sa.func.count()).where(where))).one()
        return {"dry_run": True, "would_check": count}
    totals = {"checked": 0, "pruned": 0, "items_removed": 0, "vacuumed": 0}
    lease_id = uuid.uuid4()
    async for claimed in claimed_batches(ctx, where, lease_id=lease_id):
        batch = await present_here(ctx, lease_id, claimed)
        updates = []
        for held_id, user_id in batch:
            update = await _prune_one(ctx, held_id, user_id, totals)
            if update is not None:
                updates.append(update)
        await _record_batch(ctx, lease_id, updates)
        await release_lease(ctx, lease_id, [held_id for held_id, _ in batch])
        if ctx.compactor is not None:
            await _compact_batch(ctx, [held_id for held_id, _ in batch], totals)
    return totals


async def _prune_one(
    ctx: JobContext, thread_id: uuid.UUID, user_id: uuid.UUID, totals: dict[str, int]
) -> dict[str, Any] | None:
    """Prune, checkpoint and maybe vacuum one file; returns its new bookkeeping (None: a
    file in a newer format, left untouched)."""
    try:
        async with ctx.memory_store.open(user_id, thread_id) as memory:
            result = await memory.prune(
                ctx.settings.memory_max_items, down_to=ctx.settings.memory_prune_to
            )
            if result.removed:
                await memory.checkpoint()
            if await memory.reclaim(ctx.settings.AGENT_SESSION_VACUUM_FREE_RATIO):
                totals["vacuumed"] += 1
            stats = await memory.stats()
    except MemoryVersionError:
        totals["refused"] = totals.get("refused", 0) + 1
        logger.warning("prune: the memory of thread %s is in a newer format; skipped", thread_id)
        return None
    totals["checked"] += 1
    totals["pruned"] += result.removed > 0
    totals["items_removed"] += result.removed
    return {
        "b_id": thread_id,
        "b_items": stats.items,
        "b_bytes": stats.bytes,
        "b_last_id": stats.last_id,
        "b_pruned": result.removed > 0,
    }


async def _compact_batch(ctx: JobContext, ids: list[uuid.UUID], totals: dict[str, int]) -> None:
    """Summarize what prunes removed and no summary covers yet: this sweep's prunes, and a
    turn's prune whose summary failed or was skipped (the retry). Leases are released first:
    the compactor takes each thread's lease itself, only for its short critical section."""
    assert ctx.compactor is not None
    pending = sa.and_(
        col(Thread.id).in_(ids),
        col(Thread.memory_pruned_at).is_not(None),
        sa.or_(
            col(Thread.memory_summary_at).is_(None),
            col(Thread.memory_pruned_at) > col(Thread.memory_summary_at),
        ),
    )
    async with ctx.sessionmaker() as db:
        rows = (await db.exec(select(Thread.id, Thread.user_id).where(pending))).all()
    for thread_id, user_id in rows:
        outcome = await ctx.compactor.compact(user_id, thread_id)
        key = "summaries_" + outcome.split(":")[0].replace(" ", "_")
        totals[key] = totals.get(key, 0) + 1


async def _record_batch(
    ctx: JobContext, lease_id: uuid.UUID, updates: list[dict[str, Any]]
) -> None:
    """One transaction per batch: the files' new facts, and their leases released."""
    if not updates:
        return
    now = utc_now()
    table = cast(sa.Table, Thread.__table__)  # type: ignore[attr-defined]  # set by SQLModel at class creation; Core UPDATE so executemany runs over the batch
    statement = (
        sa.update(table)
        .where(table.c.id == sa.bindparam("b_id"), table.c.active_turn_id == lease_id)
        .values(
            memory_item_count=sa.bindparam("b_items"),
            memory_bytes=sa.bindparam("b_bytes"),
            memory_last_item_id=sa.bindparam("b_last_id"),
            memory_pruned_at=sa.case(
                (sa.bindparam("b_pruned"), now), else_=table.c.memory_pruned_at
            ),
            active_turn_id=None,
            active_turn_expires_at=None,
        )
    )
    async with session_scope(ctx.sessionmaker) as db:
        await db.exec(statement, params=updates)


async def vacuum(ctx: JobContext) -> dict[str, Any]:
    """Vacuum every live memory file whose free pages pass AGENT_SESSION_VACUUM_FREE_RATIO."""
    totals = {"checked": 0, "vacuumed": 0}
    lease_id = uuid.uuid4()
    where = sa.and_(col(Thread.memory_state) == MemoryState.ACTIVE, local_threads(ctx))
    async for claimed in claimed_batches(ctx, where, lease_id=lease_id):
        batch = await present_here(ctx, lease_id, claimed)
        for thread_id, user_id in batch:
            try:
                async with ctx.memory_store.open(user_id, thread_id) as memory:
                    if await memory.reclaim(ctx.settings.AGENT_SESSION_VACUUM_FREE_RATIO):
                        totals["vacuumed"] += 1
            except MemoryVersionError:
                continue  # a newer format: left untouched
            totals["checked"] += 1
        await release_lease(ctx, lease_id, [thread_id for thread_id, _ in batch])
    return totals


async def reconcile(ctx: JobContext, *, dry_run: bool = False) -> dict[str, Any]:
    """Make every live thread's memory match its log: what a crash, a lost WAL, a restored
    copy or a lost lease left behind (see `turn_memory`). Runs at startup; `verify` is its
    dry run.

    Args:
        dry_run: only report what is wrong (nothing is written, no file is created).
    """
    where = sa.and_(
        local_threads(ctx),
        sa.or_(
            col(Thread.memory_state) == MemoryState.ACTIVE,
            sa.and_(  # never saved or cleared, but turns failed since: memory holds them
                col(Thread.memory_state) == MemoryState.EMPTY,
                col(Thread.message_count) > col(Thread.memory_message_count),
            ),
        ),
    )
    reasons: dict[str, int] = {}
    found: list[str] = []
    checked = 0
    lease_id = uuid.uuid4()
    async for claimed in claimed_batches(ctx, where, lease_id=lease_id):
        batch = await present_here(ctx, lease_id, claimed)
        for thread_id, user_id in batch:
            reason = await _reconcile_one(ctx, thread_id, user_id, dry_run=dry_run)
            checked += 1
            if reason is not None:
                reasons[reason] = reasons.get(reason, 0) + 1
                found.append(str(thread_id))
        await release_lease(ctx, lease_id, [thread_id for thread_id, _ in batch])
    refused = reasons.get(NEWER_FORMAT, 0) + reasons.get(PROVIDER_LOST, 0)
    return {
        "checked": checked,
        "repaired": 0 if dry_run else len(found) - refused,
        "diverged": len(found),
        "reasons": reasons,
        "diverged_ids": found[:50],
        "dry_run": dry_run,
    }


async def expire_turn_events(ctx: JobContext) -> dict[str, Any]:
    """Remove the stream events of turns that ended more than TURN_REPLAY_SECONDS ago (and
    of turns a crash left running, once no turn could still be that old)."""
    settings = ctx.settings
    after_end = timedelta(seconds=settings.TURN_REPLAY_SECONDS)
    max_age = after_end + timedelta(
        seconds=settings.MAX_TURN_SECONDS + 2 * settings.TURN_LEASE_SECONDS
    )
    async with session_scope(ctx.sessionmaker) as db:
        removed = await turn_events.expire(db, after_end=after_end, max_age=max_age)
    return {"removed": removed}


# A memory file a newer Threadkeeper wrote: reported, never touched (see memory.versions).
NEWER_FORMAT = "newer format"
# openai_conversations without FORCE_PROVIDER_SESSION_REBIND: reported, left to an operator.
PROVIDER_LOST = "provider conversation lost"


async def _reconcile_one(
    ctx: JobContext, thread_id: uuid.UUID, user_id: uuid.UUID, *, dry_run: bool
) -> str | None:
    """Why the thread's memory was not its log (and is repaired, unless `dry_run`), or None."""
    try:
        async with (
            session_scope(ctx.sessionmaker) as db,
            ctx.memory_store.open(user_id, thread_id) as memory,
        ):
            thread = await db.get_one(Thread, thread_id)
            repair = await reconcile_memory(
                db,
                ctx.memory_store,
                memory,
                thread,
                max_items=ctx.settings.memory_max_items,
                dry_run=dry_run,
                node=ctx.memory_node,
            )
    except MemoryVersionError:
        logger.warning("The memory of thread %s is in a newer format; left untouched", thread_id)
        return NEWER_FORMAT
    except ProviderConversationLostError:
        logger.warning("The provider lost the conversation of thread %s; left as is", thread_id)
        return PROVIDER_LOST
    return repair.reason


async def verify(ctx: JobContext) -> dict[str, Any]:
    """Report, changing nothing, everything the orphan sweep and reconcile would repair."""
    files = await sweep_orphans(ctx, remove=False)
    memory = await reconcile(ctx, dry_run=True)
    ok = not (files["orphan_files"] or files["rows_without_file"] or memory["diverged"])
    return {"ok": ok, "files": files, "memory": memory}
