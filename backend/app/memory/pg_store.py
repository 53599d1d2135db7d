"""`PostgresMemoryStore`: every thread's memory in the service's own PostgreSQL.

Chosen with AGENT_MEMORY_BACKEND=postgres. Memory is shared by every node, so any node
continues any thread without a rebuild; it costs round trips to the database per turn instead
of local file I/O (see the README's "Memory backends").

Who may use a thread's memory at a time: within a process, the same in-process hold as the
SQLite store (`memory.holds`); across processes and nodes, the thread's turn lease in
PostgreSQL, which turns, jobs (`claimed_batches`), admin clear/rebuild (`leased`), erasure and
thread deletion all take before writing. No session-level advisory lock is held for a turn:
it would pin a pooled connection while the turn waits on its model. Each multi-statement
write locks the session's row for its transaction, so even a writer outside the lease (the
stock `SQLAlchemySession` on the same tables) never interleaves with one.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import sqlalchemy as sa
from agents.memory import SessionSettings
from sqlalchemy.ext.asyncio import AsyncEngine

from app.memory.holds import MemoryHolds
from app.memory.pg_memory import PostgresMemory
from app.memory.protocol import Memory
from app.memory.store import ErasedFiles

QUARANTINE_PREFIX = "quarantine/"


class PostgresMemoryStore:
    """Owns the `sdk_agent_*` rows: the only code that opens, removes or moves them."""

    def __init__(
        self, engine: AsyncEngine, *, session_settings: SessionSettings | None = None
    ) -> None:
        self._engine = engine
        self._session_settings = session_settings
        self._holds = MemoryHolds()

    @asynccontextmanager
    async def open(
        self,
        user_id: uuid.UUID,
        thread_id: uuid.UUID,
        *,
        wait_s: float | None = None,
        for_turn: bool = False,
        refuse_if_turn: bool = False,
    ) -> AsyncIterator[PostgresMemory]:
        """Hold a thread's memory for the block (see `memory.holds`); opening touches no row.

        Raises:
            MemoryInUseError: a turn here holds it and we may not wait, or it stayed held
                past `wait_s`.
        """
        _check_ids(user_id, thread_id)
        refuse = refuse_if_turn or for_turn
        async with self._holds.hold(
            thread_id, wait_s=wait_s, for_turn=for_turn, refuse_if_turn=refuse
        ):
            memory = PostgresMemory(
                self._engine, thread_id, session_settings=self._session_settings
            )
            try:
                yield memory
            finally:
                memory._close()

    async def exists(self, user_id: uuid.UUID, thread_id: uuid.UUID) -> bool:
        """Whether the thread has a memory session (its row, even with no items)."""
        _check_ids(user_id, thread_id)
        async with self._engine.connect() as conn:
            found = await conn.execute(
                sa.text("SELECT 1 FROM sdk_agent_sessions WHERE session_id = :s"),
                {"s": str(thread_id)},
            )
            return found.first() is not None

    async def delete(
        self, user_id: uuid.UUID, thread_id: uuid.UUID, *, wait_s: float | None = None
    ) -> bool:
        """Remove the thread's memory once no turn in this process holds it."""
        async with self.open(user_id, thread_id, wait_s=wait_s) as memory:
            return await self.remove(memory)

    async def remove(self, memory: Memory) -> bool:
        """Delete an open memory's session (its items go with it: ON DELETE CASCADE)."""
        async with self._engine.begin() as conn:
            result = await conn.execute(
                sa.text("DELETE FROM sdk_agent_sessions WHERE session_id = :s RETURNING 1"),
                {"s": _session_of(memory)},
            )
            return result.first() is not None

    async def quarantine(self, memory: Memory) -> str | None:
        """Move unusable memory aside (never delete: evidence) under a new session id; it
        stays tied to its thread, so deleting or erasing the thread removes it too.

        Returns:
            The session id it now has, or None when there was no memory.
        """
        session_id = _session_of(memory)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        target = f"{QUARANTINE_PREFIX}{session_id}/{stamp}"
        async with self._engine.begin() as conn:
            moved = await conn.execute(
                sa.text(
                    "UPDATE sdk_agent_sessions SET session_id = :q WHERE session_id = :s "
                    "RETURNING 1"
                ),
                {"q": target, "s": session_id},
            )
            return target if moved.first() is not None else None

    async def erase_user(self, user_id: uuid.UUID) -> ErasedFiles:
        """Delete every memory session of a user's threads, quarantined ones included."""
        if not isinstance(user_id, uuid.UUID):
            raise TypeError("memory is found by uuid.UUID values only")
        async with self._engine.begin() as conn:
            rows = await conn.execute(
                sa.text(
                    "DELETE FROM sdk_agent_sessions WHERE thread_id IN "
                    "(SELECT id FROM threads WHERE user_id = :u) RETURNING session_id"
                ),
                {"u": user_id},
            )
            ids = [session_id for (session_id,) in rows.all()]
        quarantined = sum(1 for s in ids if s.startswith(QUARANTINE_PREFIX))
        return ErasedFiles(memory_files=len(ids) - quarantined, quarantined_files=quarantined)

    async def iter_sessions(self) -> AsyncIterator[tuple[uuid.UUID, uuid.UUID]]:
        """Every thread's live memory session as (user id, thread id)."""
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                sa.text(
                    "SELECT t.user_id, t.id FROM sdk_agent_sessions s "
                    "JOIN threads t ON t.id = s.thread_id WHERE s.session_id = t.id::text"
                )
            )
            found = rows.all()
        for user_id, thread_id in found:
            yield user_id, thread_id

    def free_bytes(self) -> int:
        """Not measured here: PostgreSQL's disk is watched where PostgreSQL runs, so the
        free-space check before a turn (AGENT_SESSION_MIN_FREE_MB) never refuses one."""
        return sys.maxsize

    def close(self) -> None:
        """Nothing to release: the engine belongs to the lifespan, which disposes of it."""


def _check_ids(user_id: uuid.UUID, thread_id: uuid.UUID) -> None:
    if not isinstance(user_id, uuid.UUID) or not isinstance(thread_id, uuid.UUID):
        raise TypeError("memory is found by uuid.UUID values only")


def _session_of(memory: Memory) -> str:
    if not isinstance(memory, PostgresMemory):
        raise TypeError("this store only handles the memories it opened")
    return memory.session_id
