"""`MemorySession`: the SDK `Session` protocol over one SQLite memory file.

Statements run on the event loop instead of hopping to a worker thread per call: they touch
one small local file and take microseconds. A lock held by another process is waited out with
`await asyncio.sleep` (bounded by the busy timeout), never by blocking the loop.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import orjson
from agents.items import TResponseInputItem
from agents.memory import SessionSettings

from app.memory.errors import (
    MemoryBusyError,
    MemoryCorruptError,
    MemoryFailure,
    classify,
    unavailable,
)
from app.memory.files import (
    READ_ALL_AS_ARRAY,
    READ_LATEST_AS_ARRAY,
    READ_MARK,
    WRITE_MARK,
    decode,
    encode,
    file_bytes,
    transaction,
)
from app.memory.pruning import PruneResult, drop_turn_rows, prune_rows
from app.metrics import MEMORY_READ, MEMORY_WRITE

if TYPE_CHECKING:
    from app.memory.pool import ConnectionPool, PooledConnection

_T = TypeVar("_T")


@dataclass(frozen=True)
class MemoryMark:
    """Which saved state the file holds: the generation it was stamped with (None for a
    file never stamped), the newest item id at that stamp, and its newest item id now."""

    generation: int | None
    stamped_last_id: int
    last_id: int


@dataclass(frozen=True)
class MemoryStats:
    items: int
    bytes: int
    last_id: int = 0  # newest row id (0 when empty)


class MemorySession:
    """The SDK `Session` protocol over one thread's memory file.

    Only `AgentMemoryStore.open()` creates these. Each call borrows the file's connection
    from the store's pool for its statements and gives it back before awaiting anything, so
    a turn waiting on its model holds no descriptor. After the `open()` block every call
    raises.
    """

    def __init__(
        self,
        pool: ConnectionPool,
        session_id: str,
        path: Path,
        *,
        busy_timeout_s: float,
        session_settings: SessionSettings | None = None,
    ) -> None:
        self.session_id = session_id
        self.session_settings: SessionSettings | None = session_settings or SessionSettings()
        self.path = path
        self._pool: ConnectionPool | None = pool
        self._busy_timeout_s = busy_timeout_s

    async def get_items(self, limit: int | None = None) -> list[TResponseInputItem]:
        """Return the history in order; with a limit, the latest `limit` items."""
        if limit is None and self.session_settings is not None:
            limit = self.session_settings.limit
        with MEMORY_READ.time():
            # One string and one decode for the whole window: most of a read's time is JSON
            # decoding, and orjson on one array beats json.loads per row by about 2x.
            if limit is None:
                count, text = await self._run(
                    lambda c: c.execute(READ_ALL_AS_ARRAY, (self.session_id,)).fetchone()
                )
            else:
                count, text = await self._run(
                    lambda c: c.execute(READ_LATEST_AS_ARRAY, (self.session_id, limit)).fetchone()
                )
            try:
                items = orjson.loads(text)
            except orjson.JSONDecodeError:
                items = None
            if not isinstance(items, list) or len(items) != count:
                # A damaged row: decode row by row and skip it, as the SDK does.
                rows = await self._read_rows(limit)
                items = [decode(data) for (data,) in rows]
            return cast(list[TResponseInputItem], [i for i in items if isinstance(i, dict)])

    async def _read_rows(self, limit: int | None) -> list[Any]:
        if limit is None:
            rows = await self._run(
                lambda c: c.execute(
                    "SELECT message_data FROM agent_messages WHERE session_id = ? ORDER BY id",
                    (self.session_id,),
                ).fetchall()
            )
        else:
            rows = await self._run(
                lambda c: c.execute(
                    "SELECT message_data FROM agent_messages WHERE session_id = ? "
                    "ORDER BY id DESC LIMIT ?",
                    (self.session_id, limit),
                ).fetchall()[::-1]
            )
        return list(rows)

    async def add_items(self, items: list[TResponseInputItem]) -> None:
        """Append items in one transaction."""
        if not items:
            self._require_open()
            return
        rows = [(self.session_id, encode(item)) for item in items]

        def _add(c: sqlite3.Connection) -> None:
            with transaction(c):
                c.execute(
                    "INSERT INTO agent_sessions (session_id) VALUES (?) "
                    "ON CONFLICT (session_id) DO UPDATE SET updated_at = CURRENT_TIMESTAMP",
                    (self.session_id,),
                )
                c.executemany(
                    "INSERT INTO agent_messages (session_id, message_data) VALUES (?, ?)", rows
                )

        with MEMORY_WRITE.time():
            await self._run(_add)

    async def pop_item(self) -> TResponseInputItem | None:
        """Remove and return the newest item, or None when the history is empty."""

        def _pop(c: sqlite3.Connection) -> str | None:
            with transaction(c):
                row = c.execute(
                    "DELETE FROM agent_messages WHERE id = (SELECT id FROM agent_messages "
                    "WHERE session_id = ? ORDER BY id DESC LIMIT 1) RETURNING message_data",
                    (self.session_id,),
                ).fetchone()
            return None if row is None else str(row[0])

        data = await self._run(_pop)
        return None if data is None else decode(data)

    async def clear_session(self) -> None:
        """Delete every item of this session."""

        def _clear(c: sqlite3.Connection) -> None:
            with transaction(c):
                c.execute("DELETE FROM agent_messages WHERE session_id = ?", (self.session_id,))
                c.execute("DELETE FROM agent_sessions WHERE session_id = ?", (self.session_id,))

        await self._run(_clear)

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
            (bad,) = pooled.conn.execute(
                "SELECT count(*) FROM agent_messages WHERE session_id = ? "
                "AND NOT json_valid(message_data)",
                (self.session_id,),
            ).fetchone()
            if not bad:
                pooled.checked_version = version
            return int(bad)

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

    async def last_item(self) -> TResponseInputItem | None:
        items = await self.get_items(limit=1)
        return items[-1] if items else None

    async def last_id(self) -> int:
        """Position of the newest item (0 when empty): a mark to roll a failed turn back to."""
        (last,) = await self._run(
            lambda c: c.execute(
                "SELECT coalesce(max(id), 0) FROM agent_messages WHERE session_id = ?",
                (self.session_id,),
            ).fetchone()
        )
        return int(last)

    async def replace_after(self, mark: int, items: list[TResponseInputItem]) -> None:
        """Drop every item newer than `mark` and append `items`, in one transaction.

        A turn that fails or is cut off is rolled back this way to "history + the user's
        message", the same point PostgreSQL's log is at.
        """
        rows = [(self.session_id, encode(item)) for item in items]

        def _replace(c: sqlite3.Connection) -> None:
            with transaction(c):
                c.execute(
                    "DELETE FROM agent_messages WHERE session_id = ? AND id > ?",
                    (self.session_id, mark),
                )
                if rows:
                    c.execute(
                        "INSERT INTO agent_sessions (session_id) VALUES (?) "
                        "ON CONFLICT (session_id) DO NOTHING",
                        (self.session_id,),
                    )
                    c.executemany(
                        "INSERT INTO agent_messages (session_id, message_data) VALUES (?, ?)", rows
                    )

        await self._run(_replace)

    async def prune(self, max_items: int) -> PruneResult:
        """Cut the history back to at most `max_items` items, only at a turn boundary.

        One SQLite transaction (see `pruning.prune_rows`): a crash leaves the old history or
        the new one, never half.
        """

        def _prune(c: sqlite3.Connection) -> PruneResult:
            with transaction(c):
                return prune_rows(c, self.session_id, max_items)

        with MEMORY_WRITE.time():
            return await self._run(_prune)

    async def drop_turns(self, count: int) -> bool:
        """Forget the newest `count` turns in one transaction (a retry rewinds memory).

        Returns:
            False, changing nothing, when memory holds fewer turns (they were pruned).
        """

        def _drop(c: sqlite3.Connection) -> bool:
            with transaction(c):
                return drop_turn_rows(c, self.session_id, count)

        with MEMORY_WRITE.time():
            return await self._run(_drop)

    async def read_mark(self) -> MemoryMark:
        """The file's stamp and newest item id, in one statement."""
        generation, stamped, last = await self._run(
            lambda c: c.execute(READ_MARK, (self.session_id,)).fetchone()
        )
        return MemoryMark(
            generation=None if generation is None else int(generation),
            stamped_last_id=int(stamped or 0),
            last_id=int(last),
        )

    async def stamp(self, generation: int) -> None:
        """Record that the file now holds saved generation `generation` (PostgreSQL's count).

        The stamp lives in the file itself, so a file that loses recent writes (a deleted
        WAL, an older copy restored) loses its newer stamp too, and is found to be behind.
        """

        def _stamp(c: sqlite3.Connection) -> None:
            with transaction(c):
                c.execute(WRITE_MARK, (generation, self.session_id))

        await self._run(_stamp)

    async def items_after(self, mark: int) -> list[TResponseInputItem]:
        """The items newer than id `mark`, oldest first (what a turn added since a stamp)."""
        rows = await self._run(
            lambda c: c.execute(
                "SELECT message_data FROM agent_messages WHERE session_id = ? AND id > ? "
                "ORDER BY id",
                (self.session_id, mark),
            ).fetchall()
        )
        return [item for (data,) in rows if (item := decode(data)) is not None]

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
        count, last_id = await self._run(
            lambda c: c.execute(
                "SELECT count(*), coalesce(max(id), 0) FROM agent_messages WHERE session_id = ?",
                (self.session_id,),
            ).fetchone()
        )
        return MemoryStats(items=int(count), bytes=file_bytes(self.path), last_id=int(last_id))

    def _require_open(self) -> ConnectionPool:
        if self._pool is None:
            raise RuntimeError("This memory session is closed; open it again from the store")
        return self._pool

    async def _run(self, op: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run `op` on the file's connection (see `_run_pooled`)."""
        return await self._run_pooled(lambda pooled: op(pooled.conn))

    async def _run_pooled(self, op: Callable[[PooledConnection], _T]) -> _T:
        """Run `op`, yielding the event loop while another process holds the write lock."""
        pool = self._require_open()
        deadline = time.monotonic() + self._busy_timeout_s
        delay = 0.005
        while True:
            try:
                pooled = pool.borrow(self.path)
                try:
                    return op(pooled)
                finally:
                    pool.give_back(self.path, pooled)
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
