"""Users are identified by their token's subject and created on first sight."""

from __future__ import annotations

import uuid
from collections import OrderedDict

from sqlalchemy.dialects.postgresql import insert
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.models import User


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


class UserIdCache:
    """Subjects already stored in PostgreSQL, so most requests skip the user lookup.

    Only ids read back from the table are cached (never one inserted by the current,
    uncommitted request), and users are never deleted, so an entry can never go stale.
    """

    def __init__(self, max_entries: int = 10_000) -> None:
        self._ids: OrderedDict[str, uuid.UUID] = OrderedDict()
        self._max_entries = max_entries

    async def resolve(self, db: AsyncSession, subject: str) -> uuid.UUID:
        cached = self._ids.get(subject)
        if cached is not None:
            self._ids.move_to_end(subject)
            return cached
        existing = await find_user_id(db, subject)
        if existing is None:
            return await create_user(db, subject)
        self._ids[subject] = existing
        if len(self._ids) > self._max_entries:
            self._ids.popitem(last=False)
        return existing
