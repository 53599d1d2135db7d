"""The thread lease: one writer (a turn, a delete, a maintenance job) per thread at a time.

A lease is two columns on the thread row (`active_turn_id`, `active_turn_expires_at`),
not an advisory lock: it works through transaction-mode poolers, and a crashed worker's lease
simply expires. Expiry is measured on the database's clock, so nodes with skewed clocks agree.

Every claim, renewal and release here runs in a short transaction of its own, so a lease
claim never holds a row lock while its holder waits on anything else (a memory file, the
model): that ordering is what rules out the deadlock of a claim waiting on a turn that waits
on the claim's row.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.db import SessionMaker, session_scope
from app.errors import ConflictError, NotFoundError
from app.models import Thread

# Lease lengths. A turn's is TURN_LEASE_SECONDS (a setting), renewed by `LeaseKeeper`;
# jobs hold a batch of threads while they rewrite or delete files and renew nothing; a
# delete holds its thread only while it removes the file and the row.
MAINTENANCE_LEASE = timedelta(minutes=5)
DELETE_LEASE = timedelta(seconds=30)

BUSY_MESSAGE = "A reply is already being generated in this thread; try again when it ends"


def is_free() -> sa.ColumnElement[bool]:
    """No live lease: nobody holds it, or the holder's lease ran out."""
    return sa.or_(
        col(Thread.active_turn_id).is_(None),
        col(Thread.active_turn_expires_at) < sa.func.now(),
    )


def _expires(lease: timedelta) -> sa.ColumnElement[Any]:
    return sa.func.now() + lease


async def claim(
    sessionmaker: SessionMaker,
    *,
    user_id: uuid.UUID,
    thread_id: uuid.UUID,
    holder: uuid.UUID,
    lease: timedelta,
    incarnation: uuid.UUID | None = None,
) -> Thread:
    """Take the caller's thread's lease in a transaction of its own, committed at once.

    One UPDATE ... RETURNING does the lookup, the ownership check and the claim.

    Args:
        incarnation: the holder's node incarnation (`app.node`): when that node restarts,
            it frees the lease at once instead of leaving it to expire.

    Returns:
        The thread as of the claim (detached; its lease is `holder`'s).

    Raises:
        NotFoundError: no such thread for this user.
        ConflictError: another holder has a live lease.
    """
    async with session_scope(sessionmaker) as db:
        return await claim_in(
            db,
            Claim(
                user_id=user_id,
                thread_id=thread_id,
                holder=holder,
                lease=lease,
                incarnation=incarnation,
            ),
        )


@dataclass(frozen=True)
class Claim:
    """What a lease claim takes: the caller's thread, for `holder`, for `lease`.

    `incarnation`: the holder's node incarnation (`app.node`); `counted`: the lease is a
    user's turn (it counts against LIMIT_RUNNING_TURNS).
    """

    user_id: uuid.UUID
    thread_id: uuid.UUID
    holder: uuid.UUID
    lease: timedelta
    incarnation: uuid.UUID | None = None
    counted: bool = False


async def claim_in(
    db: AsyncSession,
    claim: Claim,
    *,
    admit: tuple[sa.ColumnElement[bool], Callable[[], Exception]] | None = None,
) -> Thread:
    """`claim` inside the caller's transaction (which commits it), for a caller that does
    more in the same transaction (the fair-use check of a user's turn).

    Args:
        admit: a further condition of the claim, and the error to raise when the thread
            was free but the condition refused it.
    """
    conditions = [
        col(Thread.id) == claim.thread_id,
        col(Thread.user_id) == claim.user_id,
        is_free(),
    ]
    if admit is not None:
        conditions.append(admit[0])
    claimed = (
        (
            await db.exec(
                sa.update(Thread)
                .where(*conditions)
                .values(
                    active_turn_id=claim.holder,
                    active_turn_expires_at=_expires(claim.lease),
                    active_turn_incarnation=claim.incarnation,
                    active_turn_counted=claim.counted,
                )
                .returning(Thread)
                .execution_options(populate_existing=True)
            )
        )
        .scalars()
        .first()
    )
    if claimed is None:
        free = (
            await db.exec(
                select(is_free()).where(
                    Thread.id == claim.thread_id, Thread.user_id == claim.user_id
                )
            )
        ).first()
        if free is None:
            raise NotFoundError(f"Thread {claim.thread_id} not found")
        if free and admit is not None:
            raise admit[1]()
        raise ConflictError(BUSY_MESSAGE)
    thread: Thread = claimed
    return thread


async def renew(
    db: AsyncSession, holders: Iterable[tuple[uuid.UUID, uuid.UUID]], lease: timedelta
) -> set[uuid.UUID]:
    """Extend every (thread, holder) lease still held, in one statement.

    Returns:
        The threads whose lease was renewed; the others are no longer their holder's.
    """
    pairs = list(holders)
    if not pairs:
        return set()
    rows = await db.exec(
        sa.update(Thread)
        .where(sa.tuple_(col(Thread.id), col(Thread.active_turn_id)).in_(pairs))
        .values(active_turn_expires_at=_expires(lease))
        .returning(col(Thread.id))
    )
    return set(rows.scalars().all())


async def release(db: AsyncSession, thread_ids: Iterable[uuid.UUID], holder: uuid.UUID) -> None:
    """Give back `holder`'s lease on each thread, if it still holds it."""
    ids = list(thread_ids)
    if not ids:
        return
    await db.exec(
        sa.update(Thread)
        .where(col(Thread.id).in_(ids), col(Thread.active_turn_id) == holder)
        .values(active_turn_id=None, active_turn_expires_at=None)
    )


async def claim_batch(
    db: AsyncSession,
    thread_ids: list[uuid.UUID],
    where: sa.ColumnElement[bool],
    *,
    holder: uuid.UUID,
    lease: timedelta = MAINTENANCE_LEASE,
    incarnation: uuid.UUID | None = None,
) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """Lease each idle thread of the batch that still matches `where`.

    Returns:
        (thread id, owner's user id) of every thread now held by `holder`.
    """
    rows = await db.exec(
        sa.update(Thread)
        .where(col(Thread.id).in_(thread_ids), where, is_free())
        .values(
            active_turn_id=holder,
            active_turn_expires_at=_expires(lease),
            active_turn_incarnation=incarnation,
            active_turn_counted=False,
        )
        .returning(col(Thread.id), col(Thread.user_id))
    )
    return [(row[0], row[1]) for row in rows.all()]


def held_by(holder: uuid.UUID) -> sa.ColumnElement[bool]:
    """The condition of a write that must only happen while `holder` has the lease."""
    return col(Thread.active_turn_id) == holder
