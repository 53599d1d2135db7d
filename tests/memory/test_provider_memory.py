"""The `openai_conversations` backend's own behaviour, against the scripted model server's
Conversations API: one conversation per thread whoever binds it first, what happens when the
provider loses it (FORCE_PROVIDER_SESSION_REBIND), and the contract parts that do not apply."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db import create_engine, create_sessionmaker, session_scope
from app.memory.provider_binding import ConversationBinding, ProviderConversationLostError
from app.memory.provider_store import ProviderMemoryStore
from app.models import Thread
from app.services.users import create_user
from tests.memory.contract import summary, texts, tool_turn, user
from tests.memory.test_contract import provider_client
from tests.model_server.server import ModelServer


@pytest.fixture(scope="module")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url, pool_size=4)
    yield engine
    await engine.dispose()


@pytest.fixture
async def thread(engine: AsyncEngine) -> tuple[uuid.UUID, uuid.UUID]:
    async with session_scope(create_sessionmaker(engine)) as db:
        user_id = await create_user(db, f"provider-{uuid.uuid4()}")
        row = Thread(user_id=user_id, agent="todo")
        db.add(row)
        await db.flush()
        return user_id, row.id


def conversations(server: ModelServer) -> int:
    return len(server.state.conversations)


def store_on(engine: AsyncEngine, server: ModelServer, *, rebind: bool) -> ProviderMemoryStore:
    return ProviderMemoryStore(engine, provider_client(server), rebind=rebind)


class RacingBinding(ConversationBinding):
    """Both binders read "no conversation yet" before either stores one: the race that
    concurrent first turns on two nodes run into."""

    def __init__(self, *args: Any, barrier: asyncio.Barrier, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._barrier = barrier

    async def create(self, thread_id: uuid.UUID, items: list[Any], metadata: dict[str, str]) -> str:
        await self._barrier.wait()
        return await super().create(thread_id, items, metadata)


class TestBinding:
    async def test_concurrent_first_turns_on_two_nodes_share_one_conversation(
        self, engine, model_server, thread
    ) -> None:
        user_id, thread_id = thread
        barrier = asyncio.Barrier(2)
        stores = [store_on(engine, model_server, rebind=False) for _ in range(2)]
        for store in stores:  # each "node" binds through a binder that waits for the other
            store.binding = RacingBinding(
                engine, store.binding.client, rebind=False, barrier=barrier
            )

        async def first_turn(store: ProviderMemoryStore, text: str) -> str:
            async with store.open(user_id, thread_id) as memory:
                await memory.add_items([user(text)])
                return memory.session_id

        used = await asyncio.gather(first_turn(stores[0], "a"), first_turn(stores[1], "b"))
        creates = [
            r for r in model_server.requests if r.method == "POST" and r.path == "/v1/conversations"
        ]
        stored = await stores[0].binding.stored(thread_id)
        assert len(creates) == 2  # both made one...
        assert conversations(model_server) == 1  # ...and the loser deleted its own
        assert used == [stored, stored]
        async with stores[0].open(user_id, thread_id) as memory:
            assert sorted(texts(await memory.get_items())) == ["a", "b"]

    async def test_a_thread_is_bound_on_first_use_and_reused_after(
        self, engine, model_server, thread
    ) -> None:
        user_id, thread_id = thread
        store = store_on(engine, model_server, rebind=False)
        async with store.open(user_id, thread_id) as memory:
            assert (await memory.read_mark()).last_id == 0  # reading binds nothing
        assert conversations(model_server) == 0
        for text in ("one", "two"):
            async with store.open(user_id, thread_id) as memory:
                await memory.add_items([user(text)])
        assert conversations(model_server) == 1
        assert await store.exists(user_id, thread_id)


class TestLostConversation:
    async def lose(self, engine, model_server, thread, *, rebind: bool) -> ProviderMemoryStore:
        user_id, thread_id = thread
        store = store_on(engine, model_server, rebind=rebind)
        async with store.open(user_id, thread_id) as memory:
            await memory.add_items(tool_turn(0))
            await memory.stamp(3)
        lost = await store.binding.stored(thread_id)
        assert lost is not None
        await store.binding.client.conversations.delete(lost)  # the provider forgot it
        return store

    async def test_without_rebind_using_it_fails_naming_the_setting(
        self, engine, model_server, thread
    ) -> None:
        store = await self.lose(engine, model_server, thread, rebind=False)
        with pytest.raises(ProviderConversationLostError, match="FORCE_PROVIDER_SESSION_REBIND"):
            await store.exists(*thread)
        async with store.open(*thread) as memory:
            with pytest.raises(ProviderConversationLostError):
                await memory.read_mark()
        assert await store.binding.stored(thread[1]) is not None  # nothing was rebound

    async def test_with_rebind_a_new_conversation_is_made_from_what_is_rebuilt(
        self, engine, model_server, thread
    ) -> None:
        store = await self.lose(engine, model_server, thread, rebind=True)
        lost = await store.binding.stored(thread[1])
        assert not await store.exists(*thread)  # gone: the reconciler rebuilds it
        async with store.open(*thread) as memory:
            assert (await memory.read_mark()).generation is None
            await memory.rebuild(tool_turn(0), summary=None, generation=4)
        stored = await store.binding.stored(thread[1])
        async with store.open(*thread) as memory:
            mark = await memory.read_mark()
            items = await memory.get_items()
        assert stored not in (None, lost)
        assert conversations(model_server) == 1
        assert (mark.generation, mark.stamped_last_id, mark.last_id) == (4, 4, 4)
        assert texts(items) == texts(tool_turn(0))


class TestWhatDoesNotApply:
    async def test_prune_keeps_everything_and_summaries_are_refused(
        self, engine, model_server, thread
    ) -> None:
        store = store_on(engine, model_server, rebind=False)
        async with store.open(*thread) as memory:
            for n in range(5):
                await memory.add_items(tool_turn(n))
            result = await memory.prune(10)
            head = await memory.head()
            with pytest.raises(NotImplementedError, match="compaction does not apply"):
                await memory.put_summary(summary("s", 4), generation=2)
            assert not await memory.reclaim(0.0)
            await memory.check()
            assert await store.quarantine(memory) is None
            assert len(await memory.get_items()) == 20
        assert (result.removed, result.kept, result.oversized_turn) == (0, 20, False)
        assert (head.summary, head.turn_starts, head.first_turn_text) == (None, 5, "turn 0")

    async def test_deleting_and_erasing_delete_the_providers_conversations(
        self, engine, model_server, thread
    ) -> None:
        user_id, thread_id = thread
        store = store_on(engine, model_server, rebind=False)
        async with session_scope(create_sessionmaker(engine)) as db:
            second = Thread(user_id=user_id, agent="todo")
            db.add(second)
            await db.flush()
        for tid in (thread_id, second.id):
            async with store.open(user_id, tid) as memory:
                await memory.add_items([user("hi")])
        assert conversations(model_server) == 2
        assert await store.delete(user_id, thread_id)
        assert conversations(model_server) == 1
        erased = await store.erase_user(user_id)
        assert (erased.memory_files, conversations(model_server)) == (1, 0)
