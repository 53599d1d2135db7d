"""Agent memory: one SQLite file per user per conversation, owned by `AgentMemoryStore`.

The files keep the SDK's own schema (`agent_sessions`, `agent_messages`), so the stock
`agents.SQLiteSession` can open any of them. The store differs from the stock class in how
it uses them, by measurement (see the README's Performance section):

- A bounded pool of idle connections (`connection_pool`): hot conversations skip the cost of
  reopening their file, and descriptors stay bounded however many conversations are served.
- Statements run on the event loop instead of hopping to a worker thread per call (see
  `memory_session`).
- `synchronous=NORMAL` in WAL mode: a power loss may drop the last commits, never corrupt the
  file. That is acceptable because PostgreSQL is the durable log and memory is rebuilt from it.
"""

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

from agents.memory import SessionSettings

from app.assistant.connection_pool import ConnectionPool
from app.assistant.memory_files import SIDECAR_SUFFIXES, file_bytes, make_private_dir
from app.assistant.memory_session import (
    MemoryBusyError,
    MemoryCorruptError,
    MemorySession,
    MemoryStats,
    PruneResult,
    is_corruption,
)

__all__ = [
    "AgentMemoryStore",
    "MemoryBusyError",
    "MemoryCorruptError",
    "MemorySession",
    "MemoryStats",
    "PruneResult",
    "file_bytes",
    "is_corruption",
]

# Idle files kept open per process: 3 descriptors each (database, WAL, shared memory).
DEFAULT_POOL_SIZE = 16
QUARANTINE_DIR = "_quarantine"


class AgentMemoryStore:
    """Owns the memory directory: the only code that opens, closes or deletes memory files."""

    def __init__(
        self,
        root: Path,
        *,
        busy_timeout_ms: int = 2_000,
        session_settings: SessionSettings | None = None,
        pool_size: int = DEFAULT_POOL_SIZE,
    ) -> None:
        self.root = root
        self._busy_timeout_s = busy_timeout_ms / 1000
        self._session_settings = session_settings
        self._pool = ConnectionPool(max_idle=pool_size)
        # One lock per file currently in use in this process; turns hold it, delete waits.
        self._locks: dict[Path, tuple[asyncio.Lock, int]] = {}
        make_private_dir(self.root)

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
            memory = MemorySession(
                self._pool,
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
            self._pool.discard(path)
            return _unlink_with_sidecars(path)

    async def quarantine(self, user_id: uuid.UUID, conversation_id: uuid.UUID) -> Path | None:
        """Move an unusable file and its sidecars aside (never delete: it is evidence).

        Returns:
            Where the database file went, or None when there was no file.
        """
        path = self.path_for(user_id, conversation_id)
        target_dir = self.root / QUARANTINE_DIR / str(user_id)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        async with self._file_lock(path):
            self._pool.discard(path)
            return _move_with_sidecars(path, target_dir / f"{conversation_id}-{stamp}.db")

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

    def close(self) -> None:
        """Close the pooled connections (at shutdown)."""
        self._pool.close_all()


def _parse_uuid(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


def _move_with_sidecars(path: Path, target: Path) -> Path | None:
    if not path.exists():
        return None
    make_private_dir(target.parent)
    for suffix in SIDECAR_SUFFIXES:
        source = Path(f"{path}{suffix}")
        if source.exists():
            source.rename(Path(f"{target}{suffix}"))
    return target


def _unlink_with_sidecars(path: Path) -> bool:
    existed = path.exists()
    for suffix in SIDECAR_SUFFIXES:
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return existed
