"""A bounded pool of SQLite connections to memory files, least recently used evicted first.

Why: opening a memory file per turn costs more than everything else the store does in a
turn. Closing the last connection to a WAL database checkpoints it and deletes its `-wal` and
`-shm` files, and the next open creates them again (measured: 1.6-4 ms against 0.4 ms with the
connection kept). So connections are borrowed for the length of one statement batch and kept
afterwards; at most `size` are open at once, idle or borrowed, and each costs 3 descriptors
(database, WAL, shared memory), which bounds descriptors however many threads are served.
All of it runs in the store's worker threads, never on the event loop (`memory.offload`).

A pooled connection is only reused while the file looks exactly as this connection left it
(device, inode, size, modification time). If another process deleted or replaced the file,
writing through the old connection would "succeed" into an unlinked file and be lost; if the
file was overwritten in place, the connection's cached pages would hide the damage. Either
way the connection is dropped and the file opened afresh (and checked).
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from app.memory.files import FILE_MODE, configure_connection, make_private_dir
from app.memory.versions import file_version, refuse_newer

# The first wait for a lock happens inside SQLite (cheap, short); longer waits yield the loop.
INLINE_BUSY_TIMEOUT_MS = 20


FileId = tuple[int, int, int, int]  # st_dev, st_ino, st_size, st_mtime_ns


@dataclass
class PooledConnection:
    conn: sqlite3.Connection
    file_id: FileId  # the database file as this connection last saw it
    checked_version: int | None = None  # PRAGMA data_version when rows were last verified


class ConnectionPool:
    """At most `size` connections open at once (idle or borrowed), one per memory file.

    Thread-safe: statements run in the store's worker threads (see `memory.offload`), which
    borrow and give back concurrently. The bookkeeping is under a lock; opening, checking
    and closing files happen outside it, in the calling (worker) thread, never on the loop.

    The bound counts borrowed connections too, so descriptors stay within `3 * size` however
    many threads borrow: a miss at the bound closes the least recently used idle connection
    before it opens its own.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._idle: OrderedDict[Path, PooledConnection] = OrderedDict()
        self._open = 0  # idle + borrowed
        self._lock = threading.Lock()

    def borrow(self, path: Path) -> PooledConnection:
        """An idle connection to `path` if it still names the same file, else a new one.

        Raises:
            sqlite3.DatabaseError: the file cannot be opened as a database (or is busy).
            MemoryVersionError: the file is in a newer format than this code reads.
        """
        evicted: PooledConnection | None = None
        with self._lock:
            pooled = self._idle.pop(path, None)
            if pooled is None:
                if self._open >= self.size and self._idle:
                    _, evicted = self._idle.popitem(last=False)
                else:
                    self._open += 1  # a new slot; an evicted one's slot is reused instead
        try:
            if evicted is not None:
                evicted.conn.close()  # checkpoints and deletes its sidecars: in this thread
            if pooled is not None:
                if _file_id(path) == pooled.file_id:
                    # Another process may have upgraded the file since (a newer Threadkeeper
                    # in a rolling deploy): a header read, cached until the file changes.
                    refuse_newer(file_version(pooled.conn))
                    return pooled
                pooled.conn.close()  # replaced or deleted by someone else: open it afresh
            return _connect(path)
        except BaseException:
            if pooled is not None:
                pooled.conn.close()
            self._release_slot()
            raise

    def give_back(self, path: Path, pooled: PooledConnection) -> None:
        """Return a borrowed connection (in the thread that used it), to be reused."""
        if pooled.conn.in_transaction:
            pooled.conn.rollback()
        file_id = _file_id(path)
        if file_id is None:  # deleted while in use: never reuse this connection
            pooled.conn.close()
            self._release_slot()
            return
        pooled.file_id = file_id
        with self._lock:
            previous = self._idle.pop(path, None)
            self._idle[path] = pooled
        if previous is not None:  # never happens under the store's file lock; kept bounded
            previous.conn.close()
            self._release_slot()

    def discard(self, path: Path) -> None:
        """Close the idle connection to `path` (before its file is deleted or moved)."""
        with self._lock:
            pooled = self._idle.pop(path, None)
        if pooled is not None:
            pooled.conn.close()
            self._release_slot()

    def discard_under(self, directory: Path) -> None:
        """Close every idle connection to a file under `directory` (before it is removed)."""
        with self._lock:
            paths = [p for p in self._idle if directory in p.parents]
        for path in paths:
            self.discard(path)

    def close_all(self) -> None:
        """Close every idle connection (at shutdown)."""
        while True:
            with self._lock:
                if not self._idle:
                    return
                _, pooled = self._idle.popitem()
            pooled.conn.close()
            self._release_slot()

    @property
    def open_connections(self) -> int:
        """Connections open now, idle or borrowed."""
        return self._open

    def __len__(self) -> int:
        """Idle connections."""
        return len(self._idle)

    def _release_slot(self) -> None:
        with self._lock:
            self._open -= 1


def _file_id(path: Path) -> FileId | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def _connect(path: Path) -> PooledConnection:
    make_private_dir(path.parent)
    # Create the file 0600 ourselves (a no-op when it exists); SQLite gives the -wal and -shm
    # sidecars the same mode.
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, FILE_MODE))
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        conn.execute(f"PRAGMA busy_timeout = {INLINE_BUSY_TIMEOUT_MS}")
        configure_connection(conn)
        file_id = _file_id(path)
        if file_id is None:
            raise sqlite3.OperationalError("memory file vanished while opening (busy)")
    except BaseException:
        conn.close()
        raise
    return PooledConnection(conn=conn, file_id=file_id)
