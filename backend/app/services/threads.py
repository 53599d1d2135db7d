"""Threads owned by one user: every lookup is scoped to the caller.

A thread that is someone else's is reported exactly like one that does not exist, so ids
leak nothing across users.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from enum import Enum
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.db import SessionMaker, session_scope
from app.errors import BadRequestError, NotFoundError, UnprocessableError
from app.memory import MemoryStore
from app.models import Thread, ThreadStatus
from app.models.base import utc_now
from app.models.text import unstorable_in
from app.services import leases
from app.services.pagination import Page


class _Unset(Enum):
    UNSET = "unset"


UNSET = _Unset.UNSET  # a field a PATCH did not send


@dataclass(frozen=True)
class ThreadChanges:
    title: str | None | _Unset = UNSET
    status: ThreadStatus | _Unset = UNSET
    metadata: dict[str, Any] | _Unset = UNSET


def clean_title(title: str | None, max_chars: int) -> str | None:
    """Trim a title; blank means untitled. Raises UnprocessableError past the limit."""
    if title is None or not title.strip():
        return None
    title = title.strip()
    if len(title) > max_chars:
        raise UnprocessableError(f"title is {len(title)} characters; the limit is {max_chars}")
    return title


def check_metadata(metadata: dict[str, Any] | None, max_bytes: int) -> dict[str, Any] | None:
    """Metadata as stored: every string storable, at most `max_bytes` of JSON in all."""
    if metadata is None:
        return None
    problem = unstorable_in(metadata)
    if problem is not None:
        raise UnprocessableError(f"metadata: {problem}")
    size = len(json.dumps(metadata, ensure_ascii=False).encode())
    if size > max_bytes:
        raise UnprocessableError(
            f"metadata is {size} bytes of JSON; the limit is {max_bytes} (MAX_THREAD_METADATA_BYTES)"
        )
    return metadata


async def create_thread(
    db: AsyncSession,
    *,
    user_id: uuid.UUID,
    title: str | None,
    agent: str,
    metadata: dict[str, Any] | None = None,
    thread_id: uuid.UUID | None = None,
) -> Thread:
    """A new thread of the user's, served by `agent` (a name in AGENTS, checked by the caller);
    `thread_id`: one a client (ChatKit) was already given."""
    thread = Thread(
        id=thread_id or uuid.uuid4(), user_id=user_id, title=title, agent=agent, meta=metadata or {}
    )
    db.add(thread)
    await db.flush()
    return thread


async def get_thread(
    db: AsyncSession, *, user_id: uuid.UUID, thread_id: uuid.UUID, for_update: bool = False
) -> Thread:
    """Return the caller's thread.

    Raises:
        NotFoundError: when it does not exist or belongs to another user.
    """
    query = select(Thread).where(Thread.id == thread_id, Thread.user_id == user_id)
    if for_update:
        query = query.with_for_update()
    thread = (await db.exec(query)).first()
    if thread is None:
        raise NotFoundError(f"Thread {thread_id} not found")
    return thread


async def list_threads(
    db: AsyncSession,
    *,
    user_id: uuid.UUID,
    limit: int,
    after: uuid.UUID | None,
    status: ThreadStatus | None = None,
) -> Page[Thread]:
    """The caller's threads, most recent activity first (ties broken by id)."""
    query = select(Thread).where(Thread.user_id == user_id)
    if status is not None:
        query = query.where(Thread.status == status)
    if after is not None:
        cursor = (
            await db.exec(
                select(Thread.last_activity_at, Thread.id).where(
                    Thread.id == after, Thread.user_id == user_id
                )
            )
        ).first()
        if cursor is None:
            raise BadRequestError(f"Unknown cursor 'after={after}'")
        query = query.where(sa.tuple_(Thread.last_activity_at, Thread.id) < sa.tuple_(*cursor))
    query = query.order_by(col(Thread.last_activity_at).desc(), col(Thread.id).desc()).limit(
        limit + 1
    )
    return Page.from_rows((await db.exec(query)).all(), limit)


async def update_thread(db: AsyncSession, thread: Thread, changes: ThreadChanges) -> Thread:
    """Apply the fields a client sent (the others stay as they are)."""
    if not isinstance(changes.title, _Unset):
        thread.title = changes.title
    if not isinstance(changes.status, _Unset):
        thread.status = changes.status
    if not isinstance(changes.metadata, _Unset):
        thread.meta = changes.metadata
    thread.updated_at = utc_now()
    db.add(thread)
    await db.flush()
    return thread


async def delete_thread(
    db: AsyncSession,
    thread: Thread,
    *,
    sessionmaker: SessionMaker,
    memory_store: MemoryStore,
    wait_s: float,
) -> None:
    """Delete the caller's thread, its messages (cascade) and its memory file.

    The memory file's lock is taken first (bounded), then the lease in a transaction of its
    own, so no turn in any worker is writing the file and no row lock is held while waiting;
    the row is deleted in the request's transaction only while the lease is still ours.

    Raises:
        NotFoundError: no such thread for this user.
        ConflictError: a turn is running in it.
    """
    holder, user_id, thread_id = uuid.uuid4(), thread.user_id, thread.id
    async with memory_store.open(user_id, thread_id, wait_s=wait_s, refuse_if_turn=True) as memory:
        await leases.claim(
            sessionmaker,
            user_id=user_id,
            thread_id=thread_id,
            holder=holder,
            lease=leases.DELETE_LEASE,
        )
        try:
            await memory_store.remove(memory)
            await db.exec(
                sa.delete(Thread).where(col(Thread.id) == thread_id, leases.held_by(holder))
            )
        except BaseException:
            async with session_scope(sessionmaker) as release_db:
                await leases.release(release_db, [thread_id], holder)
            raise
