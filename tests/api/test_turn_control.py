"""Turns a client controls and can see: statuses, stop, retry, and what a failed turn keeps."""

from __future__ import annotations

import asyncio
import uuid

from agents import ModelBehaviorError
from agents.testing import ModelStep, ScriptedModel, assistant_message, function_call
from sqlmodel import select

from app.models import Task, Thread, Turn, TurnStatus
from tests.conftest import start_app
from tests.factories import create_thread, logged, memory_items
from tests.gates import Gate, StallingModel
from tests.sse import iter_events, reply_text, send


async def messages_of(client, headers, thread_id: str) -> list[dict]:
    response = await client.get(f"/api/threads/{thread_id}/messages?limit=100", headers=headers)
    return response.json()["data"]


class TestTurnStatus:
    async def test_a_completed_turn_shows_on_the_thread_and_its_messages(
        self, client, alice
    ) -> None:
        thread_id = await create_thread(client, alice)
        events = await send(client, thread_id, "list tasks", alice)
        turn_id = events[0].data["turn_id"]
        assert events[0].data["turn_status"] == "running"
        assert events[-1].data == {"turn_id": turn_id, "status": "completed"}
        thread = (await client.get(f"/api/threads/{thread_id}", headers=alice)).json()
        assert (thread["last_turn_id"], thread["last_turn_status"]) == (turn_id, "completed")
        assert [
            (m["role"], m["turn_id"], m["turn_status"])
            for m in await messages_of(client, alice, thread_id)
        ] == [("user", turn_id, "completed"), ("assistant", turn_id, "completed")]

    async def test_a_turn_a_crash_left_running_is_marked_failed_by_the_next(
        self, running, client, alice
    ) -> None:
        thread_id = await create_thread(client, alice)
        await send(client, thread_id, "list tasks", alice)
        first = (await messages_of(client, alice, thread_id))[0]["turn_id"]
        async with running.sessionmaker() as db:  # what kill -9 mid-turn leaves behind
            turn = await db.get_one(Turn, uuid.UUID(first))
            turn.status = TurnStatus.RUNNING
            db.add(turn)
            await db.commit()
        from app.models import Thread

        async with running.sessionmaker() as db:
            thread = await db.get_one(Thread, uuid.UUID(thread_id))
            thread.last_turn_status = TurnStatus.RUNNING
            db.add(thread)
            await db.commit()
        await send(client, thread_id, "list tasks", alice)
        async with running.sessionmaker() as db:
            crashed = await db.get_one(Turn, uuid.UUID(first))
        assert (crashed.status, crashed.error_code) == ("failed", "interrupted")


class TestFailedTurnKeepsWhatItDid:
    async def test_completed_tool_calls_are_kept_in_both_stores(self, settings, alice) -> None:
        model = ScriptedModel(
            [
                ModelStep(output=[function_call("add_task", {"title": "once"}, call_id="call_1")]),
                ModelStep.raise_error(ModelBehaviorError("garbled after the tool ran")),
                ModelStep(output=[assistant_message("I see it is already added.")]),
            ]
        )
        async with start_app(settings, model=model) as running, running.client() as client:
            thread_id = await create_thread(client, alice)
            events = await send(client, thread_id, "add task once", alice)
            assert [e.event for e in events][-2:] == ["error", "done"]
            assert events[-1].data["status"] == "failed"
            log = await messages_of(client, alice, thread_id)
            assert [(m["role"], m["turn_status"]) for m in log] == [
                ("user", "failed"),
                ("assistant", "failed"),
            ]
            kept = log[1]["metadata"]
            assert (kept["status"], kept["error"]) == ("failed", "model_error")
            assert [(c["call_id"], c["name"]) for c in kept["tool_calls"]] == [
                ("call_1", "add_task")
            ]
            memory = await memory_items(running, alice, thread_id)
            assert memory[0] == {"role": "user", "content": "add task once"}
            assert [(i.get("type"), i.get("call_id")) for i in memory[1:]] == [
                ("function_call", "call_1"),
                ("function_call_output", "call_1"),
            ]
            # The next turn's model sees the call already made (so it does not make it again).
            assert reply_text(await send(client, thread_id, "did it work?", alice)) == (
                "I see it is already added."
            )
            seen = model.last_call.input
            assert any(i.get("type") == "function_call_output" for i in seen)
            user_id = await running.user_id(alice)
            async with running.sessionmaker() as db:
                added = (
                    await db.exec(select(Task).where(Task.user_id == user_id, Task.title == "once"))
                ).all()
            assert len(added) == 1  # the completed call was not run again

    async def test_a_failure_before_any_tool_keeps_only_the_user_message(
        self, settings, alice
    ) -> None:
        model = ScriptedModel([ModelStep.raise_error(ModelBehaviorError("garbled"))])
        async with start_app(settings, model=model) as running, running.client() as client:
            thread_id = await create_thread(client, alice)
            await send(client, thread_id, "first try", alice)
            assert await logged(client, alice, thread_id) == [("user", "first try")]
            assert await memory_items(running, alice, thread_id) == [
                {"role": "user", "content": "first try"}
            ]


class TestStop:
    async def test_stop_keeps_the_same_partial_reply_in_both_stores(self, settings, alice) -> None:
        model = StallingModel(deltas=3)
        async with start_app(settings, model=model) as running, running.client() as client:
            thread_id = await create_thread(client, alice)
            sending = asyncio.create_task(send(client, thread_id, "help", alice))
            await model.streamed.wait()
            (turn_id,) = [str(t) for t in running.turn_runner._running]
            stop = await client.post(
                f"/api/threads/{thread_id}/turns/{turn_id}/cancel", headers=alice
            )
            assert stop.status_code == 202
            assert stop.json() == {"turn_id": turn_id, "status": "cancelling"}
            events = await sending
            streamed = "".join(e.data["delta"] for e in events if e.event == "text_delta")
            assert streamed.startswith("I'm Threadkeeper")
            assert [e.event for e in events][-2:] == ["assistant_message", "done"]
            assert events[-1].data == {"turn_id": turn_id, "status": "cancelled"}
            kept = events[-2].data
            assert kept["content"] == streamed
            assert (kept["metadata"]["status"], kept["turn_status"]) == ("cancelled", "cancelled")
            assert await logged(client, alice, thread_id) == [
                ("user", "help"),
                ("assistant", streamed),
            ]
            assert await memory_items(running, alice, thread_id) == [
                {"role": "user", "content": "help"},
                {"role": "assistant", "content": streamed},
            ]
            again = await client.post(
                f"/api/threads/{thread_id}/turns/{turn_id}/cancel", headers=alice
            )
            assert again.status_code == 409
            # The thread takes its next turn, and the model saw the partial reply.
            assert reply_text(await send(client, thread_id, "what did I say first?", alice)) == (
                'You first said: "help"'
            )

    async def test_unknown_turn_is_404_and_the_thread_keeps_working(self, client, alice) -> None:
        thread_id = await create_thread(client, alice)
        response = await client.post(
            f"/api/threads/{thread_id}/turns/{uuid.uuid4()}/cancel", headers=alice
        )
        assert response.status_code == 404
        assert response.json()["error"] == "NotFoundError"


class TestRetry:
    async def test_retry_rewinds_both_stores_so_the_discarded_reply_is_forgotten(
        self, running, client, alice
    ) -> None:
        thread_id = await create_thread(client, alice)
        first = await send(client, thread_id, "remember that A is 1", alice)
        await send(client, thread_id, "remember that B is 2", alice)
        message_id = first[0].data["id"]
        events = await send_retry(client, thread_id, message_id, alice)
        assert events[0].event == "user_message"
        assert (events[0].data["id"], events[0].data["turn_status"]) == (message_id, "running")
        assert events[-1].data["status"] == "completed"
        assert await logged(client, alice, thread_id) == [
            ("user", "remember that A is 1"),
            ("assistant", "Got it \u2014 I'll remember that A is 1."),
        ]
        recall = await send(client, thread_id, "what did I ask you to remember?", alice)
        assert reply_text(recall) == "You asked me to remember: that A is 1."
        thread = (await client.get(f"/api/threads/{thread_id}", headers=alice)).json()
        assert thread["message_count"] == 4

    async def test_retry_of_a_turn_memory_no_longer_holds_rebuilds_from_the_log(
        self, settings_factory, alice
    ) -> None:
        settings = settings_factory(AGENT_SESSION_MAX_MESSAGES=4, AGENT_SESSION_COMPACTION="off")
        async with start_app(settings) as running, running.client() as client:
            thread_id = await create_thread(client, alice)
            first = await send(client, thread_id, "remember that A is 1", alice)
            for fact in ("B is 2", "C is 3"):
                await send(client, thread_id, f"remember that {fact}", alice)
            assert len(await memory_items(running, alice, thread_id)) == 4  # A was pruned
            await send_retry(client, thread_id, first[0].data["id"], alice)
            memory = await memory_items(running, alice, thread_id)
            assert [(i.get("role"), i.get("type", "message")) for i in memory] == [
                ("user", "message"),
                ("assistant", "message"),
            ]
            assert memory[0]["content"] == "remember that A is 1"
            assert await logged(client, alice, thread_id) == [
                ("user", "remember that A is 1"),
                ("assistant", "Got it \u2014 I'll remember that A is 1."),
            ]

    async def test_retry_of_a_message_a_summary_covers_drops_the_summary(
        self, settings_factory, alice
    ) -> None:
        """The summary stands for the first messages of the log; a retry from one of them
        discards what it summarized, so memory is rebuilt from the log without it."""
        settings = settings_factory(AGENT_SESSION_MAX_MESSAGES=4)  # compaction on (default)
        async with start_app(settings) as running, running.client() as client:
            thread_id = await create_thread(client, alice)
            first = await send(client, thread_id, "remember that A is 1", alice)
            for fact in ("B is 2", "C is 3"):
                await send(client, thread_id, f"remember that {fact}", alice)
            await running.state["compactor"].wait_idle()
            before = await memory_items(running, alice, thread_id)
            assert before[0]["role"] == "system"  # the summary of the pruned first turn
            assert "remember that A is 1" in before[0]["content"]
            await send_retry(client, thread_id, first[0].data["id"], alice)
            memory = await memory_items(running, alice, thread_id)
            async with running.sessionmaker() as db:
                row = await db.get_one(Thread, uuid.UUID(thread_id))
        assert [i.get("role") for i in memory] == ["user", "assistant"]
        assert memory[0]["content"] == "remember that A is 1"
        assert memory[1]["content"][0]["text"] == "Got it \u2014 I'll remember that A is 1."
        assert (row.memory_summary, row.memory_summary_covers, row.message_count) == (None, 0, 2)

    async def test_retry_refuses_what_it_cannot_retry(self, client, alice, bob) -> None:
        thread_id = await create_thread(client, alice)
        events = await send(client, thread_id, "list tasks", alice)
        reply_id = events[-2].data["id"]
        not_user = await client.post(
            f"/api/threads/{thread_id}/messages/{reply_id}/retry", headers=alice
        )
        assert not_user.status_code == 422
        unknown = await client.post(
            f"/api/threads/{thread_id}/messages/{uuid.uuid4()}/retry", headers=alice
        )
        assert unknown.status_code == 404
        assert unknown.json()["error"] == "NotFoundError"
        assert await logged(client, alice, thread_id) == [
            ("user", "list tasks"),
            ("assistant", reply_text(events)),
        ]

    async def test_retry_while_a_turn_runs_is_409(self, settings, alice) -> None:
        gate = Gate("slow")
        model = ScriptedModel([ModelStep(output=[assistant_message("first")]), gate.step()])
        async with start_app(settings, model=model) as running, running.client() as client:
            thread_id = await create_thread(client, alice)
            first = await send(client, thread_id, "one", alice)
            second = asyncio.create_task(send(client, thread_id, "two", alice))
            await gate.entered.wait()
            busy = await client.post(
                f"/api/threads/{thread_id}/messages/{first[0].data['id']}/retry", headers=alice
            )
            assert busy.status_code == 409
            gate.opened.set()
            await second
            assert [role for role, _ in await logged(client, alice, thread_id)] == [
                "user",
                "assistant",
                "user",
                "assistant",
            ]
            del running


async def send_retry(client, thread_id: str, message_id: str, headers) -> list:
    url = f"/api/threads/{thread_id}/messages/{message_id}/retry"
    async with client.stream("POST", url, headers=headers) as response:
        assert response.status_code == 200, await response.aread()
        return [e async for e in iter_events(response)]


class TestThreadStatusAndMetadata:
    async def test_archive_filter_and_metadata(self, client, alice) -> None:
        kept = await create_thread(client, alice, "kept")
        old = await create_thread(client, alice, "old")
        patched = await client.patch(
            f"/api/threads/{old}",
            json={"status": "archived", "metadata": {"color": "blue", "pinned": True}},
            headers=alice,
        )
        assert patched.status_code == 200
        body = patched.json()
        assert (body["title"], body["status"]) == ("old", "archived")
        assert body["metadata"] == {"color": "blue", "pinned": True}

        async def listed(status: str) -> list[str]:
            response = await client.get(f"/api/threads?status={status}", headers=alice)
            return [t["id"] for t in response.json()["data"]]

        assert await listed("archived") == [old]
        assert await listed("active") == [kept]
        restored = await client.patch(
            f"/api/threads/{old}", json={"status": "active"}, headers=alice
        )
        assert restored.json()["metadata"] == {"color": "blue", "pinned": True}
        assert restored.json()["title"] == "old"

    async def test_metadata_over_the_limit_or_unstorable_is_422(self, client, alice) -> None:
        thread_id = await create_thread(client, alice)
        too_big = await client.patch(
            f"/api/threads/{thread_id}", json={"metadata": {"x": "y" * 9000}}, headers=alice
        )
        assert too_big.status_code == 422
        assert "MAX_THREAD_METADATA_BYTES" in too_big.json()["detail"]
        bad = await client.post(
            "/api/threads",
            content=b'{"metadata": {"k": "a\\u0000b"}}',
            headers={**alice, "content-type": "application/json"},
        )
        assert bad.status_code == 422
        assert bad.json()["detail"].startswith("metadata: ")
        unknown = await client.get("/api/threads?status=deleted", headers=alice)
        assert unknown.status_code == 422
