"""SEARCH_TEXT_CONFIG: a mismatch stops startup in one line; `reindex` switches online.

Each test has a database of its own: the configuration is one row for the whole database.
"""

from __future__ import annotations

import dataclasses

import pytest
import sqlalchemy as sa
from asgi_lifespan import LifespanManager

from app.config import ConfigError, Settings
from app.main import create_app
from app.scheduler.registry import run_job
from app.services import search_index
from tests.conftest import start_app
from tests.factories import add_messages, create_thread


@pytest.fixture
def settings(private_settings):
    return private_settings


async def hits(client, headers, q: str) -> list[str]:
    response = await client.get("/api/search", params={"q": q}, headers=headers)
    assert response.status_code == 200, response.text
    return [h["snippet"] for h in response.json()["data"]]


async def stored_config(sessionmaker) -> tuple[str, bool]:
    async with sessionmaker() as db:
        row = await search_index.read_config(db)
        return row.config, row.building


async def refusal_at_startup(settings: Settings) -> str:
    """The one-line ConfigError the app's startup stops with under these settings."""
    with pytest.raises(ConfigError) as refused:
        async with LifespanManager(create_app(settings)):
            pass
    return str(refused.value)


class TestStartupCheck:
    async def test_a_setting_other_than_the_vectors_config_refuses_to_start(
        self, settings_factory, private_database
    ) -> None:
        english = settings_factory(DATABASE_URL=private_database, SEARCH_TEXT_CONFIG="english")
        assert await refusal_at_startup(english) == (
            "SEARCH_TEXT_CONFIG is 'english' but the search vectors are built with 'simple': "
            "run `python -m app search reindex` to rebuild them with 'english' (online, in "
            "batches), or set SEARCH_TEXT_CONFIG=simple"
        )

    async def test_an_unknown_configuration_names_the_setting(
        self, settings_factory, private_database
    ) -> None:
        wrong = settings_factory(DATABASE_URL=private_database, SEARCH_TEXT_CONFIG="klingon")
        assert await refusal_at_startup(wrong) == (
            "SEARCH_TEXT_CONFIG: PostgreSQL has no text search configuration 'klingon' "
            "(SELECT cfgname FROM pg_ts_config lists them)"
        )


class TestReindex:
    async def test_switching_to_english_rebuilds_every_vector(
        self, settings, settings_factory, private_database, alice
    ) -> None:
        async with start_app(settings) as running, running.client() as client:
            thread_id = await create_thread(client, alice, "Running notes")
            await add_messages(running.sessionmaker, thread_id, "she runs daily", "the cats")
            assert await hits(client, alice, "run") == []  # simple: words as written
        english = settings_factory(DATABASE_URL=private_database, SEARCH_TEXT_CONFIG="english")
        async with start_app(settings) as old:  # the job runs beside the old setting's app
            ctx = dataclasses.replace(old.state["job_context"], settings=english)
            run = await run_job("reindex-search", ctx, trigger="cli")
        assert run.status == "succeeded", run.error
        assert run.counts == {
            "config": "english",
            "rebuilt": True,
            "finished": True,
            "vacuumed": True,
            "threads": 1,
            "messages": 2,
            "batches": 2,
        }
        async with start_app(english) as running, running.client() as client:
            assert await stored_config(running.sessionmaker) == ("english", False)
            assert sorted(await hits(client, alice, "run")) == ["Running notes", "she runs daily"]
            # Rows written from now on use the new configuration (the trigger reads it).
            await add_messages(running.sessionmaker, thread_id, "he ran and runs")
            assert "he ran and runs" in await hits(client, alice, "running")

    async def test_an_unchanged_configuration_rebuilds_nothing_unless_forced(self, running) -> None:
        ctx = running.state["job_context"]
        assert await search_index.reindex(running.sessionmaker, "simple") == {
            "config": "simple",
            "rebuilt": False,
        }
        forced = await run_job("reindex-search", ctx, trigger="cli", force=True)
        assert (forced.counts["rebuilt"], forced.counts["finished"]) == (True, True)
        assert await stored_config(running.sessionmaker) == ("simple", False)

    async def test_rows_the_migration_left_unbuilt_are_filled_in_batches(
        self, client, alice, running
    ) -> None:
        thread_id = await create_thread(client, alice, "Old title")
        await add_messages(running.sessionmaker, thread_id, "old a", "old b", "old c")
        async with running.sessionmaker() as db:  # as 0010_search leaves existing rows
            for table in ("threads", "messages"):
                await db.exec(sa.text(f"UPDATE {table} SET search_vector = NULL"))
            await db.exec(sa.text("UPDATE search_config SET building = true"))
            await db.commit()
        assert await hits(client, alice, "old") == []
        counts = await search_index.reindex(running.sessionmaker, "simple", batch_rows=2)
        assert (counts["threads"], counts["messages"], counts["batches"]) == (1, 3, 3)
        assert sorted(await hits(client, alice, "old")) == ["Old title", "old a", "old b", "old c"]
        assert await stored_config(running.sessionmaker) == ("simple", False)
