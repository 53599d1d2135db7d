"""The statements of the `postgres` memory backend, and its turn rule over stored rows.

Rows hold the item's JSON as text (the stock `SQLAlchemySession`'s format). Whether a row
starts a turn is decided in Python (`pruning.is_turn_start` on the decoded item, the same
rule the SQLite backend applies in SQL): PostgreSQL only narrows the candidates with a
regular expression that every user message matches, so no row is cast to JSON in SQL (one
damaged row would fail the whole statement).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from app.memory.files import decode
from app.memory.pruning import is_turn_start

# Every user message's JSON has `"role": "user"` (any spacing); some others do too.
MAYBE_TURN_START = r'"role"\s*:\s*"user"'
# A row that does not even look like a JSON object is damage (see `PostgresMemory.check`).
LOOKS_LIKE_OBJECT = r"^\s*\{.*\}\s*$"
CANDIDATE_PAGE_ROWS = 64

# Memory writes commit without waiting for the WAL flush (synchronous_commit=off for their
# own transaction only; the connection's setting is untouched). Waiting was most of a write:
# one fsync, several ms, for data the log can rebuild. What it risks is small and repaired:
# every later synchronous commit (the turn saving its messages in the log) flushes the WAL
# up to it, so only memory writes newer than the last log commit can be lost, and only if
# PostgreSQL itself crashes; reconciliation finds such memory behind its stamp or the log
# and rebuilds it. A MATERIALIZED CTE that the statement reads, so it runs before the write.
NO_FLUSH_WAIT = "nosync AS MATERIALIZED (SELECT set_config('synchronous_commit', 'off', true) AS v)"
# Lock the session's row (creating it): every write of one thread's memory, by any process,
# the stock class included, runs after the previous one's commit.
LOCK_SESSION = sa.text(
    f"WITH {NO_FLUSH_WAIT} "
    "INSERT INTO sdk_agent_sessions (session_id, thread_id) SELECT :s, :t FROM nosync "
    "ON CONFLICT (session_id) DO UPDATE SET updated_at = CURRENT_TIMESTAMP, "
    "thread_id = coalesce(sdk_agent_sessions.thread_id, excluded.thread_id) "
    "RETURNING summary_item_id"
)
# One statement: the session row upserted and the items appended in order.
ADD_ITEMS = sa.text(
    f"WITH {NO_FLUSH_WAIT}, "
    "s AS (INSERT INTO sdk_agent_sessions (session_id, thread_id) VALUES (:s, :t) "
    "ON CONFLICT (session_id) DO UPDATE SET updated_at = CURRENT_TIMESTAMP) "
    "INSERT INTO sdk_agent_session_messages (session_id, message_data) "
    "SELECT :s, u.d FROM nosync, unnest(CAST(:data AS text[])) WITH ORDINALITY AS u(d, n) "
    "ORDER BY u.n"
)
INSERT_ITEMS = sa.text(
    "INSERT INTO sdk_agent_session_messages (session_id, message_data) "
    "SELECT :s, u.d FROM unnest(CAST(:data AS text[])) WITH ORDINALITY AS u(d, n) ORDER BY u.n"
)
# The newest item id (0 when empty); the summary's negative id never counts.
LAST_ID_SQL = (
    "(SELECT greatest(coalesce(max(id), 0), 0) FROM sdk_agent_session_messages "
    "WHERE session_id = :s)"
)
WRITE_MARK = sa.text(
    f"UPDATE sdk_agent_sessions SET generation = :g, stamped_last_id = {LAST_ID_SQL} "
    "WHERE session_id = :s"
)
READ_MARK = sa.text(
    f"SELECT s.generation, s.stamped_last_id, {LAST_ID_SQL} FROM (SELECT 1) AS one "
    "LEFT JOIN sdk_agent_sessions s ON s.session_id = :s"
)
# Forget the summary record when a deletion took its row.
TIDY_SUMMARY = sa.text(
    "UPDATE sdk_agent_sessions SET summary_item_id = NULL, summary_covers = NULL, "
    "summary_made_at = NULL WHERE session_id = :s AND summary_item_id IS NOT NULL "
    "AND NOT EXISTS (SELECT 1 FROM sdk_agent_session_messages m "
    "WHERE m.id = sdk_agent_sessions.summary_item_id)"
)
DROP_SUMMARY = sa.text(
    "UPDATE sdk_agent_sessions SET summary_item_id = NULL, summary_covers = NULL, "
    "summary_made_at = NULL WHERE session_id = :s"
)


async def turn_starts(
    conn: AsyncConnection, session_id: str, *, below: int | None = None, newest_first: bool
) -> AsyncIterator[tuple[int, dict[str, Any]]]:
    """The rows that start a turn, as (id, item), newest or oldest first, optionally only
    those with an id below `below`; fetched a page at a time, so a caller that stops after
    a few reads a few."""
    order, bound = ("DESC", "<") if newest_first else ("ASC", ">")
    cursor: int | None = below
    while True:
        rows = (
            await conn.execute(
                sa.text(
                    "SELECT id, message_data FROM sdk_agent_session_messages "
                    "WHERE session_id = :s AND message_data ~ :re "
                    f"AND (CAST(:c AS bigint) IS NULL OR id {bound} :c) "
                    f"ORDER BY id {order} LIMIT :n"
                ),
                {"s": session_id, "re": MAYBE_TURN_START, "c": cursor, "n": CANDIDATE_PAGE_ROWS},
            )
        ).all()
        for row_id, data in rows:
            item = decode(data)
            if item is not None and is_turn_start(dict(item)):
                yield int(row_id), dict(item)
        if len(rows) < CANDIDATE_PAGE_ROWS:
            return
        cursor = int(rows[-1][0])
