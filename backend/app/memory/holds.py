"""Who holds a thread's memory in this process: one lock per thread in use.

Every backend takes it in `open()`. A turn holds it for its whole run, so another turn, or a
user's delete, is refused at once instead of waiting; others (jobs and admin actions, which
already hold the thread's lease in PostgreSQL) wait, bounded. Across processes and nodes the
thread's turn lease (a row in PostgreSQL) is the guard; this lock only orders the holders
inside one process, where the lease would let a second holder in.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Hashable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from app.memory.errors import MemoryInUseError

BUSY_MESSAGE = "A reply is already being generated in this thread; try again when it ends"


@dataclass
class _Hold:
    """The lock of one thread's memory, and who is using it."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0  # holders and waiters; the entry goes when the last one leaves
    turn_holds: bool = False


class MemoryHolds:
    """The in-process locks of the memories in use, keyed by where each memory lives."""

    def __init__(self) -> None:
        self._holds: dict[Hashable, _Hold] = {}

    @asynccontextmanager
    async def hold(
        self, key: Hashable, *, wait_s: float | None, for_turn: bool, refuse_if_turn: bool
    ) -> AsyncIterator[None]:
        """Hold `key`'s lock for the block.

        Raises:
            MemoryInUseError: a turn holds it and `refuse_if_turn`, or it stayed held past
                `wait_s`.
        """
        entry = self._holds.setdefault(key, _Hold())
        entry.users += 1
        try:
            if refuse_if_turn and entry.turn_holds:
                raise MemoryInUseError(BUSY_MESSAGE)
            try:
                async with asyncio.timeout(wait_s):
                    await entry.lock.acquire()
            except TimeoutError:
                raise MemoryInUseError(BUSY_MESSAGE) from None
            entry.turn_holds = for_turn
            try:
                yield
            finally:
                entry.turn_holds = False
                entry.lock.release()
        finally:
            entry.users -= 1
            if entry.users == 0:
                del self._holds[key]
