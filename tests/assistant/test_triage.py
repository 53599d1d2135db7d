"""The triage example agent: a context-using tool, and a handoff to the todo agent."""

from __future__ import annotations

import json

import pytest
from sqlmodel import select

from app.assistant.offline_planner import plan_reply
from app.models import Task
from tests.conftest import start_app
from tests.factories import create_thread, memory_items
from tests.sse import send

AGENTS = "triage=app.assistant.triage:build_agent,todo=app.assistant.todo:build_agent"


def shape(items: list[dict]) -> list[tuple[str, str]]:
    """What memory holds, without the ids a rebuild does not keep."""
    return [
        (item.get("role") or item["type"], item.get("name") or item.get("call_id") or "")
        for item in items
    ]


class TestTriageAgent:
    async def test_a_task_request_is_handed_to_the_todo_agent(
        self, settings_factory, alice
    ) -> None:
        async with (
            start_app(settings_factory(AGENTS=AGENTS)) as running,
            running.client() as client,
        ):
            thread_id = await create_thread(client, alice)
            events = await send(client, thread_id, "add task buy milk", alice)
            items = await memory_items(running, alice, thread_id)
            async with running.sessionmaker() as db:
                tasks = (await db.exec(select(Task.title))).all()
        calls = [(e.event, e.data["name"]) for e in events if e.event.startswith("tool")]
        assert calls == [
            ("tool_call", "transfer_to_todo"),
            ("tool_result", "transfer_to_todo"),
            ("tool_call", "add_task"),
            ("tool_result", "add_task"),
        ]
        (reply,) = [e.data for e in events if e.event == "assistant_message"]
        assert reply["content"] == 'Added "buy milk" to your tasks.'
        assert reply["metadata"]["agent"] == "Threadkeeper"
        handoff, added = reply["metadata"]["tool_calls"]
        assert (handoff["name"], json.loads(handoff["output"])) == (
            "transfer_to_todo",
            {"assistant": "Threadkeeper"},
        )
        assert added["name"] == "add_task"
        assert "buy milk" in tasks
        # Memory keeps the handoff as the SDK wrote it: a call and its output, paired.
        assert shape(items) == [
            ("user", ""),
            ("function_call", "transfer_to_todo"),
            ("function_call_output", handoff["call_id"]),
            ("function_call", "add_task"),
            ("function_call_output", added["call_id"]),
            ("assistant", ""),
        ]

    async def test_thread_info_reads_the_callers_thread_through_the_run_context(
        self, settings_factory, alice
    ) -> None:
        async with (
            start_app(settings_factory(AGENTS=AGENTS)) as running,
            running.client() as client,
        ):
            thread = (
                await client.post("/api/threads", json={"title": "Errands"}, headers=alice)
            ).json()
            await send(client, thread["id"], "remember that the shop closes at 6", alice)
            events = await send(client, thread["id"], "thread info", alice)
        (reply,) = [e.data for e in events if e.event == "assistant_message"]
        assert reply["content"] == (
            f'This thread is "Errands": 3 messages since {thread["created_at"][:10]}.'
        )
        assert reply["metadata"]["agent"] == "Triage"

    async def test_a_rebuilt_memory_keeps_the_handoff(
        self, settings_factory, alice, auth_for
    ) -> None:
        async with (
            start_app(settings_factory(AGENTS=AGENTS)) as running,
            running.client() as client,
        ):
            thread_id = await create_thread(client, alice)
            await send(client, thread_id, "add task call mom", alice)
            before = await memory_items(running, alice, thread_id)
            rebuilt = await client.post(
                f"/api/admin/sessions/{thread_id}/rebuild", headers=auth_for("ops", admin=True)
            )
            assert rebuilt.status_code == 200, rebuilt.text
            after = await memory_items(running, alice, thread_id)
            events = await send(client, thread_id, "list tasks", alice)
        assert shape(after) == shape(before)
        (reply,) = [e.data for e in events if e.event == "assistant_message"]
        assert reply["content"] == "Your tasks:\n1. [ ] call mom"


class TestHandoffGrammar:
    @pytest.mark.parametrize("request_text", ["add task x", "list tasks", "complete 1"])
    def test_a_task_request_without_task_tools_takes_the_handoff(self, request_text) -> None:
        reply = plan_reply(request_text, {"thread_info", "transfer_to_todo"})
        assert (reply.tool, reply.arguments) == ("transfer_to_todo", {})

    def test_after_the_handoff_the_todo_agent_acts_on_the_same_request(self) -> None:
        items = [
            {"role": "user", "content": "add task x"},
            {
                "type": "function_call",
                "call_id": "c1",
                "name": "transfer_to_todo",
                "arguments": "{}",
            },
            {"type": "function_call_output", "call_id": "c1", "output": '{"assistant": "T"}'},
        ]
        reply = plan_reply(items, {"add_task", "list_tasks"})
        assert (reply.tool, reply.arguments) == ("add_task", {"title": "x"})

    def test_without_tools_or_handoffs_it_says_what_is_missing(self) -> None:
        reply = plan_reply("add task x", set())
        assert reply.text == "I can't add that task right now: the add_task tool isn't available."
        reply = plan_reply("thread info", {"add_task", "list_tasks"})
        assert reply.text == "I can't look at this thread: the thread_info tool isn't available."
