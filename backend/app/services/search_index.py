"""The search vectors' configuration: checked at startup, changed and rebuilt online.

The vectors are written by triggers with the configuration in `search_config` (see
`app.models.search`). `SEARCH_TEXT_CONFIG` says which one the service wants; a server whose
setting differs from the database refuses to start (its queries would not match the
stored vectors), and `python -m app search reindex` switches the database to the setting and
rebuilds every vector in short batches, each its own transaction, while the service runs.
New rows use the new configuration from the moment the switch commits; until the rebuild
ends, older rows may still match only under the old one.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.config import ConfigError
from app.db import SessionMaker, session_scope
from app.models import SearchConfig
from app.models.base import utc_now

logger = logging.getLogger(__name__)

# Rows re-vectorized per transaction: ~0.1-0.3 s each, so no statement nears its timeout
# and concurrent writers never wait long on a batch's row locks.
REINDEX_BATCH_ROWS = 5_000
# (table, the text its vector is built from)
INDEXED = (("threads", "coalesce(title, '')"), ("messages", "content"))


async def canonical_config(db: AsyncSession, name: str) -> str:
    """The configuration's canonical name (`english` for `pg_catalog.english`).

    Raises:
        ConfigError: PostgreSQL has no text search configuration by that name.
    """
    try:
        async with db.begin_nested():
            found = await db.scalar(
                sa.text("SELECT CAST(CAST(:n AS regconfig) AS text)"), {"n": name}
            )
    except DBAPIError as e:
        raise ConfigError(
            f"SEARCH_TEXT_CONFIG: PostgreSQL has no text search configuration {name!r} "
            "(SELECT cfgname FROM pg_ts_config lists them)"
        ) from e
    return str(found)


async def read_config(db: AsyncSession) -> SearchConfig:
    row = await db.get(SearchConfig, 1)
    if row is None:  # only a hand-edited database lacks it; the migration inserts it
        raise ConfigError("The search_config row is missing: run `make migrate`")
    return row


async def check_config(sessionmaker: SessionMaker, wanted: str) -> SearchConfig:
    """Refuse to serve with a configuration other than the one the vectors are built with.

    Raises:
        ConfigError: in one line, with the command that fixes it.
    """
    async with session_scope(sessionmaker) as db:
        name = await canonical_config(db, wanted)
        row = await read_config(db)
    if row.config != name:
        raise ConfigError(
            f"SEARCH_TEXT_CONFIG is {name!r} but the search vectors are built with "
            f"{row.config!r}: run `python -m app search reindex` to rebuild them with "
            f"{name!r} (online, in batches), or set SEARCH_TEXT_CONFIG={row.config}"
        )
    return row


async def switch_config(sessionmaker: SessionMaker, wanted: str, *, force: bool) -> str | None:
    """Point the triggers at `wanted` and mark the vectors `building` when they need it.

    Returns:
        The configuration to rebuild with, or None when nothing needs rebuilding.
    """
    async with session_scope(sessionmaker) as db:
        name = await canonical_config(db, wanted)
        row = (
            await db.exec(select(SearchConfig).where(col(SearchConfig.id) == 1).with_for_update())
        ).one()
        if row.config != name or force:
            row.config, row.building, row.updated_at = name, True, utc_now()
            db.add(row)
        return name if row.building else None


async def rebuild_vectors(
    sessionmaker: SessionMaker,
    config: str,
    *,
    batch_rows: int = REINDEX_BATCH_ROWS,
) -> dict[str, int]:
    """Recompute every title and message vector with `config`, a batch per transaction.

    Returns:
        Rows rewritten per table, and the number of batches.
    """
    counts: dict[str, int] = {"batches": 0}
    for table, source in INDEXED:
        counts[table] = 0
        after: uuid.UUID | None = None
        while True:
            async with session_scope(sessionmaker) as db:
                done, after = await _rebuild_batch(db, table, source, config, after, batch_rows)
            if not done:
                break
            counts[table] += done
            counts["batches"] += 1
    return counts


async def _rebuild_batch(
    db: AsyncSession,
    table: str,
    source: str,
    config: str,
    after: uuid.UUID | None,
    batch_rows: int,
) -> tuple[int, uuid.UUID | None]:
    """One keyset batch in primary-key order; returns (rows done, last id)."""
    # `table` and `source` come from INDEXED above, never from input.
    statement = sa.text(
        f"""
        WITH batch AS (
            SELECT id FROM {table}
            WHERE CAST(:after AS uuid) IS NULL OR id > CAST(:after AS uuid)
            ORDER BY id LIMIT :n
        ), done AS (
            UPDATE {table} x SET search_vector = to_tsvector(CAST(:config AS regconfig), {source})
            FROM batch WHERE x.id = batch.id
            RETURNING x.id
        )
        SELECT count(*), (SELECT id FROM batch ORDER BY id DESC LIMIT 1) FROM done
        """
    )
    row = (
        await db.exec(  # type: ignore[call-overload]  # sqlmodel's exec() is typed for select(); a text() query runs the same way
            statement, params={"after": after, "n": batch_rows, "config": config}
        )
    ).one()
    return int(row[0]), row[1]


async def finish_rebuild(sessionmaker: SessionMaker, config: str) -> bool:
    """Clear `building`, unless another rebuild switched the configuration meanwhile."""
    async with session_scope(sessionmaker) as db:
        result = await db.exec(
            sa.update(SearchConfig)
            .where(col(SearchConfig.id) == 1, col(SearchConfig.config) == config)
            .values(building=False, updated_at=utc_now())
        )
        return bool(result.rowcount)


async def reindex(
    sessionmaker: SessionMaker,
    wanted: str,
    *,
    force: bool = False,
    batch_rows: int = REINDEX_BATCH_ROWS,
) -> dict[str, Any]:
    """Switch to `wanted` if needed and rebuild what is not built yet (or all, `force`).

    Safe to run while the service serves, and to run again after an interruption: the
    configuration stays `building` until a rebuild completes.
    """
    config = await switch_config(sessionmaker, wanted, force=force)
    if config is None:
        async with sessionmaker() as db:
            current = (await read_config(db)).config
        return {"config": current, "rebuilt": False}
    logger.info("Rebuilding the search vectors with %r", config)
    counts = await rebuild_vectors(sessionmaker, config, batch_rows=batch_rows)
    finished = await finish_rebuild(sessionmaker, config)
    vacuumed = await vacuum_indexed(sessionmaker)
    return {
        "config": config,
        "rebuilt": True,
        "finished": finished,
        "vacuumed": vacuumed,
        **counts,
    }


async def vacuum_indexed(sessionmaker: SessionMaker) -> bool:
    """VACUUM (ANALYZE) the tables whose every row was just rewritten.

    A rebuild leaves a dead version of every row. Measured at W10: until a vacuum, phrase
    searches took 2 s at the median (even with fresh ANALYZE statistics), after it 40-60 ms;
    autovacuum would get there eventually, this gets there at once. VACUUM cannot run in a
    transaction, so this uses an autocommit connection; a role that may not vacuum only
    loses the head start (logged).

    Returns:
        Whether it ran.
    """
    engine = sessionmaker.kw["bind"]
    try:
        async with engine.connect() as conn:
            auto = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await auto.exec_driver_sql("SET statement_timeout = 0")
            try:
                await auto.exec_driver_sql("VACUUM (ANALYZE) threads, messages")
            finally:
                await auto.exec_driver_sql("RESET statement_timeout")
    except DBAPIError as e:
        logger.warning("Search vectors rebuilt, but VACUUM failed: %s", type(e.orig).__name__)
        return False
    return True
