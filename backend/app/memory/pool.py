"""A bounded pool of idle SQLite connections to memory files, least recently used first.

Why: opening a memory file per turn costs more than everything else the store does in a
turn. Closing the last connection to a WAL database checkpoints it and deletes its `-wal` and
`-shm` files, and the next open creates them again (measured: 1.6-4 ms against 0.4 ms with the
connection kept). So connections are borrowed for the length of one statement batch and kept
afterwards, up to `max_idle` files; each idle file costs 3 descriptors (database, WAL, shared
memory), which bounds descriptors however many threads are served.

A pooled connection is only reused while the file looks exactly as this connection left it
(device, inode, size, modification time). If another process deleted or replaced the file,
writing through the old connection would "succeed" into an unlinked file and be lost; if the
file was overwritten in place, the connection's cached pages would hide the damage. Either
way the connection is dropped and the file opened afresh (and checked).
"""

from __future__ import annotations

import os
import sqlite3
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
    """Hands out one connection per memory file; keeps at most `max_idle` idle ones."""

    def __init__(self, max_idle: int) -> None:
        self.max_idle = max_idle
        self._idle: OrderedDict[Path, PooledConnection] = OrderedDict()

    def borrow(self, path: Path) -> PooledConnection:
        """An idle connection to `path` if it still names the same file, else a new one.

        Raises:
            sqlite3.DatabaseError: the file cannot be opened as a database (or is busy).
            MemoryVersionError: the file is in a newer format than this code reads.
        """
        pooled = self._idle.pop(path, None)
        if pooled is not None and _file_id(path) == pooled.file_id:
            try:
                # Another process may have upgraded the file since (a newer Threadkeeper in
                # a rolling deploy): a header read, cached until the file changes.
                refuse_newer(file_version(pooled.conn))
            except BaseException:
                pooled.conn.close()
                raise
            return pooled
        if pooled is not None:
            pooled.conn.close()
        return _connect(path)

    def give_back(self, path: Path, pooled: PooledConnection) -> None:
        """Return a connection after use; the least recently used beyond the cap is closed."""
        if pooled.conn.in_transaction:
            pooled.conn.rollback()
        file_id = _file_id(path)
        if file_id is None:  # deleted while in use: never reuse this connection
            pooled.conn.close()
            return
        pooled.file_id = file_id
        self._idle[path] = pooled
        self._idle.move_to_end(path)
        while len(self._idle) > self.max_idle:
            _, oldest = self._idle.popitem(last=False)
            oldest.conn.close()

    def discard(self, path: Path) -> None:
        """Close the idle connection to `path` (before its file is deleted or moved)."""
        pooled = self._idle.pop(path, None)
        if pooled is not None:
            pooled.conn.close()

    def discard_under(self, directory: Path) -> None:
        """Close every idle connection to a file under `directory` (before it is removed)."""
        for path in [p for p in self._idle if directory in p.parents]:
            self.discard(path)

    def close_all(self) -> None:
        while self._idle:
            _, pooled = self._idle.popitem()
            pooled.conn.close()

    def __len__(self) -> int:
        return len(self._idle)


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
