"""Migrations upgrade to head, downgrade to base, and upgrade again on a real server."""

from __future__ import annotations

import uuid

from sqlalchemy import inspect

from app import schema
from app.db import create_engine
from tests.database import drop_database, recreate_database

TABLES = {"users", "threads", "messages", "tasks", "maintenance_runs"}


async def table_names(engine) -> set[str]:
    async with engine.connect() as conn:
        return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))


async def index_names(engine, table: str) -> set[str]:
    async with engine.connect() as conn:
        return {i["name"] for i in await conn.run_sync(lambda c: inspect(c).get_indexes(table))}


class TestMigrations:
    async def test_upgrade_downgrade_upgrade(self, test_database) -> None:
        name = "threadkeeper_migrations_test"
        recreate_database(test_database.admin_conninfo, name)
        engine = create_engine(test_database.sibling_url(name))
        try:
            assert await schema.current_revision(engine) is None
            await schema.upgrade(engine)
            assert await schema.is_at_head(engine)
            assert await table_names(engine) >= TABLES
            assert "ix_threads_user_recency" in await index_names(engine, "threads")
            assert "ix_messages_thread_time" in await index_names(engine, "messages")
            await schema.downgrade(engine, "base")
            assert await schema.current_revision(engine) is None
            assert not TABLES & await table_names(engine)
            await schema.upgrade(engine)
            assert await schema.is_at_head(engine)
        finally:
            await engine.dispose()
            drop_database(test_database.admin_conninfo, name)

    async def test_deleting_a_conversation_cascades_to_messages(
        self, client, alice, running
    ) -> None:
        from sqlalchemy import text

        thread = (await client.post("/api/threads", headers=alice)).json()
        async with running.sessionmaker() as db:
            await db.exec(
                text(
                    "INSERT INTO messages (id, thread_id, role, content, created_at) "
                    "VALUES (gen_random_uuid(), :c, 'user', 'hi', now())"
                ).bindparams(c=uuid.UUID(thread["id"]))
            )
            await db.commit()
        assert (
            await client.delete(f"/api/threads/{thread['id']}", headers=alice)
        ).status_code == 204
        async with running.sessionmaker() as db:
            left = await db.exec(
                text("SELECT count(*) FROM messages WHERE thread_id = :c").bindparams(
                    c=uuid.UUID(thread["id"])
                )
            )
            assert left.scalar_one() == 0


class TestModelsMatchMigrations:
    async def test_autogenerate_finds_nothing_to_change(self, database_url) -> None:
        """The models and the migrations describe the same schema (a rename or a column
        added on one side only shows here, not in production)."""
        from alembic.autogenerate import compare_metadata
        from alembic.runtime.migration import MigrationContext
        from sqlmodel import SQLModel

        import app.models  # noqa: F401  - registers every table on SQLModel.metadata

        def _diff(connection) -> list:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "compare_server_default": False}
            )
            return compare_metadata(context, SQLModel.metadata)

        engine = create_engine(database_url)
        try:
            async with engine.connect() as conn:
                differences = await conn.run_sync(_diff)
        finally:
            await engine.dispose()
        assert differences == []
