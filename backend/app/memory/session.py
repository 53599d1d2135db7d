"""`MemorySession`: the SDK `Session` protocol over one SQLite memory file."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import orjson
from agents.items import TResponseInputItem
from agents.memory import SessionSettings

from app.memory.access import FileAccess, MemoryStats
from app.memory.files import (
    LONG_INTEGER,
    READ_ALL_AS_ARRAY,
    READ_LATEST_AS_ARRAY,
    READ_MARK,
    WRITE_MARK,
    decode,
    decode_exact,
    encode,
    transaction,
)
from app.memory.pruning import PruneResult, drop_turn_rows, prune_rows
from app.memory.snapshot import CompactionSnapshot, compaction_snapshot
from app.memory.summary import (
    MemoryHead,
    StoredSummary,
    drop_summary,
    read_head,
    record_summary,
    summary_id,
    summary_item,
    tidy_summary,
    write_summary,
)
from app.metrics import MEMORY_READ, MEMORY_WRITE

if TYPE_CHECKING:
    from app.memory.pool import ConnectionPool

__all__ = ["MemoryMark", "MemorySession", "MemoryStats"]


@dataclass(frozen=True)
class MemoryMark:
    """Which saved state the file holds: the generation it was stamped with (None for a
    file never stamped), the newest item id at that stamp, and its newest item id now."""

    generation: int | None
    stamped_last_id: int
    last_id: int


class MemorySession(FileAccess):
    """The SDK `Session` protocol over one thread's memory file, plus what keeps memory in
    step with the log (marks, stamps, cut-back, pruning, the summary).

    Only `AgentMemoryStore.open()` creates these (see `FileAccess` for how they use the file).
    """

    def __init__(
        self,
        pool: ConnectionPool,
        session_id: str,
        path: Path,
        *,
        busy_timeout_s: float,
        session_settings: SessionSettings | None = None,
        executor: Executor | None = None,
    ) -> None:
        super().__init__(pool, session_id, path, busy_timeout_s=busy_timeout_s, executor=executor)
        self.session_settings: SessionSettings | None = session_settings or SessionSettings()

    async def get_items(self, limit: int | None = None) -> list[TResponseInputItem]:
        """Return the history in order; with a limit, the latest `limit` items.

        Like the stock class, a damaged row (not JSON) is skipped and, with a limit, the
        window is widened past it, so `limit` counts usable items.
        """
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
            if isinstance(items, list) and len(items) == count and LONG_INTEGER.search(text):
                items = decode_exact(text)  # orjson reads integers beyond 64 bits as floats
            if not isinstance(items, list) or len(items) != count:
                # A row orjson refused: decode row by row (exactly, or skipped if damaged).
                items = await self._read_decoded(limit)
            return cast(list[TResponseInputItem], [i for i in items if isinstance(i, dict)])

    async def _read_decoded(self, limit: int | None) -> list[TResponseInputItem]:
        """Row by row; with a positive limit, widen the window until it holds `limit` items."""
        if limit is None or limit <= 0:
            rows = await self._read_rows(limit)
            return [item for (data,) in rows if (item := decode(data)) is not None]
        window = limit
        while True:
            rows = await self._read_rows(window)
            items = [item for (data,) in rows if (item := decode(data)) is not None]
            if len(items) >= limit or len(rows) < window:
                return items[-limit:]
            window *= 2

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
        """Remove and return the newest item, or None when the history is empty.

        Like the stock class, damaged newest rows are dropped on the way to the newest
        item that can be returned.
        """

        def _pop(c: sqlite3.Connection) -> TResponseInputItem | None:
            with transaction(c):
                while True:
                    row = c.execute(
                        "DELETE FROM agent_messages WHERE id = (SELECT id FROM agent_messages "
                        "WHERE session_id = ? ORDER BY id DESC LIMIT 1) RETURNING id, message_data",
                        (self.session_id,),
                    ).fetchone()
                    if row is None:
                        return None
                    tidy_summary(c, self.session_id)
                    item = decode(row[1])
                    if item is not None:
                        return item

        return await self._run(_pop)

    async def clear_session(self) -> None:
        """Delete every item of this session."""

        def _clear(c: sqlite3.Connection) -> None:
            with transaction(c):
                c.execute("DELETE FROM agent_messages WHERE session_id = ?", (self.session_id,))
                c.execute("DELETE FROM agent_sessions WHERE session_id = ?", (self.session_id,))
                drop_summary(c, self.session_id)

        await self._run(_clear)

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
                tidy_summary(c, self.session_id)
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

    async def prune(self, max_items: int, *, down_to: int | None = None) -> PruneResult:
        """Over `max_items` items, cut the history back to at most `down_to` (default
        `max_items`), only at a turn boundary; the summary at the head is kept, uncounted.

        One SQLite transaction (see `pruning.prune_rows`): a crash leaves the old history or
        the new one, never half.
        """

        def _prune(c: sqlite3.Connection) -> PruneResult:
            with transaction(c):
                pinned = summary_id(c, self.session_id)
                return prune_rows(c, self.session_id, max_items, down_to=down_to, pinned=pinned)

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

    async def head(self) -> MemoryHead:
        """The summary memory holds, and its oldest turns (for compaction)."""
        return await self._run(lambda c: read_head(c, self.session_id))

    async def put_summary(self, summary: StoredSummary, *, generation: int) -> None:
        """Write `summary` at the head of memory and stamp `generation`, in one transaction.

        Raises:
            ValueError: nothing was pruned, so there is no head to put it at.
        """

        def _put(c: sqlite3.Connection) -> None:
            with transaction(c):
                write_summary(c, self.session_id, summary)
                c.execute(WRITE_MARK, (generation, self.session_id))

        with MEMORY_WRITE.time():
            await self._run(_put)

    async def rebuild(
        self,
        items: list[TResponseInputItem],
        *,
        summary: StoredSummary | None,
        generation: int,
    ) -> None:
        """Replace all of memory with `summary` (if any) and `items`, stamped `generation`,
        in one transaction."""
        rows = [(self.session_id, encode(item)) for item in items]

        def _rebuild(c: sqlite3.Connection) -> None:
            with transaction(c):
                c.execute("DELETE FROM agent_messages WHERE session_id = ?", (self.session_id,))
                drop_summary(c, self.session_id)
                c.execute(
                    "INSERT INTO agent_sessions (session_id) VALUES (?) "
                    "ON CONFLICT (session_id) DO NOTHING",
                    (self.session_id,),
                )
                if summary is not None:
                    (item_id,) = c.execute(
                        "INSERT INTO agent_messages (session_id, message_data) VALUES (?, ?) "
                        "RETURNING id",
                        (self.session_id, encode(summary_item(summary.text))),
                    ).fetchone()
                    record_summary(c, self.session_id, int(item_id), summary)
                c.executemany(
                    "INSERT INTO agent_messages (session_id, message_data) VALUES (?, ?)", rows
                )
                c.execute(WRITE_MARK, (generation, self.session_id))

        with MEMORY_WRITE.time():
            await self._run(_rebuild)

    async def _get_compaction_snapshot(
        self,
        limit: int,
        *,
        prune_prefix: Callable[[TResponseInputItem], bool] | None = None,
    ) -> CompactionSnapshot | None:
        """The SDK compaction wrappers' atomic snapshot hook (see `memory.snapshot`)."""
        return await compaction_snapshot(self, limit, prune_prefix=prune_prefix)
