"""`ProviderMemoryStore`: every thread's memory in a provider conversation
(AGENT_MEMORY_BACKEND=openai_conversations), through the SDK's `OpenAIConversationsSession`.

The provider holds the items; PostgreSQL holds which conversation is whose
(`threads.provider_conversation_id`, see `memory.provider_binding`). Who may use a thread's
memory at a time is decided as for the other backends: the in-process hold here, the
thread's turn lease across nodes. What does not apply is explicit: quarantine moves nothing
(the provider has no damaged items to set aside) and free space is not ours to measure.
"""

from __future__ import annotations

import logging
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import openai
import sqlalchemy as sa
from agents.memory import SessionSettings
from sqlalchemy.ext.asyncio import AsyncEngine

from app.memory.holds import MemoryHolds
from app.memory.protocol import Memory
from app.memory.provider_binding import ConversationBinding
from app.memory.provider_memory import ProviderMemory
from app.memory.store import ErasedFiles

logger = logging.getLogger(__name__)


class ProviderMemoryStore:
    """Owns the threads' provider conversations: the only code that opens or deletes them."""

    def __init__(
        self,
        engine: AsyncEngine,
        client: openai.AsyncOpenAI,
        *,
        rebind: bool = False,
        session_settings: SessionSettings | None = None,
    ) -> None:
        self._engine = engine
        self.binding = ConversationBinding(engine, client, rebind=rebind)
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
    ) -> AsyncIterator[ProviderMemory]:
        """Hold a thread's memory for the block; opening calls the provider for nothing."""
        _check_ids(user_id, thread_id)
        refuse = refuse_if_turn or for_turn
        async with self._holds.hold(
            thread_id, wait_s=wait_s, for_turn=for_turn, refuse_if_turn=refuse
        ):
            yield ProviderMemory(self.binding, thread_id, session_settings=self._session_settings)

    async def exists(self, user_id: uuid.UUID, thread_id: uuid.UUID) -> bool:
        """Whether the thread is bound to a conversation the provider still has.

        Raises:
            ProviderConversationLostError: it does not, and rebinding is off.
        """
        _check_ids(user_id, thread_id)
        conversation_id = await self.binding.stored(thread_id)
        if conversation_id is None:
            return False
        try:
            await self.binding.client.conversations.retrieve(conversation_id)
        except openai.NotFoundError:
            await self.binding.lost(thread_id, conversation_id)
            return False
        return True

    async def delete(
        self, user_id: uuid.UUID, thread_id: uuid.UUID, *, wait_s: float | None = None
    ) -> bool:
        """Delete the thread's conversation once no turn in this process holds it."""
        async with self.open(user_id, thread_id, wait_s=wait_s) as memory:
            return await self.remove(memory)

    async def remove(self, memory: Memory) -> bool:
        """Unbind an open memory's conversation and delete it at the provider (best effort:
        a failure is logged and the conversation stays there, unreferenced)."""
        if not isinstance(memory, ProviderMemory):
            raise TypeError("this store only handles the memories it opened")
        conversation_id = await self.binding.stored(memory.thread_id)
        if conversation_id is None:
            return False
        await self.binding.swap(memory.thread_id, conversation_id, None)
        await self.binding.discard(conversation_id)
        return True

    async def quarantine(self, memory: Memory) -> None:
        """Nothing to move aside: provider items are never damaged (`check` never fails)."""
        del memory

    async def erase_user(self, user_id: uuid.UUID) -> ErasedFiles:
        """Delete every conversation of a user's threads at the provider (best effort,
        logged). The ids are only read: erasure deletes the thread rows that hold them, in
        its own transaction, which already locks them."""
        if not isinstance(user_id, uuid.UUID):
            raise TypeError("memory is found by uuid.UUID values only")
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                sa.text(
                    "SELECT provider_conversation_id FROM threads "
                    "WHERE user_id = :u AND provider_conversation_id IS NOT NULL"
                ),
                {"u": user_id},
            )
            ids = [conversation_id for (conversation_id,) in rows.all()]
        for conversation_id in ids:
            await self.binding.discard(conversation_id)
        return ErasedFiles(memory_files=len(ids), quarantined_files=0)

    async def iter_sessions(self) -> AsyncIterator[tuple[uuid.UUID, uuid.UUID]]:
        """Every bound thread as (user id, thread id): each conversation belongs to a thread
        row, so the orphan sweep finds none that outlived its thread."""
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                sa.text(
                    "SELECT user_id, id FROM threads WHERE provider_conversation_id IS NOT NULL"
                )
            )
            found = rows.all()
        for user_id, thread_id in found:
            yield user_id, thread_id

    def free_bytes(self) -> int:
        """Not ours to measure: the provider stores the items."""
        return sys.maxsize

    def close(self) -> None:
        """Nothing to release: the client and engine belong to the lifespan."""


def _check_ids(user_id: uuid.UUID, thread_id: uuid.UUID) -> None:
    if not isinstance(user_id, uuid.UUID) or not isinstance(thread_id, uuid.UUID):
        raise TypeError("memory is found by uuid.UUID values only")
