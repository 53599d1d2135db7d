"""The PostgreSQL engine, session factory, and the request's transaction.

`get_db_session` is the only owner of a request's transaction: it commits when the handler
returns and rolls back when it raises. Services only `flush()`.
"""

from __future__ import annotations

import logging
import select
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from sqlalchemy import event, exc
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry
from sqlmodel.ext.asyncio.session import AsyncSession

SessionMaker = async_sessionmaker[AsyncSession]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DatabaseTimeouts:
    """Bounds on waits inside PostgreSQL, in seconds (0: the server's default, unbounded)."""

    statement: int = 0
    lock: int = 0
    idle_in_transaction: int = 0

    def startup_options(self) -> str | None:
        """The libpq `options` that set them for every connection of the pool."""
        settings = {
            "statement_timeout": self.statement,
            "lock_timeout": self.lock,
            "idle_in_transaction_session_timeout": self.idle_in_transaction,
        }
        parts = [f"-c {name}={seconds}s" for name, seconds in settings.items() if seconds]
        return " ".join(parts) or None


def create_engine(
    url: str,
    *,
    pool_size: int = 10,
    connect_timeout_s: int = 5,
    pool_timeout_s: int | None = None,
    timeouts: DatabaseTimeouts | None = None,
) -> AsyncEngine:
    """Build the async engine.

    `prepare_threshold=None` turns off psycopg's server-side prepared statements, which a
    transaction-mode pooler (PgBouncer, Neon's pooled endpoint) cannot keep across
    transactions. The service recovers by itself after an outage without a ping round trip
    per checkout (`_discard_dead_connections`), which was a third of a memory write. Every
    wait is bounded: the connection (`connect_timeout`), the pool checkout (`pool_timeout`),
    and inside the server the statement, lock and idle-in-transaction timeouts, so a stuck
    thread can cost a request a 409 or a 503 but never wedge the pool.
    """
    connect_args: dict[str, Any] = {"prepare_threshold": None, "connect_timeout": connect_timeout_s}
    options = (timeouts or DatabaseTimeouts()).startup_options()
    if options:
        connect_args["options"] = options
    engine = create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=pool_timeout_s or connect_timeout_s * 2,
        connect_args=connect_args,
    )
    event.listen(engine.sync_engine.pool, "checkout", _discard_dead_connections)
    return engine


def _discard_dead_connections(
    dbapi_connection: Any, record: ConnectionPoolEntry, proxy: Any
) -> None:
    """Refuse a pooled connection the server has closed, without a round trip.

    An idle connection's socket has nothing to read unless the server ended it: a restart
    or shutdown sends "terminating connection" and closes it, as do idle and admin
    terminations. So a readable (or already broken) socket means dead, and raising
    `DisconnectionError` makes the pool connect a fresh one instead. A connection lost
    silently (a network partition) is caught by the statement that uses it: SQLAlchemy then
    invalidates every connection made before the error, and the next checkout reconnects.
    """
    del dbapi_connection, proxy
    conn = record.driver_connection
    if conn is None or conn.closed or conn.broken:
        raise exc.DisconnectionError("the connection is closed")
    try:
        fd = conn.pgconn.socket
    except Exception as e:  # psycopg raises OperationalError when it has no socket
        raise exc.DisconnectionError("the connection has no socket") from e
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLPRI)
    if poller.poll(0):
        logger.info("Replacing a pooled database connection the server closed")
        raise exc.DisconnectionError("the server closed the connection")


def create_sessionmaker(engine: AsyncEngine) -> SessionMaker:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


def libpq_url(url: str) -> str:
    """A SQLAlchemy URL (postgresql+psycopg://...) as psycopg's own connection string."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def redact_url(url: str) -> str:
    """The URL as it may appear in logs: never the password."""
    return make_url(url).render_as_string(hide_password=True)


async def get_db_session(request: Request) -> AsyncIterator[AsyncSession]:
    """Yield the request's session; commit on success, roll back on any error."""
    async with session_scope(get_sessionmaker(request)) as db:
        yield db


def get_sessionmaker(request: Request) -> SessionMaker:
    """The session factory, for stream and background code that outlives the request."""
    sessionmaker: SessionMaker | None = getattr(request.state, "sessionmaker", None)
    if sessionmaker is None:
        raise RuntimeError(
            "No sessionmaker on request.state: run the app through its lifespan, "
            "or override get_db_session in tests"
        )
    return sessionmaker


@asynccontextmanager
async def session_scope(sessionmaker: SessionMaker) -> AsyncIterator[AsyncSession]:
    """A unit of work outside a request (jobs, streams, CLI): commit at the end or roll back."""
    async with sessionmaker() as db:
        try:
            yield db
        except BaseException:
            await db.rollback()
            raise
        else:
            await db.commit()
