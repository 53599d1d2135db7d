"""SQLite specifics of memory files: the SDK's schema, pragmas, statements and encoding.

Everything here is about the file format, so that `MemorySession` reads as the Session
protocol and `AgentMemoryStore` as file ownership.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import suppress
from pathlib import Path
from typing import Any, cast

import orjson
from agents.items import TResponseInputItem

DIR_MODE = 0o700
FILE_MODE = 0o600
SIDECAR_SUFFIXES = ("", "-wal", "-shm", "-journal")

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS agent_sessions (
        session_id TEXT PRIMARY KEY,
        created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
        updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
    )""",
    """CREATE TABLE IF NOT EXISTS agent_messages (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        session_id TEXT NOT NULL,
        message_data TEXT NOT NULL,
        created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
        FOREIGN KEY (session_id) REFERENCES agent_sessions (session_id) ON DELETE CASCADE
    )""",
    """CREATE INDEX IF NOT EXISTS idx_agent_messages_session_id
        ON agent_messages (session_id, id)""",
    # Ours, beside the SDK's tables (the stock SQLiteSession ignores it): the memory
    # generation this file was last stamped with, and its newest item id at that moment.
    """CREATE TABLE IF NOT EXISTS threadkeeper_memory (
        key TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    )""",
)
SCHEMA_TABLES = ("agent_sessions", "agent_messages", "threadkeeper_memory")

READ_MARK = (
    "SELECT (SELECT value FROM threadkeeper_memory WHERE key = 'generation'), "
    "(SELECT value FROM threadkeeper_memory WHERE key = 'last_id'), "
    "(SELECT coalesce(max(id), 0) FROM agent_messages WHERE session_id = ?)"
)
WRITE_MARK = (
    "INSERT OR REPLACE INTO threadkeeper_memory (key, value) VALUES ('generation', ?), "
    "('last_id', (SELECT coalesce(max(id), 0) FROM agent_messages WHERE session_id = ?))"
)


READ_ALL_AS_ARRAY = (
    "SELECT count(*), '[' || coalesce(group_concat(message_data, ','), '') || ']' FROM "
    "(SELECT message_data FROM agent_messages WHERE session_id = ? ORDER BY id)"
)
READ_LATEST_AS_ARRAY = (
    "SELECT count(*), '[' || coalesce(group_concat(message_data, ','), '') || ']' FROM "
    "(SELECT id, message_data FROM (SELECT id, message_data FROM agent_messages "
    "WHERE session_id = ? ORDER BY id DESC LIMIT ?) ORDER BY id)"
)


def configure_connection(conn: sqlite3.Connection) -> None:
    """WAL, NORMAL sync, and the SDK schema (created only when missing)."""
    if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    tables = conn.execute(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' "
        f"AND name IN ({', '.join('?' * len(SCHEMA_TABLES))})",
        SCHEMA_TABLES,
    ).fetchone()[0]
    if tables < len(SCHEMA_TABLES):  # only a new (or older) file takes the write lock
        with transaction(conn):
            for statement in SCHEMA:
                conn.execute(statement)


class transaction:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on error (connections run in autocommit)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def __enter__(self) -> None:
        self._conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        self._conn.execute("COMMIT" if exc_type is None else "ROLLBACK")


def encode(item: TResponseInputItem) -> str:
    """JSON text any reader (the stock SQLiteSession too) can load; orjson is ~5x faster."""
    try:
        return orjson.dumps(item).decode()
    except TypeError:  # what orjson refuses (non-str keys, big ints), json accepts
        return json.dumps(item, ensure_ascii=False)


def decode(data: str) -> TResponseInputItem | None:
    # Like the SDK, a row that is not JSON is skipped rather than failing the whole read.
    try:
        item = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return cast(TResponseInputItem, item) if isinstance(item, dict) else None


def make_private_dir(path: Path) -> None:
    """Create a directory (and parents) readable only by the service's user."""
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o777 != DIR_MODE:
        path.chmod(DIR_MODE)


def file_bytes(path: Path) -> int:
    """Bytes of a memory file with its WAL (what the file really costs on disk)."""
    total = 0
    for suffix in ("", "-wal"):
        with suppress(FileNotFoundError):
            total += Path(f"{path}{suffix}").stat().st_size
    return total
