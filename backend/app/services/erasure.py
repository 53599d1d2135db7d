"""Erasing a user: every row and every file that names them, or nothing at all.

Order, and why:

1. Lease every thread of the user (in batches, the maintenance lease). A thread whose turn is
   running cannot be leased: then every lease taken is given back and the erasure is refused
   with a 409 (`Retry-After`), having changed nothing. A reply can run for minutes, so
   waiting inside the request would only trade a clear answer for a timeout.
2. One transaction: lock the user row, so a concurrent insert of a thread or a task waits on
   it (and then fails its foreign key: see `UserIdCache`); lease any thread created since
   step 1 (a running turn there is the same 409, still before anything is touched); remove
   the user's memory directory and quarantined copies (no turn or job can write one without
   a lease we hold); scrub the thread ids from maintenance bookkeeping; delete the user row,
   whose threads, messages and tasks cascade; commit.

If the transaction fails after the files went, the rows stay and each thread rebuilds its
memory from the log on its next turn; running the erasure again finishes it.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any, ClassVar

import sqlalchemy as sa
from pydantic import BaseModel
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.db import SessionMaker, session_scope
from app.errors import ConflictError
from app.memory import ErasedFiles, MemoryStore
from app.models import MaintenanceRun, Message, Task, Thread, User
from app.services import leases

logger = logging.getLogger(__name__)

CLAIM_BATCH_THREADS = 500
RETRY_AFTER_SECONDS = 5


class ErasureBusyError(ConflictError):
    """A turn is running in one of the user's threads: nothing was erased."""

    kind = "ConflictError"
    headers: ClassVar[dict[str, str] | None] = {"Retry-After": str(RETRY_AFTER_SECONDS)}


class ErasureResult(BaseModel):
    """What an erasure removed."""

    subject: str
    user_id: uuid.UUID
    threads: int
    messages: int
    tasks: int
    memory_files: int
    quarantined_files: int
    maintenance_runs_scrubbed: int


async def erase_user(
    sessionmaker: SessionMaker,
    memory_store: MemoryStore,
    *,
    user_id: uuid.UUID,
    subject: str,
) -> ErasureResult:
    """Erase the user's threads, messages, tasks, memory files and user row.

    Raises:
        ErasureBusyError: a reply is being generated in one of the threads.
    """
    holder = uuid.uuid4()
    leased = await _lease_all(sessionmaker, user_id, holder, set())
    try:
        async with session_scope(sessionmaker) as db:
            counts, files = await _erase_locked(db, memory_store, user_id, holder, leased)
    except BaseException:
        async with session_scope(sessionmaker) as db:
            await leases.release(db, leased, holder)
        raise
    logger.info("Erased a user: %s", counts)
    return ErasureResult(
        subject=subject,
        user_id=user_id,
        memory_files=files.memory_files,
        quarantined_files=files.quarantined_files,
        **counts,
    )


async def _lease_all(
    sessionmaker: SessionMaker, user_id: uuid.UUID, holder: uuid.UUID, leased: set[uuid.UUID]
) -> set[uuid.UUID]:
    """Lease every thread of the user not leased yet; all or none (then ErasureBusyError)."""
    owned = col(Thread.user_id) == user_id
    after: uuid.UUID | None = None
    while True:
        async with session_scope(sessionmaker) as db:
            query = select(Thread.id).where(owned).order_by(col(Thread.id))
            if after is not None:
                query = query.where(col(Thread.id) > after)
            batch = list((await db.exec(query.limit(CLAIM_BATCH_THREADS))).all())
            wanted = [thread_id for thread_id in batch if thread_id not in leased]
            claimed = await leases.claim_batch(db, wanted, owned, holder=holder)
            leased.update(thread_id for thread_id, _ in claimed)
            busy = await _still_there(db, set(wanted) - leased)
        if busy:
            async with session_scope(sessionmaker) as db:
                await leases.release(db, leased, holder)
            raise ErasureBusyError(
                f"A reply is being generated in thread {busy[0]}; nothing was erased. "
                "Try again when it ends"
            )
        if len(batch) < CLAIM_BATCH_THREADS:
            return leased
        after = batch[-1]


async def _still_there(db: AsyncSession, ids: set[uuid.UUID]) -> list[uuid.UUID]:
    """Of threads we could not lease, those that exist (busy), not deleted meanwhile."""
    if not ids:
        return []
    return list((await db.exec(select(Thread.id).where(col(Thread.id).in_(ids)))).all())


async def _erase_locked(
    db: AsyncSession,
    memory_store: MemoryStore,
    user_id: uuid.UUID,
    holder: uuid.UUID,
    leased: set[uuid.UUID],
) -> tuple[dict[str, int], ErasedFiles]:
    """Step 2, in the caller's transaction: returns the rows and files removed."""
    locked = await db.exec(select(User.id).where(User.id == user_id).with_for_update())
    if locked.first() is None:  # erased meanwhile (a second request, or an admin)
        counts = {"threads": 0, "messages": 0, "tasks": 0, "maintenance_runs_scrubbed": 0}
        return counts, ErasedFiles(memory_files=0, quarantined_files=0)
    await _lease_late_threads(db, user_id, holder, leased)
    files = await memory_store.erase_user(user_id)
    thread_ids = list(
        (await db.exec(select(Thread.id).where(col(Thread.user_id) == user_id))).all()
    )
    counts = {
        "threads": len(thread_ids),
        "messages": await _count(db, Message, col(Message.thread_id).in_(thread_ids)),
        "tasks": await _count(db, Task, col(Task.user_id) == user_id),
        "maintenance_runs_scrubbed": await scrub_maintenance_runs(db, thread_ids),
    }
    # Threads, messages and tasks go with the user row (ON DELETE CASCADE).
    await db.exec(sa.delete(User).where(col(User.id) == user_id))
    return counts, files


async def _lease_late_threads(
    db: AsyncSession, user_id: uuid.UUID, holder: uuid.UUID, leased: set[uuid.UUID]
) -> None:
    """Lease threads created after step 1 (no more can appear: the user row is locked)."""
    late = col(Thread.user_id) == user_id
    query = select(Thread.id).where(late, col(Thread.active_turn_id).is_distinct_from(holder))
    ids = list((await db.exec(query)).all())
    if not ids:
        return
    claimed = {thread_id for thread_id, _ in await leases.claim_batch(db, ids, late, holder=holder)}
    leased.update(claimed)
    if len(claimed) < len(ids):
        raise ErasureBusyError(
            "A reply started in a new thread during the erasure; nothing was erased. "
            "Try again when it ends"
        )


async def _count(db: AsyncSession, table: type[Any], where: sa.ColumnElement[bool]) -> int:
    return int((await db.exec(select(sa.func.count()).select_from(table).where(where))).one())


async def scrub_maintenance_runs(db: AsyncSession, thread_ids: list[uuid.UUID]) -> int:
    """Remove these thread ids from every maintenance run's counts (lists of ids).

    The runs are few (a handful a day) and their counts small, so each candidate is read,
    cleaned in Python (any depth: `verify` nests its reports) and written back.

    Returns:
        How many runs changed.
    """
    if not thread_ids:
        return 0
    names = {str(thread_id) for thread_id in thread_ids}
    candidates = await db.exec(
        select(MaintenanceRun).where(
            sa.cast(col(MaintenanceRun.counts), sa.Text).op("~")("[0-9a-f]{8}-[0-9a-f]{4}-")
        )
    )
    changed = 0
    for run in candidates.all():
        cleaned = _without(run.counts, names)
        if json.dumps(cleaned, sort_keys=True) != json.dumps(run.counts, sort_keys=True):
            run.counts = cleaned
            db.add(run)
            changed += 1
    await db.flush()
    return changed


def _without(value: Any, names: set[str]) -> Any:
    """`value` with every string in `names` dropped from its lists, at any depth."""
    if isinstance(value, dict):
        return {key: _without(item, names) for key, item in value.items()}
    if isinstance(value, list):
        return [
            _without(item, names) for item in value if not (isinstance(item, str) and item in names)
        ]
    return value
