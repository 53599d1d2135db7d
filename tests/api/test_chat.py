"""The chat turn end to end: HTTP, the SDK runner, the offline model, PostgreSQL and the
memory file, all real."""

from __future__ import annotations

import json
import uuid

import pytest
from asgi_lifespan import LifespanManager
from sqlmodel import select

from app.main import create_app
from app.models import Task
from tests.factories import create_thread, memory_items
from tests.sse import reply_text, send


async def log(client, headers, thread_id: str) -> list[dict]:
    response = await client.get(f"/api/threads/{thread_id}/messages?limit=100", headers=headers)
    return response.json()["data"]


class TestStreamedTurn:
    async def test_event_order_ids_and_payloads(self, client, alice) -> None:
        thread_id = await create_thread(client, alice)
        events = await send(client, thread_id, "add task buy milk", alice)
        names = [e.event for e in events]
        assert names[0] == "user_message"
        assert names[-2:] == ["assistant_message", "done"]
        assert names.index("tool_call") < names.index("tool_result") < names.index("text_delta")
        assert [e.id for e in events] == [str(n) for n in range(1, len(events) + 1)]
        user, final, done = events[0].data, events[-2].data, events[-1].data
        assert user["role"] == "user"
        assert user["content"] == "add task buy milk"
        assert user["thread_id"] == thread_id
        assert (
            "".join(e.data["delta"] for e in events if e.event == "text_delta") == final["content"]
        )
        assert final["content"] == 'Added "buy milk" to your tasks.'
        call = next(e.data for e in events if e.event == "tool_call")
        result = next(e.data for e in events if e.event == "tool_result")
        assert call["name"] == "add_task"
        assert json.loads(call["arguments"]) == {"title": "buy milk"}
        assert result["call_id"] == call["call_id"]
        assert json.loads(result["output"])["title"] == "buy milk"
        assert final["metadata"]["tool_calls"] == [
            {
                "call_id": call["call_id"],
                "name": "add_task",
                "arguments": call["arguments"],
                "output": result["output"],
            }
        ]
        assert final["metadata"]["usage"]["requests"] == 2
        assert final["metadata"]["usage"]["total_tokens"] > 0
        assert done == {"turn_id": final["metadata"]["turn_id"], "status": "completed"}

    async def test_both_messages_are_in_the_log_and_thread_bookkeeping_updates(
        self, client, alice, running
    ) -> None:
        thread_id = await create_thread(client, alice)
        events = await send(client, thread_id, "remember that tea is at 4", alice)
        logged = await log(client, alice, thread_id)
        assert [(m["role"], m["content"]) for m in logged] == [
            ("user", "remember that tea is at 4"),
            ("assistant", reply_text(events)),
        ]
        thread = (await client.get(f"/api/threads/{thread_id}", headers=alice)).json()
        assert thread["message_count"] == 2
        assert thread["last_activity_at"] >= logged[-1]["created_at"]
        from app.models import Thread

        async with running.sessionmaker() as db:
            row = await db.get_one(Thread, uuid.UUID(thread_id))
        assert row.memory_state == "active"
        assert row.memory_item_count == len(await memory_items(running, alice, thread_id)) == 2
        assert row.memory_bytes > 0
        assert row.active_turn_id is None


class TestMemory:
    async def test_agent_recalls_what_it_was_asked_to_remember(self, client, alice) -> None:
        thread_id = await create_thread(client, alice)
        await send(client, thread_id, "remember that the build id is 42", alice)
        await send(client, thread_id, "add task ship it", alice)
        events = await send(client, thread_id, "what did I ask you to remember?", alice)
        assert "the build id is 42" in reply_text(events)

    async def test_memory_is_per_thread(self, client, alice) -> None:
        first = await create_thread(client, alice)
        await send(client, first, "remember that the door code is 1234", alice)
        other = await create_thread(client, alice)
        events = await send(client, other, "what did I ask you to remember?", alice)
        assert "1234" not in reply_text(events)
        assert "haven't asked me to remember" in reply_text(events)

    async def test_memory_survives_a_restart_on_the_same_data_dir(
        self, client, alice, settings
    ) -> None:
        thread_id = await create_thread(client, alice)
        await send(client, thread_id, "remember that the deploy window is friday", alice)
        restarted = create_app(settings)
        async with LifespanManager(restarted) as manager:
            import httpx

            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as fresh:
                events = await send(fresh, thread_id, "what did I ask you to remember?", alice)
                first = await send(fresh, thread_id, "what did I say first?", alice)
        assert "the deploy window is friday" in reply_text(events)
        assert "remember that the deploy window is friday" in reply_text(first)

    async def test_tool_calls_land_in_memory_as_sdk_items(self, client, alice, running) -> None:
        thread_id = await create_thread(client, alice)
        await send(client, thread_id, "add task water plants", alice)
        await send(client, thread_id, "complete water plants", alice)
        items = await memory_items(running, alice, thread_id)
        kinds = [item.get("type", item.get("role")) for item in items]
        assert kinds[0] == "user"
        calls = [i for i in items if i.get("type") == "function_call"]
        outputs = [i for i in items if i.get("type") == "function_call_output"]
        assert [c["name"] for c in calls] == ["add_task", "list_tasks", "complete_task"]
        assert [o["call_id"] for o in outputs] == [c["call_id"] for c in calls]
        assert json.loads(outputs[-1]["output"])["done"] is True


class TestTaskIsolation:
    async def test_one_users_tasks_are_invisible_to_anothers_agent(
        self, client, alice, bob, running
    ) -> None:
        mine = await create_thread(client, alice)
        await send(client, mine, "add task alice's secret", alice)
        theirs = await create_thread(client, bob)
        assert reply_text(await send(client, theirs, "list tasks", bob)) == "You have no tasks."
        assert "alice's secret" not in reply_text(await send(client, theirs, "complete 1", bob))
        async with running.sessionmaker() as db:
            task = (await db.exec(select(Task).where(Task.title == "alice's secret"))).one()
        assert task.done is False
        assert task.user_id == await running.user_id(alice)


class TestValidation:
    @pytest.mark.parametrize(
        ("body", "status", "detail"),
        [
            ({"text": ""}, 422, "empty"),
            ({"text": "   \n"}, 422, "empty"),
            ({}, 422, "text"),
            ({"text": "hi", "extra": 1}, 422, "extra"),
            ({"text": 5}, 422, "text"),
        ],
    )
    async def test_bad_input_is_rejected_and_nothing_is_saved(
        self, client, alice, body, status, detail
    ) -> None:
        thread_id = await create_thread(client, alice)
        response = await client.post(f"/api/threads/{thread_id}/messages", json=body, headers=alice)
        assert response.status_code == status
        assert detail in response.json()["detail"]
        assert await log(client, alice, thread_id) == []

    async def test_over_long_message_is_413_naming_the_limit(self, client, alice, settings) -> None:
        thread_id = await create_thread(client, alice)
        text = "x" * (settings.MAX_MESSAGE_CHARS + 1)
        response = await client.post(
            f"/api/threads/{thread_id}/messages", json={"text": text}, headers=alice
        )
        assert response.status_code == 413
        assert f"limit is {settings.MAX_MESSAGE_CHARS}" in response.json()["detail"]
        assert await log(client, alice, thread_id) == []

    async def test_unknown_thread_is_404(self, client, alice) -> None:
        response = await client.post(
            f"/api/threads/{uuid.uuid4()}/messages", json={"text": "hi"}, headers=alice
        )
        assert response.status_code == 404


class TestJsonVariant:
    async def test_accept_json_returns_the_finished_turn(self, client, alice) -> None:
        thread_id = await create_thread(client, alice)
        response = await client.post(
            f"/api/threads/{thread_id}/messages",
            json={"text": "add task json"},
            headers={**alice, "Accept": "application/json"},
        )
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        body = response.json()
        assert body["user_message"]["content"] == "add task json"
        assert body["assistant_message"]["content"] == 'Added "json" to your tasks.'
        assert body["assistant_message"]["metadata"]["tool_calls"][0]["name"] == "add_task"
        assert body["error"] is None
        assert len(await log(client, alice, thread_id)) == 2
