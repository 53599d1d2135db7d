"""The memory backend contract the turn code depends on.

`Memory` is the SDK's `Session` protocol plus what Threadkeeper needs to keep memory exactly
in step with the PostgreSQL log (marks and stamps, cut-back, pruning, stats). `MemoryStore`
owns where memories live and who may use one at a time. The SQLite store (`memory.store`)
and the PostgreSQL one (`memory.pg_store`) implement both, and the contract suite in
`tests/memory/` runs against each. Whatever may wait on a disk or the network is async.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from agents.items import TResponseInputItem
from agents.memory import Session

if TYPE_CHECKING:
    from app.memory.pruning import PruneResult
    from app.memory.session import MemoryMark, MemoryStats
    from app.memory.store import ErasedFiles
    from app.memory.summary import MemoryHead, StoredSummary


class Memory(Session, Protocol):
    """One thread's memory, open for the length of a block (see `MemoryStore.open`)."""

    async def read_mark(self) -> MemoryMark:
        """The generation memory was stamped with, the newest item id then, and now."""
        ...

    async def stamp(self, generation: int) -> None:
        """Record that memory now holds the saved state `generation`."""
        ...

    async def items_after(self, mark: int) -> list[TResponseInputItem]:
        """The items newer than id `mark`, oldest first."""
        ...

    async def replace_after(self, mark: int, items: list[TResponseInputItem]) -> None:
        """Drop every item newer than `mark` and append `items`, atomically."""
        ...

    async def drop_turns(self, count: int) -> bool:
        """Forget the newest `count` turns; False (nothing changed) if fewer are held."""
        ...

    async def prune(self, max_items: int, *, down_to: int | None = None) -> PruneResult:
        """Over `max_items` besides the summary at the head (which is kept), cut back to at
        most `down_to` (default `max_items`), only where a user message starts a turn."""
        ...

    async def head(self) -> MemoryHead:
        """The summary memory holds, and its oldest turns."""
        ...

    async def put_summary(self, summary: StoredSummary, *, generation: int) -> None:
        """Write the summary at the head and stamp `generation`, atomically."""
        ...

    async def rebuild(
        self, items: list[TResponseInputItem], *, summary: StoredSummary | None, generation: int
    ) -> None:
        """Replace everything with `summary` and `items`, stamped `generation`, atomically."""
        ...

    async def stats(self) -> MemoryStats:
        """Item count, bytes and newest item id, for the bookkeeping in PostgreSQL."""
        ...

    async def check(self) -> None:
        """Raise `MemoryCorruptError` when the stored items cannot be used."""
        ...

    async def ensure_writable(self) -> None:
        """Wait (bounded) until memory can be written; raise a 503 error otherwise."""
        ...

    async def checkpoint(self) -> None:
        """Give back space freed by a prune (a no-op where it does not apply)."""
        ...

    async def reclaim(self, free_ratio: float) -> bool:
        """Compact storage when more than `free_ratio` of it is free; whether it did."""
        ...


class MemoryStore(Protocol):
    """Owns every thread's memory: the only code that opens, removes or moves one."""

    def open(
        self,
        user_id: uuid.UUID,
        thread_id: uuid.UUID,
        *,
        wait_s: float | None = None,
        for_turn: bool = False,
        refuse_if_turn: bool = False,
    ) -> AbstractAsyncContextManager[Memory]:
        """Hold a thread's memory for a block; a turn holds it for its whole run."""
        ...

    async def exists(self, user_id: uuid.UUID, thread_id: uuid.UUID) -> bool:
        """Whether the thread has stored memory at all (before anything touched it)."""
        ...

    async def delete(
        self, user_id: uuid.UUID, thread_id: uuid.UUID, *, wait_s: float | None = None
    ) -> bool:
        """Remove a thread's memory; returns whether there was any."""
        ...

    async def remove(self, memory: Memory) -> bool:
        """Remove the memory of an open block (the open memory proves the lock)."""
        ...

    async def quarantine(self, memory: Memory) -> str | Path | None:
        """Move unusable memory aside for inspection; returns where it went."""
        ...

    async def erase_user(self, user_id: uuid.UUID) -> ErasedFiles:
        """Remove all of a user's memory, quarantined copies included (erasure)."""
        ...

    def iter_sessions(self) -> AsyncIterator[tuple[uuid.UUID, uuid.UUID]]:
        """Every stored memory as (user id, thread id), for the orphan sweep."""
        ...

    def free_bytes(self) -> int:
        """Free space where memory is stored."""
        ...

    def close(self) -> None:
        """Release what the store keeps open (at shutdown)."""
        ...
