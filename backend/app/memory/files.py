"""SQLite specifics of memory files: the SDK's schema, pragmas, statements and encoding.

Everything here is about the file format, so that `MemorySession` reads as the Session
protocol and `AgentMemoryStore` as file ownership.
"""

from __future__ import annotations

import json
import math
import re
import sqlite3
from contextlib import suppress
from pathlib import Path
from typing import Any, cast

import orjson
from agents.items import TResponseInputItem

from app.memory.versions import FORMAT_VERSION, file_version, refuse_newer, upgrade

DIR_MODE = 0o700
FILE_MODE = 0o600
SIDECAR_SUFFIXES = ("", "-wal", "-shm", "-journal")

# Ours, beside the SDK's tables (the stock SQLiteSession ignores them); see `memory.versions`.
SCHEMA_TABLES = ("agent_sessions", "agent_messages", "threadkeeper_memory", "threadkeeper_summary")

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
    """Check the format version, then WAL, NORMAL sync, and upgrade an older file.

    A file from a newer format is refused before anything is written to it.

    Raises:
        MemoryVersionError: the file is in a newer format than this code reads.
    """
    version = file_version(conn)
    refuse_newer(version)
    if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    if version < FORMAT_VERSION:  # only a new or older file takes the write lock
        upgrade(conn)


class transaction:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on error (connections run in autocommit)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def __enter__(self) -> None:
        self._conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        self._conn.execute("COMMIT" if exc_type is None else "ROLLBACK")


def encode(item: TResponseInputItem) -> str:
    """JSON text any reader (the stock SQLiteSession too) loads back to exactly `item`.

    orjson is ~5x faster than `json`, but it refuses lone surrogates, integers beyond 64
    bits and non-str keys, and writes NaN and infinities as `null`. Those items get the
    stock class's own encoding (`json.dumps`: ASCII with escapes, `NaN`, `Infinity`, exact
    integers), which round-trips them exactly, as the stock class does.
    """
    try:
        data = orjson.dumps(item)
    except TypeError:
        return json.dumps(item)
    if b"null" in data and _has_non_finite(item):
        return json.dumps(item)
    return data.decode()


def decode(data: str) -> TResponseInputItem | None:
    """The item a row holds, exactly as it was added; None for a row that is not an item.

    orjson first; what it refuses (`NaN`, `Infinity`, lone-surrogate escapes: all written
    by the stock class) is read with `json`, and so is text with a long run of digits,
    since orjson reads integers beyond 64 bits as floats. Like the SDK, a row that is not
    JSON at all is skipped rather than failing the whole read.
    """
    if not isinstance(data, str):
        return None
    try:
        item = orjson.loads(data)
    except orjson.JSONDecodeError:
        item = decode_exact(data)
    else:
        if LONG_INTEGER.search(data):
            item = decode_exact(data)
    return cast(TResponseInputItem, item) if isinstance(item, dict) else None


# 19 digits can already overflow a signed 64-bit integer (-9223372036854775809).
LONG_INTEGER = re.compile("[0-9]{19,}")


def decode_exact(data: str) -> Any:
    """`json.loads`, as the stock class reads rows; None for text that is not JSON."""
    try:
        return json.loads(data)
    except ValueError:
        return None


def _has_non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_has_non_finite(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_has_non_finite(v) for v in value)
    return False


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
