"""`FileAccess`: running statements on one memory file, and its upkeep.

Each call's statements run as one batch in the store's worker threads (`memory.offload`):
borrowing the connection (which may open the file and close another), the statements, any
commit, and giving it back. A commit can sync a new WAL's header and a close checkpoints, so
none of it may run on the event loop that serves every stream. A lock held by another
process is waited out with `await asyncio.sleep` between attempts (bounded by the busy
timeout), never by blocking a thread or the loop.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from app.memory.errors import (
    MemoryBusyError,
    MemoryCorruptError,
    MemoryFailure,
    classify,
    unavailable,
)
from app.memory.files import decode_exact, file_bytes
from app.memory.offload import run_settled

if TYPE_CHECKING:
    from app.memory.pool import ConnectionPool, PooledConnection

_T = TypeVar("_T")


@dataclass(frozen=True)
class MemoryStats:
    items: int
    bytes: int
    last_id: int = 0  # newest row id (0 when empty)


class FileAccess:
    """One memory file, borrowed from the store's pool per statement batch.

    Each call borrows the file's connection for its statements and gives it back before
    awaiting anything, so a turn waiting on its model holds no descriptor. After the store's
    `open()` block every call raises.
    """

    def __init__(
        self,
        pool: ConnectionPool,
        session_id: str,
        path: Path,
        *,
        busy_timeout_s: float,
        executor: Executor | None = None,
    ) -> None:
        self.session_id = session_id
        self.path = path
        self._pool: ConnectionPool | None = pool
        self._busy_timeout_s = busy_timeout_s
        self._executor = executor

    async def check(self) -> None:
        """Read every row of the session once, so a damaged file is found before a turn uses it.

        Raises:
            MemoryCorruptError: rows that are not JSON, or SQLite reports the file damaged.
        """

        def _verify(pooled: PooledConnection) -> int:
            # data_version moves only when another connection commits: rows this connection
            # already verified need no second look.
            version = pooled.conn.execute("PRAGMA data_version").fetchone()[0]
            if pooled.checked_version == version:
                return 0
            suspects = pooled.conn.execute(
                "SELECT message_data FROM agent_messages WHERE session_id = ? "
                "AND NOT json_valid(message_data)",
                (self.session_id,),
            ).fetchall()
            # SQLite's JSON is strict; the stock class writes NaN and Infinity, which it and
            # we read back: only rows neither can read are damage.
            bad = sum(1 for (data,) in suspects if not isinstance(decode_exact(data), dict))
            if not bad:
                pooled.checked_version = version
            return bad

        bad = await self._run_pooled(_verify)
        if bad:
            raise MemoryCorruptError(f"{bad} memory rows are not JSON")

    async def ensure_writable(self) -> None:
        """Wait (bounded) until no other process holds the write lock, then let it go.

        Doing this before a turn commits anything turns a long foreign write into a clean 503
        instead of a turn that fails halfway.

        Raises:
            MemoryBusyError: still locked after the busy timeout.
        """

        def _probe(c: sqlite3.Connection) -> None:
            c.execute("BEGIN IMMEDIATE")
            c.execute("ROLLBACK")

        await self._run(_probe)

    async def checkpoint(self) -> None:
        """Fold the WAL into the database and truncate it, so a prune frees disk space."""
        await self._run(lambda c: c.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone())

    async def free_page_ratio(self) -> float:
        """Share of the file's pages that are free (what VACUUM would give back)."""

        def _ratio(c: sqlite3.Connection) -> float:
            pages = c.execute("PRAGMA page_count").fetchone()[0]
            free = c.execute("PRAGMA freelist_count").fetchone()[0]
            return float(free) / pages if pages else 0.0

        return await self._run(_ratio)

    async def reclaim(self, free_ratio: float) -> bool:
        """VACUUM the file when more than `free_ratio` of its pages are free."""
        if await self.free_page_ratio() <= free_ratio:
            return False
        await self.vacuum()
        return True

    async def vacuum(self) -> None:
        """Rewrite the file without free pages, then truncate the WAL."""
        await self._run(lambda c: c.execute("VACUUM"))
        await self.checkpoint()

    async def stats(self) -> MemoryStats:
        """Item count and bytes on disk (database plus WAL), for PostgreSQL bookkeeping."""

        def _stats(c: sqlite3.Connection) -> MemoryStats:
            count, last_id = c.execute(
                "SELECT count(*), coalesce(max(id), 0) FROM agent_messages WHERE session_id = ?",
                (self.session_id,),
            ).fetchone()
            return MemoryStats(items=int(count), bytes=file_bytes(self.path), last_id=int(last_id))

        return await self._run(_stats)

    def _require_open(self) -> ConnectionPool:
        if self._pool is None:
            raise RuntimeError("This memory session is closed; open it again from the store")
        return self._pool

    async def _run(self, op: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run `op` on the file's connection (see `_run_pooled`)."""
        return await self._run_pooled(lambda pooled: op(pooled.conn))

    async def _run_pooled(self, op: Callable[[PooledConnection], _T]) -> _T:
        """Run `op` in a worker thread; between attempts, wait out another process's lock."""
        pool = self._require_open()
        deadline = time.monotonic() + self._busy_timeout_s
        delay = 0.005

        def _batch() -> _T:
            pooled = pool.borrow(self.path)
            try:
                return op(pooled)
            finally:
                pool.give_back(self.path, pooled)

        while True:
            try:
                return await run_settled(self._executor, _batch)
            except (sqlite3.Error, OSError) as e:
                failure = classify(e)
                if failure is MemoryFailure.UNAVAILABLE:
                    raise unavailable(e) from e
                if failure is not MemoryFailure.BUSY:
                    raise
                if time.monotonic() >= deadline:
                    raise MemoryBusyError("The thread's memory is busy; retry shortly") from e
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.1)

    def _close(self) -> None:
        self._pool = None
