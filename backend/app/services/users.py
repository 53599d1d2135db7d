"""Users are identified by their token's subject and created on first sight."""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from collections.abc import Callable

import psycopg
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.errors import ConflictError
from app.models import User


class AccountGoneError(ConflictError):
    """A write named a user whose row was erased meanwhile (a stale id, see UserIdCache)."""


def is_missing_user(error: IntegrityError) -> bool:
    """Whether a write failed because the user row it references no longer exists."""
    orig = error.orig
    if not isinstance(orig, psycopg.errors.ForeignKeyViolation):
        return False
    return str(orig.diag.constraint_name or "").endswith("_user_id_users")


async def find_user_id(db: AsyncSession, subject: str) -> uuid.UUID | None:
    return (await db.exec(select(User.id).where(User.subject == subject))).first()


async def create_user(db: AsyncSession, subject: str) -> uuid.UUID:
    """Insert the user unless present; `ON CONFLICT DO NOTHING` lets two first requests race.

    Returns:
        The user's id (the racing request's, when it won).
    """
    new = User(subject=subject)
    await db.exec(
        insert(User)
        .values(id=new.id, subject=subject, created_at=new.created_at)
        .on_conflict_do_nothing(index_elements=["subject"])
    )
    return (await db.exec(select(User.id).where(User.subject == subject))).one()


async def get_or_create_user(db: AsyncSession, subject: str) -> uuid.UUID:
    """Return the id of the user with this subject, creating the row if needed."""
    return await find_user_id(db, subject) or await create_user(db, subject)


# How long a worker trusts a cached subject -> id without reading the row again. Erasure
# evicts at once in the worker that erases; other workers learn it within this bound, or at
# the first write that fails its foreign key (`forget_id`), whichever comes first.
USER_ID_CACHE_SECONDS = 30.0


class UserIdCache:
    """Subjects already stored in PostgreSQL, so most requests skip the user lookup.

    Only ids read back from the table are cached (never one inserted by the current,
    uncommitted request). Users can be erased, so an entry is trusted for at most
    `ttl_s` seconds, and is dropped at once when this worker erases the user (`forget`) or
    when a write with the id fails because the user row is gone (`forget_id`).

    Why this, not a lookup per request or a notification: checking the row on every hit
    costs what the cache saves; LISTEN/NOTIFY does not pass transaction-mode poolers, which
    the service supports. A stale id can only make reads look empty (exactly what the fresh
    account a token for an erased user gets looks like) for a bounded time; a write with it
    fails its foreign key and is answered 409 "send it again", which then resolves afresh.
    """

    def __init__(
        self,
        max_entries: int = 10_000,
        *,
        ttl_s: float = USER_ID_CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ids: OrderedDict[str, tuple[uuid.UUID, float]] = OrderedDict()
        self._max_entries = max_entries
        self._ttl_s = ttl_s
        self._clock = clock

    async def resolve(self, db: AsyncSession, subject: str) -> uuid.UUID:
        cached = self._ids.get(subject)
        if cached is not None and cached[1] > self._clock():
            self._ids.move_to_end(subject)
            return cached[0]
        existing = await find_user_id(db, subject)
        if existing is None:
            self._ids.pop(subject, None)
            return await create_user(db, subject)
        self._ids[subject] = (existing, self._clock() + self._ttl_s)
        self._ids.move_to_end(subject)
        if len(self._ids) > self._max_entries:
            self._ids.popitem(last=False)
        return existing

    def forget(self, subject: str) -> None:
        """Drop a subject (its user was just erased by this worker)."""
        self._ids.pop(subject, None)

    def forget_id(self, user_id: uuid.UUID) -> None:
        """Drop every subject cached with this id (a write found the user row gone)."""
        for subject in [s for s, (cached, _) in self._ids.items() if cached == user_id]:
            del self._ids[subject]
