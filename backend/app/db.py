"""The PostgreSQL engine, session factory, and the request's transaction.

`get_db_session` is the only owner of a request's transaction: it commits when the handler
returns and rolls back when it raises. Services only `flush()`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Request
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

SessionMaker = async_sessionmaker[AsyncSession]


def create_engine(url: str, *, pool_size: int = 10, connect_timeout_s: int = 5) -> AsyncEngine:
    """Build the async engine.

    `prepare_threshold=None` turns off psycopg's server-side prepared statements, which a
    transaction-mode pooler (PgBouncer, Neon's pooled endpoint) cannot keep across
    transactions. `pool_pre_ping` lets the service recover by itself after an outage.
    """
    connect_args: dict[str, Any] = {"prepare_threshold": None, "connect_timeout": connect_timeout_s}
    return create_async_engine(
        url,
        pool_pre_ping=True,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=connect_timeout_s * 2,
        connect_args=connect_args,
    )


def create_sessionmaker(engine: AsyncEngine) -> SessionMaker:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


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
