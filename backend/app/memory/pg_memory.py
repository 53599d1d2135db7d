"""`PostgresMemory`: the SDK `Session` protocol and our `Memory` additions over PostgreSQL.

One thread's memory is one session (id: the thread id as text) in `sdk_agent_sessions` /
`sdk_agent_session_messages`, readable by the stock `SQLAlchemySession`. Every call takes a
pooled connection for its statements only and gives it back before returning, so a turn
waiting on its model holds no connection. A one-statement write (the common `add_items`)
runs in autocommit: one round trip. Writes of several statements run in one transaction that
first locks the session's row (`pg_rows.LOCK_SESSION`), so any two writers, on any node,
never interleave inside one.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

import orjson
import sqlalchemy as sa
from agents.items import TResponseInputItem
from agents.memory import SessionSettings
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.memory.access import MemoryStats
from app.memory.errors import MemoryCorruptError
from app.memory.files import LONG_INTEGER, decode, decode_exact, encode
from app.memory.pg_prune import prune_session
from app.memory.pg_rows import (
    ADD_ITEMS,
    DROP_SUMMARY,
    INSERT_ITEMS,
    LAST_ID_SQL,
    LOCK_SESSION,
    LOOKS_LIKE_OBJECT,
    READ_MARK,
    TIDY_SUMMARY,
    WRITE_MARK,
    turn_starts,
)
from app.memory.pg_summary import read_pg_head, write_pg_summary
from app.memory.pruning import PruneResult
from app.memory.session import MemoryMark
from app.memory.summary import MemoryHead, StoredSummary, summary_item
from app.metrics import MEMORY_READ, MEMORY_WRITE


class PostgresMemory:
    """One thread's memory in PostgreSQL; only `PostgresMemoryStore.open()` creates these."""

    def __init__(
        self,
        engine: AsyncEngine,
        thread_id: uuid.UUID,
        *,
        session_settings: SessionSettings | None = None,
    ) -> None:
        self.thread_id = thread_id
        self.session_id = str(thread_id)
        self.session_settings: SessionSettings | None = session_settings or SessionSettings()
        self._engine: AsyncEngine | None = engine

    @property
    def _ids(self) -> dict[str, Any]:
        return {"s": self.session_id, "t": self.thread_id}

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[AsyncConnection]:
        """A connection in autocommit, for one statement (or reads that need no snapshot):
        no BEGIN and no ROLLBACK round trips around it."""
        async with self._require_open().connect() as conn:
            yield await conn.execution_options(isolation_level="AUTOCOMMIT")

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[tuple[AsyncConnection, int | None]]:
        """A transaction holding the session row's lock; yields the summary's row id."""
        async with self._require_open().begin() as conn:
            pinned = (await conn.execute(LOCK_SESSION, self._ids)).scalar()
            yield conn, None if pinned is None else int(pinned)

    def _require_open(self) -> AsyncEngine:
        if self._engine is None:
            raise RuntimeError("This memory is closed; open it again from the store")
        return self._engine

    def _close(self) -> None:
        self._engine = None

    async def get_items(self, limit: int | None = None) -> list[TResponseInputItem]:
        """The history in order; with a limit, the latest `limit` usable items (a damaged
        row is skipped and the window widened past it, like the stock class)."""
        if limit is None and self.session_settings is not None:
            limit = self.session_settings.limit
        with MEMORY_READ.time():
            window = limit
            async with self._read() as conn:
                fast = await self._read_as_array(conn, limit)
                if fast is not None:
                    return fast
                while True:
                    rows = await self._rows(conn, window)
                    items = [item for (data,) in rows if (item := decode(data)) is not None]
                    if window is None or len(items) >= window or len(rows) < window:
                        return items if limit is None else items[-limit:] if limit > 0 else []
                    window *= 2

    async def _read_as_array(
        self, conn: AsyncConnection, limit: int | None
    ) -> list[TResponseInputItem] | None:
        """The window as one JSON array built by PostgreSQL, decoded once (most of a read is
        decoding); None when a row is not plain JSON (the caller decodes row by row)."""
        window = "" if limit is None else "DESC LIMIT :n"
        count, text = (
            await conn.execute(
                sa.text(
                    "SELECT count(*), '[' || coalesce(string_agg(d, ',' ORDER BY i), '') || ']' "
                    "FROM (SELECT id AS i, message_data AS d FROM sdk_agent_session_messages "
                    f"WHERE session_id = :s ORDER BY id {window}) AS w"
                ),
                {**self._ids, "n": max(limit or 0, 0)},
            )
        ).one()
        if LONG_INTEGER.search(text):
            return None  # orjson reads integers beyond 64 bits as floats
        try:
            items = orjson.loads(text)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(items, list) or len(items) != count:
            return None
        if not all(isinstance(i, dict) for i in items):
            return None
        return cast(list[TResponseInputItem], items)

    async def _rows(self, conn: AsyncConnection, limit: int | None) -> list[Any]:
        if limit is None:
            query = "SELECT message_data FROM sdk_agent_session_messages WHERE session_id = :s "
            return list((await conn.execute(sa.text(query + "ORDER BY id"), self._ids)).all())
        rows = await conn.execute(
            sa.text(
                "SELECT message_data FROM sdk_agent_session_messages WHERE session_id = :s "
                "ORDER BY id DESC LIMIT :n"
            ),
            {**self._ids, "n": max(limit, 0)},
        )
        return list(rows.all())[::-1]

    async def add_items(self, items: list[TResponseInputItem]) -> None:
        """Append items: one statement, in autocommit (one round trip)."""
        self._require_open()
        if not items:
            return
        data = [encode(item) for item in items]
        with MEMORY_WRITE.time():
            async with self._read() as conn:
                await conn.execute(ADD_ITEMS, {**self._ids, "data": data})

    async def pop_item(self) -> TResponseInputItem | None:
        """Remove and return the newest item (damaged newest rows are dropped on the way)."""
        async with self._write() as (conn, _):
            while True:
                row = (
                    await conn.execute(
                        sa.text(
                            "DELETE FROM sdk_agent_session_messages WHERE id = (SELECT id FROM "
                            "sdk_agent_session_messages WHERE session_id = :s "
                            "ORDER BY id DESC LIMIT 1) RETURNING message_data"
                        ),
                        self._ids,
                    )
                ).first()
                if row is None:
                    await conn.execute(TIDY_SUMMARY, self._ids)
                    return None
                item = decode(row[0])
                if item is not None:
                    await conn.execute(TIDY_SUMMARY, self._ids)
                    return item

    async def clear_session(self) -> None:
        """Delete every item (the stamp stays, as in a memory file)."""
        async with self._write() as (conn, _):
            await self._delete_all(conn)

    async def _delete_all(self, conn: AsyncConnection) -> None:
        await conn.execute(
            sa.text("DELETE FROM sdk_agent_session_messages WHERE session_id = :s"), self._ids
        )
        await conn.execute(DROP_SUMMARY, self._ids)

    async def last_id(self) -> int:
        """The newest item id (0 when empty): a mark to roll a failed turn back to."""
        async with self._read() as conn:
            return int(
                (await conn.execute(sa.text(f"SELECT {LAST_ID_SQL}"), self._ids)).scalar_one()
            )

    async def items_after(self, mark: int) -> list[TResponseInputItem]:
        """The items newer than id `mark`, oldest first."""
        async with self._read() as conn:
            rows = await conn.execute(
                sa.text(
                    "SELECT message_data FROM sdk_agent_session_messages "
                    "WHERE session_id = :s AND id > :m ORDER BY id"
                ),
                {**self._ids, "m": mark},
            )
            return [item for (data,) in rows.all() if (item := decode(data)) is not None]

    async def replace_after(self, mark: int, items: list[TResponseInputItem]) -> None:
        """Drop every item newer than `mark` and append `items`, in one transaction."""
        async with self._write() as (conn, _):
            await conn.execute(
                sa.text("DELETE FROM sdk_agent_session_messages WHERE session_id = :s AND id > :m"),
                {**self._ids, "m": mark},
            )
            await conn.execute(TIDY_SUMMARY, self._ids)
            if items:
                await conn.execute(INSERT_ITEMS, {**self._ids, "data": [encode(i) for i in items]})

    async def drop_turns(self, count: int) -> bool:
        """Forget the newest `count` turns in one transaction; False (nothing changed) when
        memory holds fewer."""
        async with self._write() as (conn, _):
            start: int | None = None
            found = 0
            async for row_id, _item in turn_starts(conn, self.session_id, newest_first=True):
                found, start = found + 1, row_id
                if found == count:
                    break
            if found < count or start is None:
                return False
            await conn.execute(
                sa.text(
                    "DELETE FROM sdk_agent_session_messages WHERE session_id = :s AND id >= :i"
                ),
                {**self._ids, "i": start},
            )
            await conn.execute(TIDY_SUMMARY, self._ids)
            return True

    async def prune(self, max_items: int, *, down_to: int | None = None) -> PruneResult:
        """Over `max_items` items (the summary at the head kept, uncounted), cut back to at
        most `down_to` (default `max_items`) at a turn start, in one transaction: the same
        rule as `pruning.plan_cut`."""
        with MEMORY_WRITE.time():
            async with self._write() as (conn, pinned):
                return await prune_session(conn, self.session_id, max_items, down_to, pinned)

    async def read_mark(self) -> MemoryMark:
        """The stamp and the newest item id, in one statement."""
        async with self._read() as conn:
            generation, stamped, last = (await conn.execute(READ_MARK, self._ids)).one()
        return MemoryMark(
            generation=None if generation is None else int(generation),
            stamped_last_id=int(stamped or 0),
            last_id=int(last),
        )

    async def stamp(self, generation: int) -> None:
        """Record that memory now holds saved generation `generation`."""
        async with self._write() as (conn, _):
            await conn.execute(WRITE_MARK, {**self._ids, "g": generation})

    async def head(self) -> MemoryHead:
        """The summary memory holds, and its oldest turns (for compaction)."""
        async with self._require_open().begin() as conn:  # one snapshot for its statements
            return await read_pg_head(conn, self.session_id)

    async def put_summary(self, summary: StoredSummary, *, generation: int) -> None:
        """Write `summary` at the head and stamp `generation`, in one transaction.

        Raises:
            ValueError: memory holds no item to put it before.
        """
        with MEMORY_WRITE.time():
            async with self._write() as (conn, pinned):
                await write_pg_summary(conn, self.session_id, pinned, summary)
                await conn.execute(WRITE_MARK, {**self._ids, "g": generation})

    async def rebuild(
        self, items: list[TResponseInputItem], *, summary: StoredSummary | None, generation: int
    ) -> None:
        """Replace everything with `summary` (if any) and `items`, stamped `generation`, in
        one transaction."""
        with MEMORY_WRITE.time():
            async with self._write() as (conn, _):
                await self._delete_all(conn)
                data = [encode(i) for i in items]
                if summary is not None:
                    data.insert(0, encode(summary_item(summary.text)))
                await conn.execute(INSERT_ITEMS, {**self._ids, "data": data})
                if summary is not None:
                    await conn.execute(
                        sa.text(
                            "UPDATE sdk_agent_sessions SET summary_item_id = (SELECT min(id) "
                            "FROM sdk_agent_session_messages WHERE session_id = :s), "
                            "summary_covers = :c, summary_made_at = :at WHERE session_id = :s"
                        ),
                        {**self._ids, "c": summary.covers, "at": summary.made_at},
                    )
                await conn.execute(WRITE_MARK, {**self._ids, "g": generation})

    async def stats(self) -> MemoryStats:
        """Item count, bytes of item text and newest item id."""
        async with self._read() as conn:
            count, size, last = (
                await conn.execute(
                    sa.text(
                        "SELECT count(*), coalesce(sum(octet_length(message_data)), 0), "
                        "greatest(coalesce(max(id), 0), 0) FROM sdk_agent_session_messages "
                        "WHERE session_id = :s"
                    ),
                    self._ids,
                )
            ).one()
        return MemoryStats(items=int(count), bytes=int(size), last_id=int(last))

    async def check(self) -> None:
        """Raise `MemoryCorruptError` for rows that are not JSON objects.

        PostgreSQL keeps its pages whole, so damage here is a row some other writer stored
        that no reader can use; rows whose text does not even look like an object are
        decoded in Python to be sure.
        """
        async with self._read() as conn:
            suspects = (
                await conn.execute(
                    sa.text(
                        "SELECT message_data FROM sdk_agent_session_messages "
                        "WHERE session_id = :s AND message_data !~ :re"
                    ),
                    {**self._ids, "re": LOOKS_LIKE_OBJECT},
                )
            ).all()
        bad = sum(1 for (data,) in suspects if not isinstance(decode_exact(data), dict))
        if bad:
            raise MemoryCorruptError(f"{bad} memory rows are not JSON")

    async def ensure_writable(self) -> None:
        """Nothing to wait for: a row lock held elsewhere is waited out by the write itself,
        bounded by the server's lock timeout (DATABASE_LOCK_TIMEOUT_SECONDS)."""
        self._require_open()

    async def checkpoint(self) -> None:
        """Nothing to do: PostgreSQL's autovacuum reuses the space a prune frees."""
        self._require_open()

    async def reclaim(self, free_ratio: float) -> bool:
        """Never: autovacuum reclaims dead rows; a VACUUM FULL is the operator's call."""
        del free_ratio
        self._require_open()
        return False
