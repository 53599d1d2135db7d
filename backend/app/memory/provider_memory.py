"""`ProviderMemory`: the SDK's `OpenAIConversationsSession` with our `Memory` additions.

A subclass, not a wrapper: the SDK's runner recognizes the class and sends and saves
conversation items the way the Conversations API wants (ids ignored when matching, items
sanitized). Our additions map onto the API like this:

- item positions stand in for item ids (`read_mark`, `items_after`, `replace_after`): the
  provider's ids are strings, and a position is stable while one turn holds the thread;
- the generation stamp lives in the conversation's metadata, so a conversation that missed
  writes (or gained a cut-off turn's) is rebuilt from the log like a stale memory file;
- `rebuild` makes a new conversation and moves the thread to it, then deletes the old one;
- pruning, summaries put by compaction, vacuum and integrity checks do not apply: the
  provider keeps the conversation whole (turns read only the newest AGENT_SESSION_READ_LIMIT
  items) and keeps its own storage.
"""

from __future__ import annotations

import json
import uuid
from typing import Any, cast

import openai
from agents.items import TResponseInputItem
from agents.memory import OpenAIConversationsSession, SessionSettings

from app.memory.access import MemoryStats
from app.memory.provider_binding import ConversationBinding
from app.memory.pruning import PruneResult, is_turn_start
from app.memory.session import MemoryMark
from app.memory.summary import MemoryHead, StoredSummary, summary_item

GENERATION_KEY = "threadkeeper_generation"
STAMPED_KEY = "threadkeeper_stamped"
PAGE_ITEMS = 100  # the API's largest page


def plain_item(item: dict[str, Any]) -> dict[str, Any]:
    """An item as the provider returns it, in the easy input form the log's items take:
    no id or status, and a message's single text part as its content string."""
    plain = {k: v for k, v in item.items() if k not in ("id", "status")}
    if plain.get("type", "message") != "message":
        return plain
    plain.pop("type", None)
    content = plain.get("content")
    if isinstance(content, list) and len(content) == 1 and isinstance(content[0], dict):
        part = content[0]
        if part.get("type") in ("input_text", "output_text") and not part.get("annotations"):
            plain["content"] = part.get("text", "")
    return plain


class ProviderMemory(OpenAIConversationsSession):
    """One thread's memory at the provider; only `ProviderMemoryStore.open()` makes these."""

    def __init__(
        self,
        binding: ConversationBinding,
        thread_id: uuid.UUID,
        *,
        session_settings: SessionSettings | None = None,
    ) -> None:
        super().__init__(openai_client=binding.client, session_settings=session_settings)
        self.thread_id = thread_id
        self._binding = binding

    async def _get_session_id(self) -> str:
        """The thread's conversation, bound (created once per thread) on first use."""
        async with self._session_id_lock:
            if self._session_id is None:
                self._session_id = await self._binding.bind(self.thread_id)
            return self._session_id

    async def get_items(self, limit: int | None = None) -> list[TResponseInputItem]:
        """The SDK's read, except that a thread with no conversation yet reads as empty
        instead of creating one (only writes create it)."""
        if await self._stored_id() is None:
            return []
        return await super().get_items(limit)

    async def _stored_id(self) -> str | None:
        if self._session_id is None:
            self._session_id = await self._binding.stored(self.thread_id)
        return self._session_id

    async def _all(self) -> list[dict[str, Any]]:
        """Every item, oldest first, as the provider returns them ([] before a first turn)."""
        conversation_id = await self._stored_id()
        if conversation_id is None:
            return []
        return [
            item.model_dump(exclude_unset=True)
            async for item in self._openai_client.conversations.items.list(
                conversation_id=conversation_id, order="asc", limit=PAGE_ITEMS
            )
        ]

    async def clear_session(self) -> None:
        """Delete every item but keep the conversation (the SDK deletes the conversation,
        which would leave the thread pointing at nothing)."""
        await self.replace_after(0, [])

    async def read_mark(self) -> MemoryMark:
        """The stamp from the conversation's metadata, and the item count as the newest id.

        Raises:
            ProviderConversationLostError: the provider lost it and rebinding is off.
        """
        conversation_id = await self._stored_id()
        if conversation_id is None:
            return MemoryMark(generation=None, stamped_last_id=0, last_id=0)
        metadata = await self._metadata(conversation_id)
        if metadata is None:  # lost, and forgotten: a new one is made from the log
            self._session_id = None
            return MemoryMark(generation=None, stamped_last_id=0, last_id=0)
        generation = metadata.get(GENERATION_KEY)
        return MemoryMark(
            generation=None if generation is None else int(generation),
            stamped_last_id=int(metadata.get(STAMPED_KEY) or 0),
            last_id=len(await self._all()),
        )

    async def _metadata(self, conversation_id: str) -> dict[str, str] | None:
        try:
            found = await self._openai_client.conversations.retrieve(conversation_id)
        except openai.NotFoundError:
            await self._binding.lost(self.thread_id, conversation_id)
            return None
        return dict(cast(dict[str, str], found.metadata or {}))

    async def stamp(self, generation: int) -> None:
        """Record the generation and how many items it covers in the metadata."""
        conversation_id = await self._get_session_id()
        count = len(await self._all())
        await self._openai_client.conversations.update(
            conversation_id, metadata=self._stamp_metadata(generation, count)
        )

    def _stamp_metadata(self, generation: int, count: int) -> dict[str, str]:
        return {
            "threadkeeper_thread": str(self.thread_id),
            GENERATION_KEY: str(generation),
            STAMPED_KEY: str(count),
        }

    async def items_after(self, mark: int) -> list[TResponseInputItem]:
        """The items after position `mark`, oldest first, in the easy input form."""
        return [cast(TResponseInputItem, plain_item(i)) for i in (await self._all())[mark:]]

    async def replace_after(self, mark: int, items: list[TResponseInputItem]) -> None:
        """Delete the items after position `mark` (one request each), then append `items`.

        Not atomic at the provider: a failure midway leaves a tail the next turn's
        reconciliation replaces again (it compares memory with the log first).
        """
        async with self._mutation_lock:
            conversation_id = await self._stored_id()
            if conversation_id is not None:
                for item in reversed((await self._all())[mark:]):
                    await self._openai_client.conversations.items.delete(
                        conversation_id=conversation_id, item_id=str(item["id"])
                    )
        await self.add_items(items)

    async def drop_turns(self, count: int) -> bool:
        """Forget the newest `count` turns; False (nothing changed) when fewer are held."""
        items = await self._all()
        starts = [n for n, item in enumerate(items) if is_turn_start(plain_item(item))]
        if count <= 0 or len(starts) < count:
            return False
        await self.replace_after(starts[-count], [])
        return True

    async def prune(self, max_items: int, *, down_to: int | None = None) -> PruneResult:
        """Never cuts: the provider keeps the whole conversation (turns read only the newest
        AGENT_SESSION_READ_LIMIT items), so the prune job and compaction find nothing."""
        del max_items, down_to
        return PruneResult(removed=0, kept=len(await self._all()), oversized_turn=False)

    async def head(self) -> MemoryHead:
        """No summary is ever put here (nothing is pruned), so there is none to report."""
        items = [plain_item(i) for i in await self._all()]
        starts = [i for i in items if is_turn_start(i)]
        first = starts[0].get("content") if starts else None
        return MemoryHead(
            summary=None,
            first_id=1 if items else None,
            turn_starts=len(starts),
            first_turn_text=first if isinstance(first, str) else None,
        )

    async def put_summary(self, summary: StoredSummary, *, generation: int) -> None:
        """Refused: compaction summarizes pruned turns, and this backend never prunes."""
        del summary, generation
        raise NotImplementedError(
            "AGENT_MEMORY_BACKEND=openai_conversations keeps whole conversations: "
            "compaction does not apply"
        )

    async def rebuild(
        self, items: list[TResponseInputItem], *, summary: StoredSummary | None, generation: int
    ) -> None:
        """Make a new conversation holding `summary` (if any) and `items`, stamped, move the
        thread to it, then delete the old one (best effort)."""
        data: list[Any] = list(items)
        if summary is not None:
            data.insert(0, summary_item(summary.text))
        async with self._mutation_lock:
            old = await self._stored_id()
            new = await self._binding.create(
                self.thread_id, data, self._stamp_metadata(generation, len(data))
            )
            if not await self._binding.swap(self.thread_id, old, new):
                await self._binding.discard(new)
                raise RuntimeError(f"thread {self.thread_id} was rebound while rebuilding")
            self._session_id = new
        if old is not None:
            await self._binding.discard(old)

    async def stats(self) -> MemoryStats:
        """Item count, bytes of the items' JSON, and the count again as the newest id."""
        items = await self._all()
        size = sum(len(json.dumps(i, separators=(",", ":"))) for i in items)
        return MemoryStats(items=len(items), bytes=size, last_id=len(items))

    async def check(self) -> None:
        """Nothing to check: the provider stores only items it validated."""

    async def ensure_writable(self) -> None:
        """Nothing to wait for: the provider serializes its own writes."""

    async def checkpoint(self) -> None:
        """Nothing to give back: the provider owns its storage."""

    async def reclaim(self, free_ratio: float) -> bool:
        """Never: the provider owns its storage."""
        del free_ratio
        return False
