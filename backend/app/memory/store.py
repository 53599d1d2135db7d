"""Agent memory: one SQLite file per user per thread, owned by `AgentMemoryStore`.

The files keep the SDK's own schema (`agent_sessions`, `agent_messages`), so the stock
`agents.SQLiteSession` can open any of them. The store differs from the stock class in how
it uses them, by measurement (see the README's Performance section):

- A bounded pool of connections (`memory.pool`): hot threads skip the cost of reopening
  their file, and descriptors stay bounded however many threads are served.
- Everything that touches a file (statements, commits, opening and closing files, deletes,
  quarantine moves) runs in a few worker threads owned by the store (`memory.offload`), one
  hop per statement batch, so the event loop never waits on the disk.
- `synchronous=NORMAL` in WAL mode: a power loss may drop the last commits, never corrupt the
  file. That is acceptable because PostgreSQL is the durable log and memory is rebuilt from it.
"""

import asyncio
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from agents.memory import SessionSettings

from app.memory.files import SIDECAR_SUFFIXES, make_private_dir
from app.memory.holds import MemoryHolds
from app.memory.offload import DEFAULT_IO_THREADS, io_executor, run_settled
from app.memory.pool import ConnectionPool
from app.memory.protocol import Memory
from app.memory.session import MemorySession


@dataclass(frozen=True)
class ErasedFiles:
    memory_files: int
    quarantined_files: int


# Files open at once per process, idle or in use: 3 descriptors each (database, WAL, shared
# memory), so 48 at most, beside a worker's dozen of its own (W4's bound is 64).
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
        io_threads: int = DEFAULT_IO_THREADS,
    ) -> None:
        self.root = root
        self._busy_timeout_s = busy_timeout_ms / 1000
        self._session_settings = session_settings
        self._pool = ConnectionPool(size=pool_size)
        # Each thread holds at most one connection, so fewer threads than the pool's size
        # leave room for idle files (and the pool's bound holds whatever they do).
        self._executor = io_executor(max(1, min(io_threads, pool_size)))
        # Deletes and erasure come in thousands from jobs: their own threads, so a cleanup
        # never queues ahead of a turn's statements.
        self._bulk_executor = io_executor(io_threads)
        # One lock per file currently in use in this process; turns hold it, delete waits.
        self._holds = MemoryHolds()
        make_private_dir(self.root)

    def path_for(self, user_id: uuid.UUID, thread_id: uuid.UUID) -> Path:
        """The file of one thread, built only from parsed UUIDs (no path traversal)."""
        if not isinstance(user_id, uuid.UUID) or not isinstance(thread_id, uuid.UUID):
            raise TypeError("memory paths are built from uuid.UUID values only")
        return self.root / str(user_id) / f"{thread_id}.db"

    @asynccontextmanager
    async def open(
        self,
        user_id: uuid.UUID,
        thread_id: uuid.UUID,
        *,
        wait_s: float | None = None,
        for_turn: bool = False,
        refuse_if_turn: bool = False,
    ) -> AsyncIterator[MemorySession]:
        """Open a thread's memory for the length of the `async with` block.

        Opening touches no file (statements open it lazily); it takes the file's in-process
        lock. A turn opens `for_turn`: it holds the file for its whole run, so another turn,
        or anyone opening with `refuse_if_turn` (a user's delete), is refused at once instead
        of waiting for it. Others (jobs, which already hold the thread's lease) wait.

        Raises:
            MemoryInUseError: a turn holds the file and we may not wait for it, or another
                holder kept it past `wait_s`.
        """
        path = self.path_for(user_id, thread_id)
        refuse = refuse_if_turn or for_turn
        async with self._holds.hold(path, wait_s=wait_s, for_turn=for_turn, refuse_if_turn=refuse):
            memory = MemorySession(
                self._pool,
                str(thread_id),
                path,
                busy_timeout_s=self._busy_timeout_s,
                session_settings=self._session_settings,
                executor=self._executor,
            )
            try:
                yield memory
            finally:
                memory._close()

    async def exists(self, user_id: uuid.UUID, thread_id: uuid.UUID) -> bool:
        """Whether the thread's file exists (a stat: microseconds, on the loop)."""
        return self.path_for(user_id, thread_id).exists()

    async def delete(
        self, user_id: uuid.UUID, thread_id: uuid.UUID, *, wait_s: float | None = None
    ) -> bool:
        """Remove the file and its sidecars once no turn in this process holds it.

        Returns:
            Whether a database file existed.
        """
        async with self.open(user_id, thread_id, wait_s=wait_s) as memory:
            return await self.remove(memory)

    async def remove(self, memory: Memory) -> bool:
        """Remove an open memory's file and sidecars (the open session proves the lock).

        It closes a connection and unlinks files, so that runs in a worker thread (the bulk
        one: deletes come in thousands from jobs and must not queue ahead of turns).

        Returns:
            Whether a database file existed.
        """
        path = _path_of(memory)

        def _remove() -> bool:
            self._pool.discard(path)
            return _unlink_with_sidecars(path)

        return await run_settled(self._bulk_executor, _remove)

    async def quarantine(self, memory: Memory) -> Path | None:
        """Move an open memory's unusable file and sidecars aside (never delete: evidence).

        Takes the open `MemorySession` as proof that the caller holds the file's lock; the
        session stays usable and opens a new, empty file on its next statement. The files are
        moved in a worker thread.

        Returns:
            Where the database file went, or None when there was no file.
        """
        path = _path_of(memory)
        user_id, thread_id = path.parent.name, path.stem
        target_dir = self.root / QUARANTINE_DIR / user_id
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")

        def _quarantine() -> Path | None:
            self._pool.discard(path)
            return _move_with_sidecars(path, target_dir / f"{thread_id}-{stamp}.db")

        return await run_settled(self._bulk_executor, _quarantine)

    async def erase_user(self, user_id: uuid.UUID) -> ErasedFiles:
        """Remove every memory file of a user, sidecars and quarantined copies included.

        The caller holds the leases of the user's threads (no turn or job can be writing).
        The directories are removed in a worker thread: a user with thousands of threads
        has thousands of files, and unlinking them must not hold up the event loop.

        Returns:
            How many memory files and quarantined files there were.
        """
        if not isinstance(user_id, uuid.UUID):
            raise TypeError("memory paths are built from uuid.UUID values only")
        live, quarantined = self.root / str(user_id), self.root / QUARANTINE_DIR / str(user_id)

        def _erase() -> ErasedFiles:
            self._pool.discard_under(live)
            return ErasedFiles(
                memory_files=_remove_tree(live), quarantined_files=_remove_tree(quarantined)
            )

        return await run_settled(self._bulk_executor, _erase)

    async def iter_sessions(self) -> AsyncIterator[tuple[uuid.UUID, uuid.UUID]]:
        """Every memory file under the root as (user_id, thread_id); the directory is listed
        in a worker thread (thousands of files must not hold up the event loop)."""
        for user_id, thread_id, _ in await asyncio.to_thread(lambda: list(self.iter_files())):
            yield user_id, thread_id

    def iter_files(self) -> Iterator[tuple[uuid.UUID, uuid.UUID, Path]]:
        """Every memory file under the root as (user_id, thread_id, path)."""
        for user_dir in self.root.iterdir() if self.root.exists() else ():
            user_id = _parse_uuid(user_dir.name)
            if user_id is None or not user_dir.is_dir():
                continue
            for path in user_dir.glob("*.db"):
                thread_id = _parse_uuid(path.stem)
                if thread_id is not None:
                    yield user_id, thread_id, path

    def free_bytes(self) -> int:
        """Free space on the memory directory's file system (a statvfs: microseconds)."""
        return shutil.disk_usage(self.root).free

    def close(self) -> None:
        """Close the pooled connections (at shutdown; each close checkpoints its file, so
        the server calls this off the loop). The store stays usable: the pool refills, and
        its idle worker threads end with it."""
        self._pool.close_all()


def _path_of(memory: Memory) -> Path:
    if not isinstance(memory, MemorySession):
        raise TypeError("this store only handles the memory sessions it opened")
    return memory.path


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


def _remove_tree(directory: Path) -> int:
    """Delete a directory and everything in it; returns how many `.db` files it held."""
    if not directory.is_dir():
        return 0
    count = sum(1 for _ in directory.glob("*.db"))
    shutil.rmtree(directory)
    return count


def _unlink_with_sidecars(path: Path) -> bool:
    existed = path.exists()
    for suffix in SIDECAR_SUFFIXES:
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return existed
