"""The memory designs under test, behind one small interface.

A, B and C are built from the installed SDK exactly as its documentation shows: one session
object per conversation, created on first use and reused for the life of the process (the SDK
sessions own their connections and are meant to be long-lived; this is also their fastest
use). T is our store used the way the service uses it: `store.open()` once per turn, closed at
the end of the turn, so T pays its open and close inside every measured turn. P is our
`postgres` backend (AGENT_MEMORY_BACKEND=postgres) used the same way, on the same server as C.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

from agents import SQLiteSession
from agents.memory import Session, SessionSettings

from app.memory import AgentMemoryStore

Conv = tuple[uuid.UUID, uuid.UUID]  # (user_id, conversation_id)

SYSTEM_NAMES = ("A", "B", "C", "T", "P")
DESCRIPTIONS = {
    "A": "SDK SQLiteSession, one shared file, session_id per conversation",
    "B": "SDK SQLiteSession, one file per conversation",
    "C": "SDK SQLAlchemySession on PostgreSQL (postgresql+psycopg), one shared async engine",
    "T": "AgentMemoryStore: one file per conversation, opened per turn (pooled connections)",
    "P": "PostgresMemoryStore (AGENT_MEMORY_BACKEND=postgres), opened per turn, same server as C",
}


class MemorySystem:
    """One design: `turn(conv)` yields the SDK Session a turn uses."""

    name = "?"

    async def setup(self) -> None:
        """Create what every conversation shares (engine, tables); called once."""

    def turn(self, conv: Conv) -> AbstractAsyncContextManager[Session]:
        raise NotImplementedError

    async def aclose(self) -> None:
        """Release every connection, so descriptors return to the process baseline."""


class _CachedSessions(MemorySystem):
    """A session object per conversation, created on first use and then reused."""

    def __init__(self, settings: SessionSettings | None) -> None:
        self.settings = settings
        self.sessions: dict[uuid.UUID, Any] = {}

    def _make(self, conv: Conv) -> Any:
        raise NotImplementedError

    @asynccontextmanager
    async def turn(self, conv: Conv) -> AsyncIterator[Session]:
        session = self.sessions.get(conv[1])
        if session is None:
            session = self.sessions[conv[1]] = self._make(conv)
        yield session


class SharedFileSystem(_CachedSessions):
    """A: the SDK tutorial's design, every conversation in one `conversations.db`."""

    name = "A"

    def __init__(self, root: Path, settings: SessionSettings | None = None) -> None:
        super().__init__(settings)
        self.path = root / "conversations.db"
        root.mkdir(parents=True, exist_ok=True)

    def _make(self, conv: Conv) -> Any:
        return SQLiteSession(str(conv[1]), self.path, session_settings=self.settings)

    async def aclose(self) -> None:
        for session in self.sessions.values():
            session.close()
        self.sessions.clear()


class FilePerConversationSystem(SharedFileSystem):
    """B: the SDK's SQLiteSession with one file per conversation (our layout, stock class)."""

    name = "B"

    def _make(self, conv: Conv) -> Any:
        path = self.path.parent / str(conv[0]) / f"{conv[1]}.db"
        path.parent.mkdir(parents=True, exist_ok=True)
        return SQLiteSession(str(conv[1]), path, session_settings=self.settings)


class SQLAlchemySystem(_CachedSessions):
    """C: the SDK's SQLAlchemySession on PostgreSQL, one engine, tables created once."""

    name = "C"

    def __init__(self, url: str, settings: SessionSettings | None = None) -> None:
        super().__init__(settings)
        self.url = url
        self.engine: Any = None

    async def setup(self) -> None:
        from agents.extensions.memory.sqlalchemy_session import SQLAlchemySession
        from sqlalchemy.ext.asyncio import create_async_engine

        self.engine = create_async_engine(self.url)
        # create_tables=True on one session creates the tables; the others skip the check.
        await SQLAlchemySession("bench-init", engine=self.engine, create_tables=True).get_items()

    def _make(self, conv: Conv) -> Any:
        from agents.extensions.memory.sqlalchemy_session import SQLAlchemySession

        return SQLAlchemySession(str(conv[1]), engine=self.engine, session_settings=self.settings)

    async def aclose(self) -> None:
        self.sessions.clear()
        if self.engine is not None:
            await self.engine.dispose()
            self.engine = None


class StoreSystem(MemorySystem):
    """T: `AgentMemoryStore.open()` per turn, exactly as the service's TurnRunner does."""

    name = "T"

    def __init__(self, root: Path, settings: SessionSettings | None = None) -> None:
        self.store = AgentMemoryStore(root, session_settings=settings)

    def turn(self, conv: Conv) -> AbstractAsyncContextManager[Session]:
        return self.store.open(conv[0], conv[1])


class PostgresStoreSystem(MemorySystem):
    """P: `PostgresMemoryStore.open()` per turn on the app's own engine, as the service uses
    it; each conversation is a thread row (memory rows reference their thread), created when
    the conversation is first used (the workloads fill every conversation before timing)."""

    name = "P"

    def __init__(self, url: str, settings: SessionSettings | None = None) -> None:
        self.url, self.settings = url, settings
        self.engine: Any = None
        self.store: Any = None
        self.threads: set[uuid.UUID] = set()

    async def setup(self) -> None:
        from app.db import create_engine
        from app.memory.pg_store import PostgresMemoryStore

        self.engine = create_engine(self.url)
        self.store = PostgresMemoryStore(self.engine, session_settings=self.settings)

    @asynccontextmanager
    async def turn(self, conv: Conv) -> AsyncIterator[Session]:
        if conv[1] not in self.threads:
            await self._create_thread(conv)
        async with self.store.open(conv[0], conv[1]) as memory:
            yield memory

    async def _create_thread(self, conv: Conv) -> None:
        from app.db import create_sessionmaker, session_scope
        from app.models import Thread, User

        async with session_scope(create_sessionmaker(self.engine)) as db:
            db.add(User(id=conv[0], subject=f"bench-{conv[0]}"))
            await db.flush()
            db.add(Thread(id=conv[1], user_id=conv[0], agent="todo"))
        self.threads.add(conv[1])

    async def aclose(self) -> None:
        if self.engine is not None:
            await self.engine.dispose()
            self.engine = None


def build(
    name: str, root: Path, database_url: str | None, settings: SessionSettings | None = None
) -> MemorySystem:
    """The system called `name`, storing under `root/<name>` (C: in `database_url`)."""
    if name == "A":
        return SharedFileSystem(root / "A", settings)
    if name == "B":
        return FilePerConversationSystem(root / "B", settings)
    if name == "C":
        if not database_url:
            raise RuntimeError("C needs a PostgreSQL database")
        return SQLAlchemySystem(database_url, settings)
    if name == "T":
        return StoreSystem(root / "T", settings)
    if name == "P":
        if not database_url:
            raise RuntimeError("P needs a PostgreSQL database")
        return PostgresStoreSystem(database_url, settings)
    raise ValueError(f"unknown system {name!r}")


def new_conv() -> Conv:
    return uuid.uuid4(), uuid.uuid4()


async def run_turn(
    system: MemorySystem, conv: Conv, batches: list[list[dict[str, Any]]], *, pause: bool = False
) -> int:
    """One turn's memory traffic as the SDK runner makes it; returns the items written.

    The runner reads the history once (`get_items()`, the window set by SessionSettings), then
    calls `add_items` for the user input and once per model step. With `pause`, the turn
    yields to the event loop where the model would be called, as a real turn does, so
    concurrent turns really overlap (and hold their memory open meanwhile).
    """
    written = 0
    async with system.turn(conv) as session:
        await session.get_items()
        for batch in batches:
            if pause:
                await asyncio.sleep(0)
            await session.add_items(batch)  # type: ignore[arg-type]
            written += len(batch)
    return written
