"""Alembic, driven from code: where the schema is, where it should be, and getting there."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

ALEMBIC_INI = Path(__file__).resolve().parent.parent / "alembic.ini"
# Migrations may rewrite big tables and wait for other workers: lift the app's bounds on
# waits for their transaction only (SET LOCAL ends with it, even through a pooler).
UNBOUNDED_TRANSACTION = (
    "SET LOCAL statement_timeout = 0",
    "SET LOCAL lock_timeout = 0",
    "SET LOCAL idle_in_transaction_session_timeout = 0",
)


def alembic_config() -> Config:
    return Config(str(ALEMBIC_INI))


def head_revision() -> str | None:
    """The newest migration in the code."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


async def current_revision(engine: AsyncEngine) -> str | None:
    """The revision the database is at, or None for an empty database."""

    def _read(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    async with engine.connect() as conn:
        return await conn.run_sync(_read)


async def is_at_head(engine: AsyncEngine) -> bool:
    return await current_revision(engine) == head_revision()


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Apply migrations over one of the engine's connections, in one transaction."""
    await _run_command(engine, command.upgrade, revision)


async def upgrade_url(url: str) -> None:
    """Migrate the database at `url` to head with a short-lived engine (tests, bench, CLI)."""
    from app.db import create_engine

    engine = create_engine(url)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()


async def downgrade(engine: AsyncEngine, revision: str) -> None:
    await _run_command(engine, command.downgrade, revision)


async def _run_command(engine: AsyncEngine, fn: object, revision: str) -> None:
    def _run(connection: Connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        fn(config, revision)  # type: ignore[operator]  # alembic commands share this signature

    async with engine.begin() as conn:
        await lift_timeouts(conn)
        await conn.run_sync(_run)


async def lift_timeouts(conn: AsyncConnection) -> None:
    """Lift statement, lock and idle timeouts for the rest of `conn`'s transaction."""
    for statement in UNBOUNDED_TRANSACTION:
        await conn.execute(text(statement))
