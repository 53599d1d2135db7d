"""The summary at the head of memory (compaction), for the `postgres` backend.

The summary is an ordinary item in the SDK's messages table, so the stock
`SQLAlchemySession` reads it first; the session row records which item it is and what it
covers (the SQLite files keep the same record in `threadkeeper_summary`). A first summary
takes a negative id, minus the id of the item it is put before: ids are shared by every
thread, so the id just below the oldest item may be another thread's, while its negation
can be nobody else's. Its `created_at` is the oldest item's, so the stock class, which
orders by (created_at, id), reads it first too.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from app.memory.files import decode, encode
from app.memory.pg_rows import turn_starts
from app.memory.summary import MemoryHead, StoredSummary, item_text, summary_item

_SUMMARY_ROW = sa.text(
    "SELECT s.summary_item_id, s.summary_covers, s.summary_made_at, m.message_data "
    "FROM sdk_agent_sessions s JOIN sdk_agent_session_messages m "
    "ON m.id = s.summary_item_id AND m.session_id = s.session_id WHERE s.session_id = :s"
)


async def read_pg_summary(
    conn: AsyncConnection, session_id: str
) -> tuple[int, StoredSummary] | None:
    row = (await conn.execute(_SUMMARY_ROW, {"s": session_id})).first()
    if row is None:
        return None
    item_id, covers, made_at, data = row
    item: dict[str, Any] = dict(decode(data) or {})
    made: datetime = made_at
    summary = StoredSummary(text=item_text(item.get("content")), covers=int(covers), made_at=made)
    return int(item_id), summary


async def read_pg_head(conn: AsyncConnection, session_id: str) -> MemoryHead:
    found = await read_pg_summary(conn, session_id)
    skip = None if found is None else found[0]
    first_id = (
        await conn.execute(
            sa.text(
                "SELECT min(id) FROM sdk_agent_session_messages WHERE session_id = :s "
                "AND (CAST(:p AS bigint) IS NULL OR id <> :p)"
            ),
            {"s": session_id, "p": skip},
        )
    ).scalar()
    starts, first_text = 0, None
    async for _row_id, item in turn_starts(conn, session_id, newest_first=False):
        if starts == 0:
            first_text = item_text(item.get("content"))
        starts += 1
    return MemoryHead(
        summary=None if found is None else found[1],
        first_id=None if first_id is None else int(first_id),
        turn_starts=starts,
        first_turn_text=first_text,
    )


async def write_pg_summary(
    conn: AsyncConnection, session_id: str, pinned: int | None, summary: StoredSummary
) -> int:
    """Put `summary` at the head, in the caller's transaction (which locked the session):
    the summary row updated in place, or a first one put before the oldest item.

    Returns:
        The summary's row id.

    Raises:
        ValueError: memory holds no item to put a first summary before.
    """
    data = encode(summary_item(summary.text))
    params: dict[str, Any] = {"s": session_id, "d": data}
    if pinned is not None:
        updated = await conn.execute(
            sa.text(
                "UPDATE sdk_agent_session_messages SET message_data = :d "
                "WHERE id = :i AND session_id = :s RETURNING id"
            ),
            {**params, "i": pinned},
        )
        item_id = updated.scalar()
    else:
        item_id = None
    if item_id is None:
        first = (
            await conn.execute(
                sa.text(
                    "SELECT id, created_at FROM sdk_agent_session_messages WHERE session_id = :s "
                    "ORDER BY id LIMIT 1"
                ),
                params,
            )
        ).first()
        if first is None or first[0] <= 0:
            raise ValueError("no room for a summary before the oldest item of memory")
        item_id = -int(first[0])
        await conn.execute(
            sa.text(
                "INSERT INTO sdk_agent_session_messages (id, session_id, message_data, created_at) "
                "VALUES (:i, :s, :d, :at)"
            ),
            {**params, "i": item_id, "at": first[1]},
        )
    await conn.execute(
        sa.text(
            "UPDATE sdk_agent_sessions SET summary_item_id = :i, summary_covers = :c, "
            "summary_made_at = :at WHERE session_id = :s"
        ),
        {**params, "i": item_id, "c": summary.covers, "at": summary.made_at},
    )
    return int(item_id)
