"""Migrations upgrade to head, downgrade to base, and upgrade again on a real server."""

from __future__ import annotations

import uuid

from sqlalchemy import inspect

from app import schema
from app.db import create_engine
from tests.database import drop_database, recreate_database

TABLES = {"users", "threads", "messages", "tasks", "maintenance_runs", "search_config"}
USER, THREAD = "00000000-0000-4000-8000-000000000001", "00000000-0000-4000-8000-000000000002"
# A deployment's rows as revision 0005 stores them.
EXISTING_ROWS = (
    f"INSERT INTO users (id, subject, created_at) VALUES ('{USER}', 'old', now())",
    "INSERT INTO threads (id, user_id, title, created_at, updated_at, last_activity_at, "
    "message_count, memory_state, memory_item_count, memory_bytes) "
    f"VALUES ('{THREAD}', '{USER}', 'Old thread', now(), now(), now(), 1, 'empty', 0, 0)",
    "INSERT INTO messages (id, thread_id, role, content, created_at) "
    f"VALUES (gen_random_uuid(), '{THREAD}', 'user', 'hello old world', now())",
)


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
            assert "ix_messages_search" in await index_names(engine, "messages")
            assert "ix_threads_search" in await index_names(engine, "threads")
            await schema.downgrade(engine, "base")
            assert await schema.current_revision(engine) is None
            assert not TABLES & await table_names(engine)
            await schema.upgrade(engine)
            assert await schema.is_at_head(engine)
        finally:
            await engine.dispose()
            drop_database(test_database.admin_conninfo, name)

    async def test_search_on_an_existing_deployment_leaves_old_rows_for_the_rebuild(
        self, test_database
    ) -> None:
        from sqlalchemy import text

        name = "threadkeeper_search_migration_test"
        recreate_database(test_database.admin_conninfo, name)
        engine = create_engine(test_database.sibling_url(name))
        try:
            await schema.upgrade(engine, "0005_threads")
            async with engine.begin() as conn:
                for statement in EXISTING_ROWS:
                    await conn.execute(text(statement))
            await schema.upgrade(engine)
            async with engine.begin() as conn:
                state = await conn.execute(text("SELECT config, building FROM search_config"))
                assert state.one() == ("simple", True)
                # Old rows get their vectors afterwards, in batches (the reindex-search job).
                old = await conn.execute(text("SELECT search_vector FROM messages"))
                assert old.scalars().all() == [None]
                # A row written after the migration gets its vector from the trigger.
                await conn.execute(text(EXISTING_ROWS[-1].replace("hello old", "a new")))
                new = await conn.execute(
                    text("SELECT search_vector::text FROM messages WHERE content = 'a new world'")
                )
                assert new.scalar_one() == "'a':1 'new':2 'world':3"
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
