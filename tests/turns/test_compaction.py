"""Compaction: what prunes remove is folded into one summary at the head of memory, off the
request path, exactly in step with the log (generations, rebuilds), and never at the cost of
a turn or of the cap."""

from __future__ import annotations

import dataclasses
import math
import uuid

import pytest

from app.memory import SUMMARY_PREFIX
from app.metrics import RECOVERIES, SUMMARIES, SUMMARY_TOKENS
from app.models import RunStatus
from app.scheduler import jobs, thread_admin
from app.scheduler.context import JobContext
from app.scheduler.registry import run_job
from tests.conftest import start_app
from tests.factories import create_thread, memory_items, thread_row
from tests.model_server import Hang, HttpError, Text
from tests.sse import reply_text, send

REMEMBER = "remember that the build id is 42"
RECALL = "what did I ask you to remember?"
FIRST = "what did I say first?"
FACT = "You asked me to remember: that the build id is 42."
NO_FACT = "You haven't asked me to remember anything yet."


def counted(status: str) -> float:
    return SUMMARIES.labels(status)._value.get()


def job_context(running, **changes) -> JobContext:
    return dataclasses.replace(running.state["job_context"], **changes)


async def talk(client, headers, thread_id: str, *texts: str) -> list[str]:
    """Send each text as a turn; return the replies."""
    return [reply_text(await send(client, thread_id, text, headers)) for text in texts]


def fillers(count: int) -> list[str]:
    """Tool turns of 4 items each (user, call, output, reply): 3 fit a cap of 12."""
    return [f"add task chore {n}" for n in range(count)]


class TestRecallBeyondTheCap:
    """The issue's test: a cap of 12 items, 30 turns, a fact from turn 1."""

    @pytest.mark.parametrize(
        ("compaction", "answer"), [("summary", FACT), ("off", NO_FACT)], ids=["on", "off"]
    )
    async def test_a_fact_from_turn_1_after_30_turns(
        self, settings_factory, alice, compaction, answer
    ) -> None:
        settings = settings_factory(
            AGENT_SESSION_MAX_MESSAGES=12, AGENT_SESSION_COMPACTION=compaction
        )
        async with start_app(settings) as running, running.client() as client:
            thread_id = await create_thread(client, alice)
            await talk(client, alice, thread_id, REMEMBER, *fillers(28))
            if running.state["compactor"] is not None:
                await running.state["compactor"].wait_idle()
            (recalled,) = await talk(client, alice, thread_id, RECALL)
            items = await memory_items(running, alice, thread_id)
        assert recalled == answer
        assert len(items) <= 12
        if compaction == "summary":
            head = items[0]
            assert head["role"] == "system"
            assert head["content"].startswith(SUMMARY_PREFIX)
            assert "- The user asked me to remember that the build id is 42." in head["content"]
            assert items[1]["role"] == "user"  # whole turns follow the summary
        else:
            assert all(item.get("role") != "system" for item in items)

    async def test_the_first_message_is_recalled_from_the_summary(
        self, settings_factory, alice
    ) -> None:
        settings = settings_factory(AGENT_SESSION_MAX_MESSAGES=12)
        async with start_app(settings) as running, running.client() as client:
            thread_id = await create_thread(client, alice)
            await talk(client, alice, thread_id, "add task the very first", *fillers(6))
            await running.state["compactor"].wait_idle()
            (first,) = await talk(client, alice, thread_id, FIRST)
        assert first == 'You first said: "add task the very first"'


class TestExactness:
    @pytest.fixture
    def settings(self, settings_factory, private_database):
        return settings_factory(AGENT_SESSION_MAX_MESSAGES=12, DATABASE_URL=private_database)

    async def made_summary(self, running, client, alice) -> str:
        thread_id = await create_thread(client, alice)
        await talk(client, alice, thread_id, REMEMBER, *fillers(5))
        await running.state["compactor"].wait_idle()
        return thread_id

    async def test_a_summary_is_a_new_generation_recorded_in_both_stores(
        self, running, client, alice
    ) -> None:
        made = counted("made")
        thread_id = await self.made_summary(running, client, alice)
        row = await thread_row(running.sessionmaker, thread_id)
        items = await memory_items(running, alice, thread_id)
        user_id = await running.user_id(alice)
        async with running.memory_store.open(user_id, uuid.UUID(thread_id)) as memory:
            mark = await memory.read_mark()
            head = await memory.head()
        assert counted("made") > made
        assert row.memory_summary == items[0]["content"] == head.summary.text
        assert row.memory_summary_covers == head.summary.covers
        assert mark.generation == row.memory_generation
        # Six turns of 2 or 4 items each were sent; the cap is 12 (summary included).
        assert row.memory_item_count == len(items) <= 12
        report = await jobs.verify(running.state["job_context"])
        assert report["ok"] is True, report

    async def test_a_rebuild_from_the_log_reproduces_the_same_memory(
        self, running, client, alice
    ) -> None:
        thread_id = await self.made_summary(running, client, alice)
        before = await memory_items(running, alice, thread_id)
        await thread_admin.rebuild(running.state["job_context"], uuid.UUID(thread_id))
        after = await memory_items(running, alice, thread_id)
        assert after[0] == before[0]  # the same head, byte for byte
        assert after[0]["content"].startswith(SUMMARY_PREFIX)
        assert [i for i in after if i.get("role") == "user"] == [
            i for i in before if i.get("role") == "user"
        ]
        (recalled,) = await talk(client, alice, thread_id, RECALL)
        assert recalled == FACT

    async def test_a_crash_between_the_two_commits_is_rebuilt_with_the_recorded_summary(
        self, running, client, alice
    ) -> None:
        """The file committed a newer summary and generation; PostgreSQL did not (a crash):
        memory is ahead, and reconcile puts back PostgreSQL's summary."""
        thread_id = await self.made_summary(running, client, alice)
        row = await thread_row(running.sessionmaker, thread_id)
        user_id = await running.user_id(alice)
        async with running.memory_store.open(user_id, uuid.UUID(thread_id)) as memory:
            head = await memory.head()
            lost = dataclasses.replace(head.summary, text=head.summary.text + "\n- lost")
            await memory.put_summary(lost, generation=row.memory_generation + 1)
        ahead = RECOVERIES.labels("ahead")._value.get()
        report = await jobs.reconcile(running.state["job_context"])
        items = await memory_items(running, alice, thread_id)
        assert report["reasons"] == {"ahead": 1}
        assert RECOVERIES.labels("ahead")._value.get() == ahead + 1
        assert items[0]["content"] == row.memory_summary

    async def test_clearing_forgets_the_summary_and_what_it_covered(
        self, running, client, alice
    ) -> None:
        thread_id = await self.made_summary(running, client, alice)
        await thread_admin.clear(running.state["job_context"], uuid.UUID(thread_id))
        row = await thread_row(running.sessionmaker, thread_id)
        assert row.memory_summary is None
        assert row.memory_summary_covers == row.message_count
        await talk(client, alice, thread_id, *fillers(4))
        await running.state["compactor"].wait_idle()
        (recalled,) = await talk(client, alice, thread_id, RECALL)
        items = await memory_items(running, alice, thread_id)
        assert recalled == NO_FACT
        assert "build id" not in items[0]["content"]

    async def test_the_admin_view_shows_the_summary(self, running, client, alice, auth_for) -> None:
        thread_id = await self.made_summary(running, client, alice)
        row = await thread_row(running.sessionmaker, thread_id)
        response = await client.get(
            f"/api/admin/sessions/{thread_id}", headers=auth_for("ops", admin=True)
        )
        assert response.status_code == 200, response.text
        body = response.json()
        expected = {
            "chars": len(row.memory_summary),
            "made_at": row.memory_summary_at.isoformat().replace("+00:00", "Z"),
            "covers_messages": row.memory_summary_covers,
        }
        assert body["summary"] == expected
        assert body["file_summary"] == {
            **expected,
            "made_at": row.memory_summary_at.isoformat(),
        }

    async def test_the_prune_sweep_summarizes_after_the_cap_is_lowered(
        self, running, client, alice, settings_factory, private_database
    ) -> None:
        thread_id = await create_thread(client, alice)
        await talk(client, alice, thread_id, REMEMBER, *fillers(2))
        assert (await thread_row(running.sessionmaker, thread_id)).memory_summary is None
        lowered = settings_factory(AGENT_SESSION_MAX_MESSAGES=6, DATABASE_URL=private_database)
        totals = await jobs.prune(job_context(running, settings=lowered))
        row = await thread_row(running.sessionmaker, thread_id)
        assert totals["pruned"] == 1
        assert totals["summaries_made"] == 1
        assert "remember that the build id is 42." in row.memory_summary
        assert row.memory_item_count <= 6


def provider_settings(settings_factory, model_server, **overrides):
    return settings_factory(
        **{
            "MODEL_PROVIDER": "openai",
            "OPENAI_BASE_URL": model_server.base_url,
            "OPENAI_API": "chat_completions",
            "AGENT_SESSION_MAX_MESSAGES": 5,
            "MAX_TURN_SECONDS": 20,
            "OPENAI_TIMEOUT_SECONDS": 5,  # its retries must fit in a turn
            **overrides,
        }
    )


class TestWithARealModel:
    """The summarizer is the configured model, over real HTTP (the scripted model server).

    With a cap of 5 (4 items and the summary; a prune cuts back to 3), text turns of 2 items
    each: the third turn prunes the first two, and its summary is the request right after
    the turn's own; the fourth prunes nothing.
    """

    async def test_the_summary_is_made_by_the_model_and_sent_with_the_next_turn(
        self, model_server, settings_factory, alice
    ) -> None:
        settings = provider_settings(settings_factory, model_server)
        summary = "- The user said the build id is 42."
        spent = SUMMARY_TOKENS.labels("output")._value.get()
        async with start_app(settings) as running, running.client() as client:
            thread_id = await create_thread(client, alice)
            await talk(client, alice, thread_id, REMEMBER, "hello")
            model_server.enqueue(Text("Hi again."), Text(summary))
            await talk(client, alice, thread_id, "one more")
            await running.state["compactor"].wait_idle()
            items = await memory_items(running, alice, thread_id)
            await talk(client, alice, thread_id, "and now?")
        summary_request = model_server.model_requests[3]
        assert REMEMBER in str(summary_request.body["messages"])
        assert items[0]["content"] == f"{SUMMARY_PREFIX}\n{summary}"
        next_turn = model_server.model_requests[4].body["messages"]
        assert {"role": "system", "content": f"{SUMMARY_PREFIX}\n{summary}"} in next_turn
        assert SUMMARY_TOKENS.labels("output")._value.get() == spent + math.ceil(len(summary) / 4)

    @pytest.mark.parametrize(
        "failure", [Hang(), HttpError(400, "Invalid request")], ids=["hangs", "fails"]
    )
    async def test_a_failing_summarizer_leaves_the_cap_held_and_the_turn_unaffected(
        self, model_server, settings_factory, alice, failure
    ) -> None:
        settings = provider_settings(
            settings_factory, model_server, AGENT_SESSION_SUMMARY_TIMEOUT_SECONDS=1
        )
        failed = counted("failed")
        async with start_app(settings) as running, running.client() as client:
            thread_id = await create_thread(client, alice)
            await talk(client, alice, thread_id, REMEMBER, "hello")
            model_server.enqueue(Text("Saved anyway."), failure)
            (reply,) = await talk(client, alice, thread_id, "one more")
            # The reply was streamed and saved while the summary is still being made.
            assert running.state["compactor"]._tasks
            await running.state["compactor"].wait_idle()
            row = await thread_row(running.sessionmaker, thread_id)
            items = await memory_items(running, alice, thread_id)
            assert counted("failed") == failed + 1
            assert reply == "Saved anyway."
            assert row.memory_summary is None
            assert len(items) == row.memory_item_count == 2  # the cap held, with no summary
            assert items[0] == {"role": "user", "content": "one more"}
            # The next prune (the fifth turn's) retries, and folds in all four pruned turns.
            await talk(client, alice, thread_id, "again")
            model_server.enqueue(Text("Fine."), Text("- The build id is 42."))
            await talk(client, alice, thread_id, "and again")
            await running.state["compactor"].wait_idle()
            row = await thread_row(running.sessionmaker, thread_id)
        assert row.memory_summary == f"{SUMMARY_PREFIX}\n- The build id is 42."
        assert row.memory_summary_covers == 8  # four pruned turns, two messages each
        retry = str(model_server.model_requests[-1].body["messages"])
        assert [text in retry for text in (REMEMBER, "hello", "one more", "again")] == [True] * 4

    async def test_a_sweep_longer_than_the_idle_timeout_still_records_its_run(
        self, model_server, settings_factory, private_database, alice
    ) -> None:
        """The job's lock is held by a transaction left idle while the job works: a slow
        summary must not get it cut by DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_SECONDS."""
        settings = provider_settings(
            settings_factory,
            model_server,
            DATABASE_URL=private_database,
            DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_SECONDS=1,
            AGENT_SESSION_SUMMARY_TIMEOUT_SECONDS=2,
            AGENT_SESSION_MAX_MESSAGES=50,
        )
        async with start_app(settings) as running, running.client() as client:
            thread_id = await create_thread(client, alice)
            await talk(client, alice, thread_id, REMEMBER, "hello", "one more")
            lowered = job_context(
                running, settings=settings.model_copy(update={"AGENT_SESSION_MAX_MESSAGES": 5})
            )
            model_server.enqueue(Hang())
            run = await run_job("prune", lowered, trigger="test")
        assert run.status == RunStatus.SUCCEEDED, run.error
        assert run.counts == {
            "checked": 1,
            "pruned": 1,
            "items_removed": 4,
            "vacuumed": 0,
            "summaries_failed": 1,
        }
