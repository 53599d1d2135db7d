"""Retention: pruning after turns, the daily cleanup, rebuild from the log, races, locks."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa
from agents.testing import ModelStep, ScriptedModel, assistant_message
from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED

from app.models import MaintenanceRun, RunStatus
from app.models.base import utc_now
from app.scheduler import jobs
from app.scheduler.context import JobContext
from app.scheduler.registry import JOBS, build_scheduler, lock_key, lock_name, run_job
from tests.conftest import start_app
from tests.factories import (
    age_thread,
    create_thread,
    memory_items,
    thread_row,
    thread_with_turns,
)
from tests.sse import reply_text, send


def job_context(running, **changes) -> JobContext:
    ctx: JobContext = running.state["job_context"]
    return dataclasses.replace(ctx, **changes)


def memory_path(running, user_id, thread_id):
    return running.memory_store.path_for(user_id, uuid.UUID(thread_id))


class TestPruneAfterEveryTurn:
    @pytest.fixture
    def settings(self, settings_factory):
        # Plain pruning (compaction's summary is tested in tests/turns/test_compaction.py).
        return settings_factory(AGENT_SESSION_MAX_MESSAGES=6, AGENT_SESSION_COMPACTION="off")

    async def test_memory_is_cut_to_the_cap_at_a_turn_boundary(
        self, client, alice, running
    ) -> None:
        thread_id = await thread_with_turns(
            client, alice, "remember that a is 1", "remember that b is 2", "add task prune me"
        )
        items = await memory_items(running, alice, thread_id)
        # 2 + 2 + 4 items > 6: the oldest whole turn goes, and what is left starts a turn.
        assert items[0] == {"role": "user", "content": "remember that b is 2"}
        assert len(items) == 6
        assert [i.get("type") for i in items[3:5]] == ["function_call", "function_call_output"]
        row = await thread_row(running.sessionmaker, thread_id)
        assert row.memory_item_count == 6
        assert row.memory_pruned_at is not None
        # The log keeps everything: only memory is bounded.
        assert (await client.get(f"/api/threads/{thread_id}", headers=alice)).json()[
            "message_count"
        ] == 6


class TestCleanup:
    async def test_deletes_only_inactive_sessions_and_keeps_the_history(
        self, client, alice, running
    ) -> None:
        old = await thread_with_turns(client, alice, "remember that old is gold")
        fresh = await thread_with_turns(client, alice, "remember that new is true")
        await age_thread(running.sessionmaker, old, days=8)
        me = await running.user_id(alice)
        old_path, fresh_path = memory_path(running, me, old), memory_path(running, me, fresh)
        old_path.with_name(old_path.name + "-shm").touch()

        summary = await jobs.cleanup(job_context(running))

        assert (summary["deleted"], summary["batches"]) == (1, 1)
        assert not old_path.exists()
        assert list(old_path.parent.glob(f"{old}*")) == []
        assert fresh_path.exists()
        assert (await thread_row(running.sessionmaker, old)).memory_state == "expired"
        assert (await thread_row(running.sessionmaker, fresh)).memory_state == "active"
        messages = (await client.get(f"/api/threads/{old}/messages", headers=alice)).json()["data"]
        assert len(messages) == 2

    async def test_clock_and_retention_decide_what_is_inactive(
        self, client, alice, running
    ) -> None:
        thread_id = await thread_with_turns(client, alice, "remember that time flies")
        me = await running.user_id(alice)
        in_six_days = job_context(running, clock=lambda: utc_now() + timedelta(days=6))
        in_eight_days = job_context(running, clock=lambda: utc_now() + timedelta(days=8))
        await jobs.cleanup(in_six_days)
        assert memory_path(running, me, thread_id).exists()
        await jobs.cleanup(in_six_days, older_than_days=5)
        assert not memory_path(running, me, thread_id).exists()
        assert (await jobs.cleanup(in_eight_days))["deleted"] == 0

    async def test_dry_run_changes_nothing(self, client, alice, running) -> None:
        thread_id = await thread_with_turns(client, alice, "remember that nothing changes")
        await age_thread(running.sessionmaker, thread_id, days=30)
        summary = await jobs.cleanup(job_context(running), dry_run=True)
        assert summary["would_delete"] == 1
        assert memory_path(running, await running.user_id(alice), thread_id).exists()
        assert (await thread_row(running.sessionmaker, thread_id)).memory_state == "active"

    async def test_retention_zero_disables_cleanup(self, settings_factory, alice) -> None:
        async with (
            start_app(settings_factory(AGENT_SESSION_RETENTION_DAYS=0)) as running,
            running.client() as client,
        ):
            thread_id = await thread_with_turns(client, alice, "remember that i stay")
            await age_thread(running.sessionmaker, thread_id, days=365)
            assert await jobs.cleanup(job_context(running)) == {"disabled": True}
            assert memory_path(running, await running.user_id(alice), thread_id).exists()

    async def test_next_turn_rebuilds_memory_from_the_log_with_tool_calls(
        self, client, alice, running, caplog
    ) -> None:
        thread_id = await thread_with_turns(
            client, alice, "remember that the code is 7", "add task rebuild me"
        )
        await age_thread(running.sessionmaker, thread_id, days=10)
        await jobs.cleanup(job_context(running))
        caplog.set_level("INFO", logger="app.turns.memory")
        events = await send(client, thread_id, "what did I ask you to remember?", alice)
        assert "the code is 7" in reply_text(events)
        assert "Rebuilt the memory of thread" in caplog.text
        items = await memory_items(running, alice, thread_id)
        assert items[0] == {"role": "user", "content": "remember that the code is 7"}
        calls = [i for i in items if i.get("type") == "function_call"]
        outputs = [i for i in items if i.get("type") == "function_call_output"]
        assert [c["name"] for c in calls] == ["add_task"]
        assert outputs[0]["call_id"] == calls[0]["call_id"]
        assert (await thread_row(running.sessionmaker, thread_id)).memory_state == "active"


class TestCleanupRacingTurns:
    async def test_a_turn_in_progress_is_never_cleaned_up(self, settings, alice) -> None:
        entered, opened = asyncio.Event(), asyncio.Event()

        async def slow(_call) -> ModelStep:
            entered.set()
            await opened.wait()
            return ModelStep(output=[assistant_message("still here")])

        async with (
            start_app(settings, model=ScriptedModel([ModelStep.respond(slow)])) as running,
            running.client() as client,
        ):
            thread_id = await create_thread(client, alice)
            turn = asyncio.create_task(send(client, thread_id, "hold the file", alice))
            await entered.wait()
            await age_thread(running.sessionmaker, thread_id, days=30)
            summary = await jobs.cleanup(job_context(running))
            assert summary["deleted"] == 0
            opened.set()
            assert reply_text(await turn) == "still here"
            items = await memory_items(running, alice, thread_id)
            assert [i.get("role") for i in items] == ["user", "assistant"]
            assert (await thread_row(running.sessionmaker, thread_id)).memory_state == "active"

    async def test_turns_racing_a_cleanup_never_write_into_deleted_files(
        self, settings_factory, alice
    ) -> None:
        settings = settings_factory(AGENT_SESSION_CLEANUP_BATCH_SIZE=3)
        async with start_app(settings) as running, running.client() as client:
            threads = [
                await thread_with_turns(client, alice, f"remember that n is {n}") for n in range(12)
            ]
            for thread_id in threads:
                await age_thread(running.sessionmaker, thread_id, days=9)

            async def turn(thread_id: str) -> int:
                response = await client.post(
                    f"/api/threads/{thread_id}/messages",
                    json={"text": "what did I ask you to remember?"},
                    headers={**alice, "Accept": "application/json"},
                )
                return response.status_code

            results = await asyncio.gather(
                jobs.cleanup(job_context(running)), *(turn(t) for t in threads)
            )
            assert set(results[1:]) <= {200, 409}
            me = await running.user_id(alice)
            for n, thread_id in enumerate(threads):
                row = await thread_row(running.sessionmaker, thread_id)
                exists = memory_path(running, me, thread_id).exists()
                assert row.active_turn_id is None
                assert exists == (row.memory_state == "active"), (n, row.memory_state)
                # Every thread still answers from its memory (live or rebuilt from the log).
                events = await send(client, thread_id, "what did I ask you to remember?", alice)
                assert f"n is {n}" in reply_text(events)


class TestJobLocking:
    async def test_second_scheduler_skips_while_the_first_runs(self, running, monkeypatch) -> None:
        entered, release = asyncio.Event(), asyncio.Event()

        async def slow_cleanup(_ctx, **_kwargs) -> dict:
            entered.set()
            await release.wait()
            return {"deleted": 0}

        monkeypatch.setitem(JOBS, "cleanup", slow_cleanup)
        ctx = job_context(running)
        first = asyncio.create_task(run_job("cleanup", ctx))
        await entered.wait()
        second = await run_job("cleanup", ctx)
        release.set()
        assert second.status == RunStatus.SKIPPED
        assert (await first).status == RunStatus.SUCCEEDED

    async def test_lock_held_by_another_process_skips_and_is_recorded(self, running) -> None:
        ctx = job_context(running)
        async with running.sessionmaker() as other, other.begin():
            # Another process of the same node: prune works on node-local files.
            key = lock_key(lock_name("prune", ctx))
            await other.exec(sa.select(sa.func.pg_advisory_xact_lock(key)))
            skipped = await run_job("prune", ctx, trigger="test")
        ran = await run_job("prune", ctx, trigger="test")
        assert (skipped.status, ran.status) == (RunStatus.SKIPPED, RunStatus.SUCCEEDED)
        async with running.sessionmaker() as db:
            recorded = await db.get_one(MaintenanceRun, ran.id)
        assert recorded.finished_at is not None
        assert recorded.counts == {"checked": 0, "pruned": 0, "items_removed": 0, "vacuumed": 0}

    async def test_failure_is_recorded_not_raised(self, running, monkeypatch) -> None:
        async def broken(_ctx, **_kwargs) -> dict:
            raise RuntimeError("disk on fire")

        monkeypatch.setitem(JOBS, "vacuum", broken)
        run = await run_job("vacuum", job_context(running))
        assert run.status == RunStatus.FAILED
        assert run.error == "RuntimeError: disk on fire"


class TestSchedule:
    def test_cleanup_runs_daily_at_the_configured_hour_and_zone(
        self, running, settings_factory
    ) -> None:
        ctx = job_context(
            running,
            settings=settings_factory(
                AGENT_SESSION_CLEANUP_HOUR=3, AGENT_SESSION_CLEANUP_TZ="Europe/Paris"
            ),
        )
        scheduler = build_scheduler(ctx)
        job = scheduler.get_job("cleanup")
        now = datetime(2026, 6, 1, 12, 0, tzinfo=job.trigger.timezone)
        fire = job.trigger.get_next_fire_time(None, now)
        assert (fire.hour, fire.minute, fire.day, str(fire.tzinfo)) == (3, 0, 2, "Europe/Paris")
        assert {j.id for j in scheduler.get_jobs()} == {
            "cleanup",
            "prune",
            "sweep-orphans",
            "expire-turn-events",
        }

    def test_interval_from_settings_and_no_cleanup_when_disabled(
        self, running, settings_factory
    ) -> None:
        ctx = job_context(
            running,
            settings=settings_factory(
                AGENT_SESSION_RETENTION_DAYS=0, AGENT_SESSION_PRUNE_INTERVAL_MINUTES=15
            ),
        )
        scheduler = build_scheduler(ctx)
        assert scheduler.get_job("cleanup") is None
        assert scheduler.get_job("prune").trigger.interval == timedelta(minutes=15)


class TestSweeps:
    @pytest.fixture
    def settings(self, settings_factory):
        return settings_factory(AGENT_SESSION_MAX_MESSAGES=4, AGENT_SESSION_COMPACTION="off")

    async def test_prune_sweep_applies_a_lowered_cap(
        self, client, alice, running, settings_factory
    ) -> None:
        thread_id = await thread_with_turns(client, alice, "remember that x", "remember that y")
        assert len(await memory_items(running, alice, thread_id)) == 4
        lowered = job_context(
            running,
            settings=settings_factory(AGENT_SESSION_MAX_MESSAGES=2, AGENT_SESSION_COMPACTION="off"),
        )
        assert (await jobs.prune(lowered, dry_run=True))["would_check"] == 1
        assert len(await memory_items(running, alice, thread_id)) == 4
        totals = await jobs.prune(lowered)
        assert totals == {"checked": 1, "pruned": 1, "items_removed": 2, "vacuumed": 0}
        items = await memory_items(running, alice, thread_id)
        assert items[0] == {"role": "user", "content": "remember that y"}
        assert (await thread_row(running.sessionmaker, thread_id)).memory_item_count == 2

    async def test_orphans_are_reported_then_removed(self, client, alice, running) -> None:
        thread_id = await thread_with_turns(client, alice, "remember that i will vanish")
        me = await running.user_id(alice)
        memory_path(running, me, thread_id).unlink()
        stray = uuid.uuid4()
        async with running.memory_store.open(me, stray) as memory:
            await memory.add_items([{"role": "user", "content": "nobody owns me"}])
        report = await jobs.sweep_orphans(job_context(running), remove=False)
        assert str(stray) in report["orphan_ids"]
        assert thread_id in report["missing_ids"]
        await jobs.sweep_orphans(job_context(running), remove=True)
        assert not await running.memory_store.exists(me, stray)
        assert (await thread_row(running.sessionmaker, thread_id)).memory_state == "expired"


async def startup_runs(running) -> list[MaintenanceRun]:
    from sqlmodel import select

    async with running.sessionmaker() as db:
        query = select(MaintenanceRun).where(MaintenanceRun.trigger == "startup")
        return list((await db.exec(query)).all())


class TestSchedulerInTheApp:
    async def test_lifespan_starts_the_scheduler_and_reconciles_on_startup(
        self, settings_factory
    ) -> None:

        async with start_app(settings_factory(SCHEDULER_ENABLED=True)) as running:
            scheduler = running.state["scheduler"]
            assert scheduler.running
            assert {"cleanup", "prune", "sweep-orphans"} <= {job.id for job in scheduler.get_jobs()}
            # The startup reconcile is a one-off job that may still be running: wait for the
            # scheduler to report it executed (bounded), then read its recorded run.
            done = asyncio.Event()
            scheduler.add_listener(
                lambda event: done.set() if event.job_id == "reconcile-on-startup" else None,
                EVENT_JOB_EXECUTED | EVENT_JOB_ERROR,
            )
            runs = await startup_runs(running)
            if not runs:
                async with asyncio.timeout(10):
                    await done.wait()
                runs = await startup_runs(running)
            assert runs
            assert all(r.job == "reconcile" for r in runs)
        assert not scheduler.running
