"""Grammar mode: the server answers from the history each request carries.

So recall works exactly when the caller sends the history (an SDK session does), and the
todo agent's tools and memory work end to end through the app's real provider path.
"""

from __future__ import annotations

import pytest
from agents import SQLiteSession

from tests.conftest import start_app
from tests.model_server.sdk import MODEL_FACTORIES, agent, run_streamed
from tests.sse import iter_events

APIS = list(MODEL_FACTORIES)
REMEMBER = "remember that the build id is 42"
RECALL = "what did I ask you to remember?"


@pytest.mark.parametrize("api", APIS)
class TestRecallThroughTheSdk:
    async def test_a_session_carries_the_history_so_the_second_run_recalls(
        self, model_server, model_client, api, tmp_path
    ) -> None:
        assistant = agent(MODEL_FACTORIES[api](model_client))
        session = SQLiteSession("thread", tmp_path / "memory.db")
        try:
            first = await run_streamed(assistant, REMEMBER, session=session)
            second = await run_streamed(assistant, RECALL, session=session)
        finally:
            session.close()
        assert first.result.final_output == "Got it \u2014 I'll remember that the build id is 42."
        assert second.result.final_output == "You asked me to remember: that the build id is 42."

    async def test_without_the_history_the_second_run_has_nothing_to_recall(
        self, model_server, model_client, api
    ) -> None:
        assistant = agent(MODEL_FACTORIES[api](model_client))
        await run_streamed(assistant, REMEMBER)
        second = await run_streamed(assistant, RECALL)
        assert second.result.final_output == "You haven't asked me to remember anything yet."


async def turn(client, thread_id: str, text: str, headers) -> tuple[str, list[str]]:
    """Send one message through the app; return the reply and the tools it called."""
    async with client.stream(
        "POST", f"/api/threads/{thread_id}/messages", json={"text": text}, headers=headers
    ) as response:
        events = [event async for event in iter_events(response)]
    (final,) = [e.data for e in events if e.event == "assistant_message"]
    return final["content"], [e.data["name"] for e in events if e.event == "tool_call"]


@pytest.mark.parametrize("api", ["chat_completions", "responses"])
class TestTheTodoAgentThroughTheProvider:
    async def test_tools_and_memory_work_end_to_end(
        self, model_server, settings_factory, alice, api
    ) -> None:
        settings = settings_factory(
            MODEL_PROVIDER="openai", OPENAI_BASE_URL=model_server.base_url, OPENAI_API=api
        )
        async with start_app(settings) as running, running.client() as client:
            thread_id = (await client.post("/api/threads", headers=alice)).json()["id"]
            turns = [
                await turn(client, thread_id, text, alice)
                for text in (
                    "add task buy milk",
                    "list tasks",
                    REMEMBER,
                    "complete buy milk",
                    RECALL,
                )
            ]
        assert turns == [
            ('Added "buy milk" to your tasks.', ["add_task"]),
            ("Your tasks:\n1. [ ] buy milk", ["list_tasks"]),
            ("Got it \u2014 I'll remember that the build id is 42.", []),
            ('Marked "buy milk" as done.', ["list_tasks", "complete_task"]),
            ("You asked me to remember: that the build id is 42.", []),
        ]
        path = "/v1/chat/completions" if api == "chat_completions" else "/v1/responses"
        assert [r.path for r in model_server.model_requests] == [path] * 9
