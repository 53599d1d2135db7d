"""Which provider conversation holds a thread's memory (AGENT_MEMORY_BACKEND=openai_conversations).

The id lives on the thread row (`threads.provider_conversation_id`). It is set once: a first
turn creates a conversation, then stores its id only where none is stored yet (a conditional
UPDATE); if another node's first turn won, the loser deletes the conversation it made and
uses the winner's, so each thread has exactly one. A conversation the provider no longer
knows (404) is either given up so a new one is made from the log (FORCE_PROVIDER_SESSION_REBIND)
or the turn fails, naming that setting.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import openai
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from app.errors import ConflictError

logger = logging.getLogger(__name__)

PROVIDER = "openai"
MAX_ITEMS_PER_CREATE = 20  # the Conversations API's limit per request


class ProviderConversationLostError(ConflictError):
    """The provider no longer knows the thread's conversation and rebinding is off."""

    kind = "ProviderConversationLost"


class ConversationBinding:
    """Reads and sets `threads.provider_conversation_id`; creates conversations."""

    def __init__(self, engine: AsyncEngine, client: openai.AsyncOpenAI, *, rebind: bool) -> None:
        self._engine = engine
        self.client = client
        self.rebind = rebind

    async def stored(self, thread_id: uuid.UUID) -> str | None:
        """The thread's conversation id, or None before its first turn."""
        async with self._engine.connect() as conn:
            found = await conn.execute(
                sa.text("SELECT provider_conversation_id FROM threads WHERE id = :t"),
                {"t": thread_id},
            )
            return found.scalar()

    async def bind(self, thread_id: uuid.UUID) -> str:
        """The thread's conversation, created (once per thread, whoever races) if none yet."""
        known = await self.stored(thread_id)
        if known is not None:
            return known
        made = await self.create(thread_id, [], {})
        if await self.swap(thread_id, None, made):
            return made
        await self.discard(made)  # another first turn stored its conversation first
        winner = await self.stored(thread_id)
        if winner is None:
            raise RuntimeError(f"thread {thread_id} is gone")
        return winner

    async def create(self, thread_id: uuid.UUID, items: list[Any], metadata: dict[str, str]) -> str:
        """A new conversation holding `items` (in requests of at most 20)."""
        head, rest = items[:MAX_ITEMS_PER_CREATE], items[MAX_ITEMS_PER_CREATE:]
        made = await self.client.conversations.create(
            items=head, metadata={"threadkeeper_thread": str(thread_id), **metadata}
        )
        for start in range(0, len(rest), MAX_ITEMS_PER_CREATE):
            await self.client.conversations.items.create(
                conversation_id=made.id, items=rest[start : start + MAX_ITEMS_PER_CREATE]
            )
        return made.id

    async def swap(self, thread_id: uuid.UUID, old: str | None, new: str | None) -> bool:
        """Store `new` only if `old` is still stored; whether it was."""
        async with self._engine.begin() as conn:
            done = await conn.execute(
                sa.text(
                    "UPDATE threads SET provider_conversation_id = CAST(:new AS varchar), "
                    "provider = CAST(:p AS varchar) WHERE id = :t "
                    "AND provider_conversation_id IS NOT DISTINCT FROM CAST(:old AS varchar) "
                    "RETURNING 1"
                ),
                {"t": thread_id, "old": old, "new": new, "p": None if new is None else PROVIDER},
            )
            return done.first() is not None

    async def lost(self, thread_id: uuid.UUID, conversation_id: str) -> None:
        """The provider answered 404 for the stored conversation: forget it (a new one is
        made from the log) or refuse.

        Raises:
            ProviderConversationLostError: FORCE_PROVIDER_SESSION_REBIND is off.
        """
        if not self.rebind:
            raise ProviderConversationLostError(
                f"The provider no longer has this thread's conversation ({conversation_id}); "
                "set FORCE_PROVIDER_SESSION_REBIND=true to rebuild it from the message log"
            )
        logger.warning(
            "The provider lost conversation %s of thread %s; rebuilding it from the log",
            conversation_id,
            thread_id,
        )
        await self.swap(thread_id, conversation_id, None)

    async def discard(self, conversation_id: str) -> bool:
        """Delete a conversation at the provider, best effort (logged); whether it went."""
        try:
            await self.client.conversations.delete(conversation_id)
        except openai.NotFoundError:
            return False
        except openai.OpenAIError as e:
            logger.warning(
                "Could not delete provider conversation %s (%s); it stays at the provider",
                conversation_id,
                type(e).__name__,
            )
            return False
        return True
