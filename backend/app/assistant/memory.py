"""Agent memory: one SQLite file per user per conversation, owned by `AgentMemoryStore`.

The files keep the SDK's own schema (`agent_sessions`, `agent_messages`), so the stock
`agents.SQLiteSession` can open any of them. The store differs from the stock class in how
it uses them, by measurement (see the README's Performance section):

- One connection per open memory, closed when the turn ends, so open descriptors follow the
  number of turns in flight, never the number of conversations served.
- Statements run on the event loop instead of hopping to a worker thread per call: they touch
  one small local file and take microseconds. A lock held by another process is waited out
  with `await asyncio.sleep` (bounded by the busy timeout), never by blocking the loop.
- `synchronous=NORMAL` in WAL mode: a power loss may drop the last commits, never corrupt the
  file. That is acceptable because PostgreSQL is the durable log and memory is rebuilt from it.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from agents.items import TResponseInputItem
from agents.memory import SessionSettings

from app.assistant.pruning import plan_cut
from app.errors import ServiceUnavailableError

_T = TypeVar("_T")

DIR_MODE = 0o700
FILE_MODE = 0o600
SIDECAR_SUFFIXES = ("", "-wal", "-shm", "-journal")
# The first wait for a lock happens inside SQLite (cheap, short); longer waits yield the loop.
_INLINE_BUSY_TIMEOUT_MS = 20

_SCHEMA = (
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
)


class MemoryBusyError(ServiceUnavailableError):
    """The memory file stayed locked by another process past the busy timeout."""


@dataclass(frozen=True)
class MemoryStats:
    items: int
    bytes: int


@dataclass(frozen=True)
class PruneResult:
    removed: int
    kept: int
    oversized_turn: bool  # one turn alone exceeds the cap; it was kept whole


class MemorySession:
    """The SDK `Session` protocol over one open SQLite connection.

    Only `AgentMemoryStore.open()` creates these; the connection closes when that context
    exits, after which every call raises.
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        session_id: str,
        path: Path,
        *,
        busy_timeout_s: float,
        session_settings: SessionSettings | None = None,
    ) -> None:
        self.session_id = session_id
        self.session_settings = session_settings or SessionSettings()
        self.path = path
        self._conn: sqlite3.Connection | None = conn
        self._busy_timeout_s = busy_timeout_s

    async def get_items(self, limit: int | None = None) -> list[TResponseInputItem]:
        """Return the history in order; with a limit, the latest `limit` items."""
        if limit is None:
            limit = self.session_settings.limit
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
        return [item for item in (_decode(data) for (data,) in rows) if item is not None]

    async def add_items(self, items: list[TResponseInputItem]) -> None:
        """Append items in one transaction."""
        if not items:
            self._require_open()
            return
        rows = [(self.session_id, json.dumps(item, ensure_ascii=False)) for item in items]

        def _add(c: sqlite3.Connection) -> None:
            with _transaction(c):
                c.execute(
                    "INSERT INTO agent_sessions (session_id) VALUES (?) "
                    "ON CONFLICT (session_id) DO UPDATE SET updated_at = CURRENT_TIMESTAMP",
                    (self.session_id,),
                )
                c.executemany(
                    "INSERT INTO agent_messages (session_id, message_data) VALUES (?, ?)", rows
                )

        await self._run(_add)

    async def pop_item(self) -> TResponseInputItem | None:
        """Remove and return the newest item, or None when the history is empty."""

        def _pop(c: sqlite3.Connection) -> str | None:
            with _transaction(c):
                row = c.execute(
                    "DELETE FROM agent_messages WHERE id = (SELECT id FROM agent_messages "
                    "WHERE session_id = ? ORDER BY id DESC LIMIT 1) RETURNING message_data",
                    (self.session_id,),
                ).fetchone()
            return None if row is None else str(row[0])

        data = await self._run(_pop)
        return None if data is None else _decode(data)

    async def clear_session(self) -> None:
        """Delete every item of this session."""

        def _clear(c: sqlite3.Connection) -> None:
            with _transaction(c):
                c.execute("DELETE FROM agent_messages WHERE session_id = ?", (self.session_id,))
                c.execute("DELETE FROM agent_sessions WHERE session_id = ?", (self.session_id,))

        await self._run(_clear)

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
        rows = [(self.session_id, json.dumps(item, ensure_ascii=False)) for item in items]

        def _replace(c: sqlite3.Connection) -> None:
            with _transaction(c):
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

        One SQLite transaction: a crash leaves the old history or the new one, never half.
        Items are classified by SQLite's JSON functions, so no row is decoded in Python.
        """

        def _prune(c: sqlite3.Connection) -> PruneResult:
            with _transaction(c):
                rows = c.execute(
                    "SELECT id, json_valid(message_data) AND "
                    "json_extract(message_data, '$.role') = 'user' AND "
                    "coalesce(json_extract(message_data, '$.type'), 'message') = 'message' "
                    "FROM agent_messages WHERE session_id = ? ORDER BY id",
                    (self.session_id,),
                ).fetchall()
                cut = plan_cut([bool(start) for _, start in rows], max_items)
                if cut.removes_anything:
                    c.execute(
                        "DELETE FROM agent_messages WHERE session_id = ? AND id < ?",
                        (self.session_id, rows[cut.keep_from][0]),
                    )
            return PruneResult(
                removed=cut.keep_from,
                kept=len(rows) - cut.keep_from,
                oversized_turn=cut.oversized_turn,
            )

        return await self._run(_prune)

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

    async def vacuum(self) -> None:
        """Rewrite the file without free pages, then truncate the WAL."""
        await self._run(lambda c: c.execute("VACUUM"))
        await self.checkpoint()

    async def stats(self) -> MemoryStats:
        """Item count and bytes on disk (database plus WAL), for PostgreSQL bookkeeping."""
        (count,) = await self._run(
            lambda c: c.execute(
                "SELECT count(*) FROM agent_messages WHERE session_id = ?", (self.session_id,)
            ).fetchone()
        )
        return MemoryStats(items=int(count), bytes=file_bytes(self.path))

    def _require_open(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("This memory session is closed; open it again from the store")
        return self._conn

    async def _run(self, op: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run `op`, yielding the event loop while another process holds the write lock."""
        conn = self._require_open()
        deadline = time.monotonic() + self._busy_timeout_s
        delay = 0.005
        while True:
            try:
                return op(conn)
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) and "busy" not in str(e):
                    raise
                if time.monotonic() >= deadline:
                    raise MemoryBusyError("The conversation's memory is busy; retry shortly") from e
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.1)

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class AgentMemoryStore:
    """Owns the memory directory: the only code that opens, closes or deletes memory files."""

    def __init__(
        self,
        root: Path,
        *,
        busy_timeout_ms: int = 2_000,
        session_settings: SessionSettings | None = None,
    ) -> None:
        self.root = root
        self._busy_timeout_s = busy_timeout_ms / 1000
        self._session_settings = session_settings
        # One lock per file currently in use in this process; turns hold it, delete waits.
        self._locks: dict[Path, tuple[asyncio.Lock, int]] = {}
        _make_private_dir(self.root)

    def path_for(self, user_id: uuid.UUID, conversation_id: uuid.UUID) -> Path:
        """The file of one conversation, built only from parsed UUIDs (no path traversal)."""
        if not isinstance(user_id, uuid.UUID) or not isinstance(conversation_id, uuid.UUID):
            raise TypeError("memory paths are built from uuid.UUID values only")
        return self.root / str(user_id) / f"{conversation_id}.db"

    @asynccontextmanager
    async def open(
        self, user_id: uuid.UUID, conversation_id: uuid.UUID
    ) -> AsyncIterator[MemorySession]:
        """Open a conversation's memory for the length of the `async with` block."""
        path = self.path_for(user_id, conversation_id)
        async with self._file_lock(path):
            conn = await self._connect(path)
            memory = MemorySession(
                conn,
                str(conversation_id),
                path,
                busy_timeout_s=self._busy_timeout_s,
                session_settings=self._session_settings,
            )
            try:
                yield memory
            finally:
                memory._close()

    def exists(self, user_id: uuid.UUID, conversation_id: uuid.UUID) -> bool:
        return self.path_for(user_id, conversation_id).exists()

    async def delete(self, user_id: uuid.UUID, conversation_id: uuid.UUID) -> bool:
        """Remove the file and its sidecars once no turn in this process holds it.

        Returns:
            Whether a database file existed.
        """
        path = self.path_for(user_id, conversation_id)
        async with self._file_lock(path):
            return _unlink_with_sidecars(path)

    def iter_sessions(self) -> Iterator[tuple[uuid.UUID, uuid.UUID, Path]]:
        """Every memory file under the root as (user_id, conversation_id, path)."""
        for user_dir in self.root.iterdir() if self.root.exists() else ():
            user_id = _parse_uuid(user_dir.name)
            if user_id is None or not user_dir.is_dir():
                continue
            for path in user_dir.glob("*.db"):
                conversation_id = _parse_uuid(path.stem)
                if conversation_id is not None:
                    yield user_id, conversation_id, path

    @asynccontextmanager
    async def _file_lock(self, path: Path) -> AsyncIterator[None]:
        lock, users = self._locks.get(path, (asyncio.Lock(), 0))
        self._locks[path] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[path]
            if users <= 1:
                del self._locks[path]
            else:
                self._locks[path] = (lock, users - 1)

    async def _connect(self, path: Path) -> sqlite3.Connection:
        _make_private_dir(path.parent)
        # Create the file 0600 ourselves (a no-op when it exists); SQLite gives the -wal and
        # -shm sidecars the same mode.
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, FILE_MODE))
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            conn.execute(f"PRAGMA busy_timeout = {_INLINE_BUSY_TIMEOUT_MS}")
            session = MemorySession(conn, "", path, busy_timeout_s=self._busy_timeout_s)
            await session._run(_configure)
        except BaseException:
            conn.close()
            raise
        return conn


def _configure(conn: sqlite3.Connection) -> None:
    if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    with _transaction(conn):
        for statement in _SCHEMA:
            conn.execute(statement)


class _transaction:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on error (connections run in autocommit)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def __enter__(self) -> None:
        self._conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        self._conn.execute("COMMIT" if exc_type is None else "ROLLBACK")


def _decode(data: str) -> TResponseInputItem | None:
    # Like the SDK, a row that is not JSON is skipped rather than failing the whole read.
    try:
        item = json.loads(data)
    except (json.JSONDecodeError, TypeError):
        return None
    return item if isinstance(item, dict) else None


def _parse_uuid(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


def _make_private_dir(path: Path) -> None:
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o777 != DIR_MODE:
        path.chmod(DIR_MODE)


def _unlink_with_sidecars(path: Path) -> bool:
    existed = path.exists()
    for suffix in SIDECAR_SUFFIXES:
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return existed


def file_bytes(path: Path) -> int:
    """Bytes of a memory file with its WAL (what the file really costs on disk)."""
    total = 0
    for suffix in ("", "-wal"):
        with suppress(FileNotFoundError):
            total += Path(f"{path}{suffix}").stat().st_size
    return total
