"""Reading both stores back after (or between) server runs, and the invariants between them.

PostgreSQL is read with plain psycopg; memory files are opened read-only with sqlite3 in the
SDK's schema (`agent_messages(session_id, message_data)`), so a drill never repairs or locks
what it inspects.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

from tests.drills.harness import libpq_url


class Log:
    """Read-only queries on a drill database (the server writes; the drill only looks)."""

    def __init__(self, database_url: str) -> None:
        self._conninfo = libpq_url(database_url)

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        with psycopg.connect(self._conninfo, row_factory=dict_row, connect_timeout=5) as conn:
            return list(conn.execute(sql, params).fetchall())  # type: ignore[arg-type]

    def user_id(self, subject: str) -> uuid.UUID:
        (row,) = self._query("SELECT id FROM users WHERE subject = %s", (subject,))
        return uuid.UUID(str(row["id"]))

    def messages(self, thread_id: str) -> list[dict[str, Any]]:
        """A thread's log, oldest first, as the API orders it."""
        return self._query(
            "SELECT id, role, content, metadata FROM messages WHERE thread_id = %s "
            "ORDER BY created_at, id",
            (thread_id,),
        )

    def user_texts(self, thread_id: str) -> list[str]:
        return [str(m["content"]) for m in self.messages(thread_id) if m["role"] == "user"]

    def thread(self, thread_id: str) -> dict[str, Any]:
        (row,) = self._query(
            "SELECT id, user_id, message_count, memory_state, memory_item_count, "
            "active_turn_id, active_turn_expires_at, "
            "extract(epoch FROM active_turn_expires_at - now()) AS lease_seconds_left "
            "FROM threads WHERE id = %s",
            (thread_id,),
        )
        return row

    def memory_items(self, thread_id: str) -> list[Any]:
        """A thread's memory in the `postgres` backend (`sdk_agent_session_messages`, the
        session id is the thread id), decoded as `read_memory` decodes a file's rows."""
        rows = self._query(
            "SELECT message_data FROM sdk_agent_session_messages WHERE session_id = %s ORDER BY id",
            (str(thread_id),),
        )
        return _decoded(row["message_data"] for row in rows)

    def existing_message_ids(self, ids: Iterable[str]) -> set[str]:
        wanted = [uuid.UUID(i) for i in ids]
        if not wanted:
            return set()
        rows = self._query("SELECT id FROM messages WHERE id = ANY(%s)", (wanted,))
        return {str(r["id"]) for r in rows}


def memory_path(session_dir: Path, user_id: uuid.UUID, thread_id: str) -> Path:
    return session_dir / str(user_id) / f"{thread_id}.db"


def read_memory(path: Path) -> list[Any]:
    """Every item of a memory file in order (a row that is not JSON comes back as a str).

    A file without the schema holds no items: a server killed between creating the file and
    creating its tables leaves exactly that, and the next turn completes it.
    """
    conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT message_data FROM agent_messages ORDER BY id").fetchall()
    except sqlite3.OperationalError as e:
        if "no such table" not in str(e):
            raise
        rows = []
    finally:
        conn.close()
    return _decoded(data for (data,) in rows)


def _decoded(rows: Iterable[Any]) -> list[Any]:
    """Each row's JSON (a row that is not JSON comes back as a str)."""
    items: list[Any] = []
    for data in rows:
        try:
            items.append(json.loads(data))
        except (TypeError, ValueError):
            items.append(str(data))
    return items


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(str(part.get("text", "")) for part in content or [] if isinstance(part, dict))


def user_items(items: list[Any]) -> list[str]:
    """The user messages in memory, in order (what starts each remembered turn)."""
    return [
        _text(item.get("content"))
        for item in items
        if isinstance(item, dict)
        and item.get("role") == "user"
        and item.get("type", "message") == "message"
    ]


def is_subsequence(needles: Sequence[str], haystack: Sequence[str]) -> bool:
    """Whether `needles` occur in `haystack` in the same order (gaps allowed)."""
    remaining = iter(haystack)
    return all(any(n == h for h in remaining) for n in needles)


@dataclass(frozen=True)
class ThreadRef:
    """A thread a drill created, with what is needed to find both of its stores."""

    thread_id: str
    subject: str
    headers: dict[str, str]


def memory_violations(
    log: Log, session_dir: Path, threads: Iterable[ThreadRef], *, exact: bool = False
) -> list[str]:
    """Memory turns PostgreSQL lacks: user items that are not, in order, user messages of the log.

    With `exact`, memory's user items must equal the log's user messages (no gap at all).
    """
    problems = []
    user_ids: dict[str, uuid.UUID] = {}
    for ref in threads:
        if ref.subject not in user_ids:
            user_ids[ref.subject] = log.user_id(ref.subject)
        path = memory_path(session_dir, user_ids[ref.subject], ref.thread_id)
        if not path.exists():
            continue
        in_memory = user_items(read_memory(path))
        in_log = log.user_texts(ref.thread_id)
        ok = in_memory == in_log if exact else is_subsequence(in_memory, in_log)
        if not ok:
            problems.append(
                f"thread {ref.thread_id}: memory user items {in_memory} vs log {in_log}"
            )
    return problems


def phantom_turns(
    log: Log, session_dir: Path, refs: list[ThreadRef], unconfirmed: set[str]
) -> list[str]:
    """Texts the server refused (no user_message event) and PostgreSQL lacks, found in memory."""
    problems = []
    for ref in refs:
        path = memory_path(session_dir, log.user_id(ref.subject), ref.thread_id)
        logged = set(log.user_texts(ref.thread_id))
        in_memory = set(user_items(read_memory(path))) if path.exists() else set()
        phantoms = (in_memory & unconfirmed) - logged
        if phantoms:
            problems.append(f"thread {ref.thread_id}: memory has unrecorded turns {phantoms}")
    return problems
