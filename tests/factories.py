"""Builders for test data that go through the real API, a few direct row edits, and the
helpers tests share to look at both stores (one place, not a copy per module)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
import sqlalchemy as sa

from app.models import Message, Thread
from app.models.base import utc_now
from tests.sse import send


async def create_thread(
    client: httpx.AsyncClient, headers: dict[str, str], title: str | None = None
) -> str:
    response = await client.post(
        "/api/threads", json={"title": title} if title else {}, headers=headers
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def thread_with_turns(client: httpx.AsyncClient, headers: dict[str, str], *texts: str) -> str:
    """A thread that has taken one turn per text (through the real agent)."""
    thread_id = await create_thread(client, headers)
    for text in texts:
        await send(client, thread_id, text, headers)
    return thread_id


async def age_thread(sessionmaker, thread_id: str | uuid.UUID, *, days: float) -> None:
    """Move a thread's last activity `days` into the past (the clock is not touched)."""
    async with sessionmaker() as db:
        await db.exec(
            sa.update(Thread)
            .where(Thread.id == uuid.UUID(str(thread_id)))
            .values(last_activity_at=utc_now() - timedelta(days=days))
        )
        await db.commit()


async def thread_row(sessionmaker, thread_id: str | uuid.UUID) -> Thread:
    async with sessionmaker() as db:
        return await db.get_one(Thread, uuid.UUID(str(thread_id)))


async def memory_items(running, headers: dict[str, str], thread_id: str) -> list[dict]:
    """Every item of a thread's memory, oldest first, read through the real store."""
    user_id = await running.user_id(headers)
    async with running.memory_store.open(user_id, uuid.UUID(thread_id)) as memory:
        return await memory.get_items(limit=1_000_000)


async def logged(
    client: httpx.AsyncClient, headers: dict[str, str], thread_id: str
) -> list[tuple[str, str]]:
    """The thread's log as the API serves it: (role, content), oldest first."""
    response = await client.get(f"/api/threads/{thread_id}/messages?limit=100", headers=headers)
    assert response.status_code == 200, response.text
    return [(m["role"], m["content"]) for m in response.json()["data"]]


async def add_messages(
    sessionmaker, thread_id: str | uuid.UUID, *texts: str, role: str = "user"
) -> list[uuid.UUID]:
    """Log rows written directly (a second apart, oldest first), as turns would have saved
    them: for tests about reading the log (search, export), not about turns."""
    start = utc_now() - timedelta(seconds=len(texts))
    rows = [
        Message(
            thread_id=uuid.UUID(str(thread_id)),
            role=role,
            content=text,
            created_at=start + timedelta(seconds=i),
        )
        for i, text in enumerate(texts)
    ]
    async with sessionmaker() as db:
        db.add_all(rows)
        await db.exec(
            sa.update(Thread)
            .where(Thread.id == uuid.UUID(str(thread_id)))
            .values(message_count=Thread.message_count + len(rows))
        )
        await db.commit()
    return [row.id for row in rows]
