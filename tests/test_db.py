"""The engine recovers by itself from connections the server ended."""

from __future__ import annotations

import psycopg
from sqlalchemy import text

from app.db import create_engine, libpq_url


class TestDeadConnections:
    async def test_a_connection_the_server_terminated_is_replaced_at_checkout(
        self, database_url: str
    ) -> None:
        engine = create_engine(database_url, pool_size=1)
        try:
            async with engine.connect() as conn:
                pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
            # What a restart does to every idle connection: FATAL, then the socket closes.
            with psycopg.connect(libpq_url(database_url), autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,))
            async with engine.connect() as conn:  # no error: a fresh connection, once
                again = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
            async with engine.connect() as conn:
                kept = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        finally:
            await engine.dispose()
        assert again != pid
        assert kept == again  # a live connection is reused, not replaced
