"""The memory contract (`tests/memory/contract.py`) run against every backend: SQLite files,
PostgreSQL rows and provider conversations (the scripted model server's Conversations API),
each read back by the SDK's own stock class as well."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import openai
import pytest
from agents import SQLiteSession
from agents.extensions.memory import SQLAlchemySession
from agents.memory import OpenAIConversationsSession, Session
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db import SessionMaker, create_engine, create_sessionmaker, session_scope
from app.memory import AgentMemoryStore, MemoryStore
from app.memory.pg_store import PostgresMemoryStore
from app.memory.provider_memory import plain_item
from app.memory.provider_store import ProviderMemoryStore
from app.models import Thread
from app.models.agent_memory import MESSAGES_TABLE, SESSIONS_TABLE
from app.services.users import create_user
from tests.memory.contract import Backend, MemoryContract
from tests.model_server.fixtures import TEST_API_KEY
from tests.model_server.server import ModelServer


@pytest.fixture(scope="module")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url, pool_size=4)
    yield engine
    await engine.dispose()


async def _new_user(sessionmaker: SessionMaker) -> uuid.UUID:
    async with session_scope(sessionmaker) as db:
        return await create_user(db, f"contract-{uuid.uuid4()}")


async def _new_thread(sessionmaker: SessionMaker, user_id: uuid.UUID) -> uuid.UUID:
    async with session_scope(sessionmaker) as db:
        thread = Thread(user_id=user_id, agent="todo")
        db.add(thread)
        await db.flush()
        return thread.id


def _backend(
    name: str,
    store: MemoryStore,
    sessionmaker: SessionMaker,
    user_id: uuid.UUID,
    *,
    stock: Callable[[uuid.UUID, uuid.UUID], Awaitable[Session]],
    damage: Callable[[uuid.UUID, uuid.UUID], Awaitable[None]],
    **extra: Any,
) -> Backend:
    """A backend whose users and threads are real PostgreSQL rows, whatever holds the memory."""
    return Backend(
        name=name,
        store=store,
        user_id=user_id,
        new_thread=lambda u: _new_thread(sessionmaker, u),
        new_user=lambda: _new_user(sessionmaker),
        stock=stock,
        damage=damage,
        **extra,
    )


def _sqlite_backend(root: Path, sessionmaker: SessionMaker, user_id: uuid.UUID) -> Backend:
    store = AgentMemoryStore(root)

    async def stock(user_id: uuid.UUID, thread_id: uuid.UUID) -> Session:
        return SQLiteSession(str(thread_id), store.path_for(user_id, thread_id))

    async def damage(user_id: uuid.UUID, thread_id: uuid.UUID) -> None:
        with sqlite3.connect(store.path_for(user_id, thread_id)) as conn:
            conn.execute(
                "INSERT INTO agent_messages (session_id, message_data) VALUES (?, ?)",
                (str(thread_id), "{not json"),
            )
        conn.close()

    return _backend(
        "sqlite",
        store,
        sessionmaker,
        user_id,
        stock=stock,
        damage=damage,
    )


def _postgres_backend(
    engine: AsyncEngine, sessionmaker: SessionMaker, user_id: uuid.UUID
) -> Backend:
    store = PostgresMemoryStore(engine)

    async def stock(user_id: uuid.UUID, thread_id: uuid.UUID) -> Session:
        del user_id
        return SQLAlchemySession(
            str(thread_id),
            engine=engine,
            sessions_table=SESSIONS_TABLE,
            messages_table=MESSAGES_TABLE,
        )

    async def damage(user_id: uuid.UUID, thread_id: uuid.UUID) -> None:
        del user_id
        async with engine.begin() as conn:
            await conn.exec_driver_sql(
                f"INSERT INTO {MESSAGES_TABLE} (session_id, message_data) VALUES (%s, %s)",
                (str(thread_id), "{not json"),
            )

    return _backend(
        "postgres",
        store,
        sessionmaker,
        user_id,
        stock=stock,
        damage=damage,
    )


def provider_client(server: ModelServer) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=server.base_url, api_key=TEST_API_KEY, max_retries=0)


def _provider_backend(
    engine: AsyncEngine, sessionmaker: SessionMaker, user_id: uuid.UUID, server: ModelServer
) -> Backend:
    store = ProviderMemoryStore(engine, provider_client(server))

    async def stock(user_id: uuid.UUID, thread_id: uuid.UUID) -> Session:
        del user_id
        conversation_id = await store.binding.stored(thread_id)
        return OpenAIConversationsSession(
            conversation_id=conversation_id, openai_client=store.binding.client
        )

    async def damage(user_id: uuid.UUID, thread_id: uuid.UUID) -> None:
        del user_id, thread_id
        raise AssertionError("a provider conversation holds no damaged items")

    return _backend(
        "openai_conversations",
        store,
        sessionmaker,
        user_id,
        stock=stock,
        damage=damage,
        plain=plain_item,
        # The provider keeps whole conversations: no prune, no summary put by compaction,
        # no damaged rows; erasure deletes the conversations, then the thread rows go.
        features=frozenset(),
    )


class TestMemoryContract(MemoryContract):
    @pytest.fixture(params=["sqlite", "postgres", "openai_conversations"])
    async def backend(
        self, request: pytest.FixtureRequest, engine: AsyncEngine, tmp_path: Path
    ) -> Backend:
        sessionmaker = create_sessionmaker(engine)
        user_id = await _new_user(sessionmaker)
        if request.param == "sqlite":
            return _sqlite_backend(tmp_path / "sessions", sessionmaker, user_id)
        if request.param == "openai_conversations":
            server = request.getfixturevalue("model_server")
            return _provider_backend(engine, sessionmaker, user_id, server)
        return _postgres_backend(engine, sessionmaker, user_id)
