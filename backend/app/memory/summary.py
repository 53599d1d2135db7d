"""The summary of pruned turns at the head of memory: its item, its record, its SQL.

When compaction is on, what prunes removed is folded into one item at the head of memory, a
system message that starts with `SUMMARY_PREFIX`. It is an ordinary item in the SDK's table
(the stock `SQLiteSession` reads it as the first message); our `threadkeeper_summary` table
says which row it is and how many log messages it accounts for, so later prunes update it
in place instead of stacking another one, and never remove it.

The summary row always has a smaller id than every other item, so it sits before the first
kept turn's user message: never between a tool call and its output.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from agents.items import TResponseInputItem

from app.memory.files import decode, encode
from app.memory.pruning import IS_TURN_START_SQL

SUMMARY_PREFIX = "Summary of the earlier conversation:"
SUMMARY_ROLE = "system"  # every provider's Chat Completions and Responses accept it


@dataclass(frozen=True)
class StoredSummary:
    """A summary as memory and PostgreSQL both record it."""

    text: str  # the whole item content, prefix included
    covers: int  # how many log messages, from the first, it accounts for
    made_at: datetime


@dataclass(frozen=True)
class MemoryHead:
    """What compaction needs to know about the start of memory."""

    summary: StoredSummary | None
    first_id: int | None  # the oldest item that is not the summary
    turn_starts: int  # user messages in memory (each starts a turn)
    first_turn_text: str | None  # the oldest of them, as text


def summary_item(text: str) -> TResponseInputItem:
    """The item a summary is in memory."""
    return cast(TResponseInputItem, {"role": SUMMARY_ROLE, "content": text})


def is_summary_item(item: dict[str, Any]) -> bool:
    content = item.get("content")
    return (
        item.get("role") in ("system", "developer")
        and item.get("type", "message") == "message"
        and isinstance(content, str)
        and content.startswith(SUMMARY_PREFIX)
    )


def item_text(content: Any) -> str:
    """The text of a message's content: a string, or the text parts of a list."""
    if isinstance(content, str):
        return content
    return "".join(
        part["text"]
        for part in content or []
        if isinstance(part, dict) and isinstance(part.get("text"), str)
    )


_SUMMARY_ROW = (
    "SELECT s.item_id, s.covers, s.made_at, m.message_data FROM threadkeeper_summary s "
    "JOIN agent_messages m ON m.id = s.item_id AND m.session_id = s.session_id "
    "WHERE s.session_id = ?"
)


def summary_id(c: sqlite3.Connection, session_id: str) -> int | None:
    """The row that holds the summary, or None (a record whose row is gone counts as none)."""
    row = c.execute(_SUMMARY_ROW, (session_id,)).fetchone()
    return None if row is None else int(row[0])


def read_summary(c: sqlite3.Connection, session_id: str) -> tuple[int, StoredSummary] | None:
    row = c.execute(_SUMMARY_ROW, (session_id,)).fetchone()
    if row is None:
        return None
    item_id, covers, made_at, data = row
    item: dict[str, Any] = dict(decode(data) or {})
    summary = StoredSummary(
        text=item_text(item.get("content")),
        covers=int(covers),
        made_at=datetime.fromisoformat(made_at),
    )
    return int(item_id), summary


def read_head(c: sqlite3.Connection, session_id: str) -> MemoryHead:
    found = read_summary(c, session_id)
    skip = None if found is None else found[0]
    first_id, starts = c.execute(
        f"SELECT min(id), count(*) FILTER (WHERE {IS_TURN_START_SQL}) FROM agent_messages "
        "WHERE session_id = ? AND id IS NOT ?",
        (session_id, skip),
    ).fetchone()
    first_turn = c.execute(
        f"SELECT message_data FROM agent_messages WHERE session_id = ? AND {IS_TURN_START_SQL} "
        "ORDER BY id LIMIT 1",
        (session_id,),
    ).fetchone()
    first_item = None if first_turn is None else decode(first_turn[0])
    return MemoryHead(
        summary=None if found is None else found[1],
        first_id=None if first_id is None else int(first_id),
        turn_starts=int(starts),
        first_turn_text=None if first_item is None else item_text(first_item.get("content")),
    )


def write_summary(c: sqlite3.Connection, session_id: str, summary: StoredSummary) -> int:
    """Put `summary` at the head of memory, in the caller's transaction: the summary row is
    updated in place, or a first one takes the id just below the oldest item (freed by the
    prune that removed what it summarizes).

    Returns:
        The summary's row id.

    Raises:
        ValueError: no free id below the oldest item (nothing was pruned).
    """
    data = encode(summary_item(summary.text))
    item_id = summary_id(c, session_id)
    if item_id is not None:
        c.execute("UPDATE agent_messages SET message_data = ? WHERE id = ?", (data, item_id))
    else:
        (first,) = c.execute(
            "SELECT min(id) FROM agent_messages WHERE session_id = ?", (session_id,)
        ).fetchone()
        item_id = (first or 1) - 1
        taken = c.execute("SELECT 1 FROM agent_messages WHERE id = ?", (item_id,)).fetchone()
        if item_id < 1 or taken:
            raise ValueError("no room for a summary before the oldest item of memory")
        c.execute(
            "INSERT INTO agent_sessions (session_id) VALUES (?) ON CONFLICT (session_id) DO NOTHING",
            (session_id,),
        )
        c.execute(
            "INSERT INTO agent_messages (id, session_id, message_data) VALUES (?, ?, ?)",
            (item_id, session_id, data),
        )
    record_summary(c, session_id, item_id, summary)
    return item_id


def record_summary(
    c: sqlite3.Connection, session_id: str, item_id: int, summary: StoredSummary
) -> None:
    c.execute(
        "INSERT OR REPLACE INTO threadkeeper_summary (session_id, item_id, covers, made_at) "
        "VALUES (?, ?, ?, ?)",
        (session_id, item_id, summary.covers, summary.made_at.isoformat()),
    )


def drop_summary(c: sqlite3.Connection, session_id: str) -> None:
    """Forget the summary record (its row is being deleted with everything else)."""
    c.execute("DELETE FROM threadkeeper_summary WHERE session_id = ?", (session_id,))


def tidy_summary(c: sqlite3.Connection, session_id: str) -> None:
    """Forget the summary record if a deletion took its row."""
    c.execute(
        "DELETE FROM threadkeeper_summary WHERE session_id = ? AND NOT EXISTS (SELECT 1 FROM "
        "agent_messages m WHERE m.id = threadkeeper_summary.item_id AND m.session_id = ?)",
        (session_id, session_id),
    )
