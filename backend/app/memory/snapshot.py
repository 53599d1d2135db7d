"""The atomic snapshot hook the SDK's session wrappers look for on a store.

`OpenAIResponsesCompactionSession` (and `EncryptedSession` around it) replace a compacted
suffix of history only through a backend's `_get_compaction_snapshot(limit, prune_prefix=)`:
a bounded read, and a replacement that commits only if that suffix is still exactly what was
read. Without it the wrapper skips automatic compaction on any partial history. The stock
`SQLiteSession` implements it; this is the same contract over our pooled file, and its one
transaction means a concurrent writer is never overwritten by a stale replacement.

`_CompactionSnapshot` is private to the SDK (pinned in requirements.txt); the contract suite
runs this hook and the stock one side by side, so a change there fails a test here.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING

from agents.items import TResponseInputItem
from agents.memory.session import _CompactionSnapshot as CompactionSnapshot

from app.memory.files import decode, encode, transaction
from app.memory.summary import tidy_summary

if TYPE_CHECKING:
    from app.memory.session import MemorySession

Row = tuple[int, str]

__all__ = ["CompactionSnapshot", "compaction_snapshot"]


async def compaction_snapshot(
    memory: MemorySession,
    limit: int,
    *,
    prune_prefix: Callable[[TResponseInputItem], bool] | None = None,
) -> CompactionSnapshot | None:
    """The newest `limit` items, whether they are all of history, and their replacement.

    Returns None when a row in the window is damaged, as the stock class does.
    """
    session_id = memory.session_id

    def read(c: sqlite3.Connection) -> tuple[list[Row], bool]:
        rows = _newest(c, session_id, limit)
        complete = (
            not rows
            or len(rows) < limit
            or not c.execute(
                "SELECT 1 FROM agent_messages WHERE session_id = ? AND id < ? LIMIT 1",
                (session_id, rows[0][0]),
            ).fetchone()
        )
        return rows, complete

    rows, complete = await memory._run(read)
    items = [decode(data) for _, data in rows]
    if any(item is None for item in items):
        return None

    async def replace_suffix(start: int, output: list[TResponseInputItem]) -> bool:
        expected = rows[start:]
        if not expected:
            return False

        def replace(c: sqlite3.Connection) -> bool:
            with transaction(c):
                if _newest(c, session_id, len(expected)) != expected:
                    return False  # changed since the snapshot: nothing is written
                if prune_prefix is not None:
                    _prune_prefix(c, session_id, expected[0][0], limit, prune_prefix)
                c.execute(
                    "DELETE FROM agent_messages WHERE session_id = ? AND id >= ?",
                    (session_id, expected[0][0]),
                )
                tidy_summary(c, session_id)
                c.executemany(
                    "INSERT INTO agent_messages (session_id, message_data) VALUES (?, ?)",
                    [(session_id, encode(item)) for item in output],
                )
                return True

        # One transaction in a worker thread; a cancellation meanwhile is raised only after
        # it committed or rolled back (`run_settled`, the SDK stores' `_await_mutation`).
        return await memory._run(replace)

    return CompactionSnapshot([i for i in items if i is not None], complete, replace_suffix)


def _newest(c: sqlite3.Connection, session_id: str, limit: int) -> list[Row]:
    rows = c.execute(
        "SELECT id, message_data FROM agent_messages WHERE session_id = ? ORDER BY id DESC LIMIT ?",
        (session_id, limit),
    ).fetchall()
    return [(int(row_id), str(data)) for row_id, data in reversed(rows)]


def _prune_prefix(
    c: sqlite3.Connection,
    session_id: str,
    before: int,
    limit: int,
    expired: Callable[[TResponseInputItem], bool],
) -> None:
    """Delete the run of oldest rows `expired` accepts (what the stock class reclaims)."""
    while True:
        prefix = c.execute(
            "SELECT id, message_data FROM agent_messages WHERE session_id = ? AND id < ? "
            "ORDER BY id LIMIT ?",
            (session_id, before, limit),
        ).fetchall()
        end = None
        for row_id, data in prefix:
            item = decode(data)
            if item is None or not expired(item):
                break
            end = row_id
        if end is None:
            return
        c.execute("DELETE FROM agent_messages WHERE session_id = ? AND id <= ?", (session_id, end))
        tidy_summary(c, session_id)
        if end != prefix[-1][0] or len(prefix) < limit:
            return
