"""A turn's life beyond the happy path: concurrency, disconnects, failures, and any Model.

These drive the app with `agents.testing.ScriptedModel`, whose async responders let a test
hold a turn open at an exact point (an event, never a sleep).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
from agents import ModelBehaviorError
from agents.testing import ModelStep, ScriptedModel, assistant_message, function_call
from sqlmodel import select

from app.models import Task
from tests.conftest import RunningApp, start_app
from tests.factories import create_thread, logged, memory_items
from tests.gates import Gate
from tests.sse import iter_events, reply_text, send


class TestOneTurnAtATime:
    async def test_second_send_and_delete_during_a_turn_are_409(self, settings, alice) -> None:
        gate = Gate("first reply")
        model = ScriptedModel([gate.step(), ModelStep(output=[assistant_message("second reply")])])
        async with start_app(settings, model=model) as running, running.client() as client:
            thread_id = await create_thread(client, alice)
            first = asyncio.create_task(send(client, thread_id, "one", alice))
            await gate.entered.wait()
            busy = await client.post(
                f"/api/threads/{thread_id}/messages", json={"text": "two"}, headers=alice
            )
            assert busy.status_code == 409
            assert busy.json()["error"] == "ConflictError"
            assert (
                await client.delete(f"/api/threads/{thread_id}", headers=alice)
            ).status_code == 409
            gate.opened.set()
            assert reply_text(await first) == "first reply"
            assert reply_text(await send(client, thread_id, "three", alice)) == "second reply"
            assert await logged(client, alice, thread_id) == [
                ("user", "one"),
                ("assistant", "first reply"),
                ("user", "three"),
                ("assistant", "second reply"),
            ]

    async def test_lease_is_shared_by_separate_app_instances(self, settings, alice) -> None:
        # Two apps = two workers: the lease lives in PostgreSQL, not in process memory.
        gate = Gate("slow")
        async with (
            start_app(settings, model=ScriptedModel([gate.step()])) as worker_a,
            start_app(settings, model=ScriptedModel([])) as worker_b,
            worker_a.client() as client_a,
            worker_b.client() as client_b,
        ):
            thread_id = await create_thread(client_a, alice)
            first = asyncio.create_task(send(client_a, thread_id, "hold", alice))
            await gate.entered.wait()
            response = await client_b.post(
                f"/api/threads/{thread_id}/messages", json={"text": "x"}, headers=alice
            )
            assert response.status_code == 409
            gate.opened.set()
            await first


class TestClientDisconnect:
    async def test_turn_finishes_and_is_saved_in_both_stores(self, settings, alice) -> None:
        gate = Gate("finished without you")
        async with (
            start_app(settings, model=ScriptedModel([gate.step()])) as running,
            running.client() as client,
        ):
            thread_id = await create_thread(client, alice)
            chunks = await _post_then_disconnect(running, alice, thread_id, "are you there?")
            assert b"event: user_message" in chunks[0]
            assert not any(b"assistant_message" in c for c in chunks)
            gate.opened.set()
            await running.turn_runner.wait_idle()
            assert await logged(client, alice, thread_id) == [
                ("user", "are you there?"),
                ("assistant", "finished without you"),
            ]
            items = await memory_items(running, alice, thread_id)
            assert items[0] == {"role": "user", "content": "are you there?"}
            assert items[-1]["content"][0]["text"] == "finished without you"


async def _post_then_disconnect(
    running: RunningApp, headers, thread_id: str, text: str
) -> list[bytes]:
    """Drive the ASGI app directly and hang up right after the first event."""
    body = json.dumps({"text": text}).encode()
    hang_up = asyncio.Event()
    chunks: list[bytes] = []
    sent_body = False

    async def receive() -> dict[str, Any]:
        nonlocal sent_body
        if not sent_body:
            sent_body = True
            return {"type": "http.request", "body": body, "more_body": False}
        await hang_up.wait()
        return {"type": "http.disconnect"}

    async def send_message(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body" and message.get("body"):
            chunks.append(message["body"])
            hang_up.set()

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": f"/api/threads/{thread_id}/messages",
        "raw_path": b"",
        "query_string": b"",
        "root_path": "",
        "client": ("127.0.0.1", 50000),
        "server": ("test", 80),
        "headers": [
            (b"authorization", headers["Authorization"].encode()),
            (b"content-type", b"application/json"),
        ],
    }
    await running.asgi(scope, receive, send_message)
    return chunks


class TestFailedTurn:
    async def test_model_failure_streams_an_error_and_keeps_stores_in_step(
        self, settings, alice
    ) -> None:
        model = ScriptedModel(
            [
                ModelStep.raise_error(ModelBehaviorError("garbled")),
                ModelStep(output=[assistant_message("back to normal")]),
            ]
        )
        async with start_app(settings, model=model) as running, running.client() as client:
            thread_id = await create_thread(client, alice)
            events = await send(client, thread_id, "first try", alice)
            assert [e.event for e in events] == ["user_message", "error", "done"]
            assert events[1].data == {
                "code": "model_error",
                "message": "The model returned an unusable reply",
                "retryable": True,
            }
            assert events[2].data["status"] == "failed"
            # The user's message is kept in both stores; no half reply in either.
            assert await logged(client, alice, thread_id) == [("user", "first try")]
            assert await memory_items(running, alice, thread_id) == [
                {"role": "user", "content": "first try"}
            ]
            # The lease was released: the thread takes its next turn.
            assert reply_text(await send(client, thread_id, "again", alice)) == "back to normal"
            assert [
                i.get("content") for i in (await memory_items(running, alice, thread_id))[:2]
            ] == [
                "first try",
                "again",
            ]

    async def test_json_variant_reports_a_retryable_failure_as_503(self, settings, alice) -> None:
        model = ScriptedModel([ModelStep.raise_error(ModelBehaviorError("garbled"))])
        async with start_app(settings, model=model) as running, running.client() as client:
            thread_id = await create_thread(client, alice)
            response = await client.post(
                f"/api/threads/{thread_id}/messages",
                json={"text": "hi"},
                headers={**alice, "Accept": "application/json"},
            )
            assert response.status_code == 503
            assert response.headers["retry-after"] == "5"
            body = response.json()
            assert body["error"] == "TurnFailed"
            assert body["code"] == "model_error"
            assert body["turn"]["user_message"]["content"] == "hi"


class TestAnyModel:
    async def test_scripted_model_drives_the_same_agent_tools_and_memory(
        self, settings, alice
    ) -> None:
        model = ScriptedModel(
            [
                ModelStep(
                    output=[function_call("add_task", {"title": "scripted"}, call_id="call_1")]
                ),
                ModelStep(output=[assistant_message("Added it.")]),
                ModelStep(output=[assistant_message("I remember.")]),
            ]
        )
        async with start_app(settings, model=model) as running, running.client() as client:
            thread_id = await create_thread(client, alice)
            events = await send(client, thread_id, "please add scripted", alice)
            assert [e.event for e in events if e.event.startswith("tool")] == [
                "tool_call",
                "tool_result",
            ]
            assert reply_text(events) == "Added it."
            await send(client, thread_id, "and now?", alice)
            async with running.sessionmaker() as db:
                task = (await db.exec(select(Task).where(Task.title == "scripted"))).one()
            assert task.user_id == await running.user_id(alice)
            # The third call saw the whole first turn from memory, tool call included.
            history = model.last_call.input
            assert history[0] == {"role": "user", "content": "please add scripted"}
            assert any(
                i.get("type") == "function_call_output" and i["call_id"] == "call_1"
                for i in history
            )


class TestModelProviders:
    @pytest.mark.allow_model_client
    def test_openai_settings_build_openai_models_without_calling_them(
        self, settings_factory
    ) -> None:
        from agents import OpenAIChatCompletionsModel, OpenAIResponsesModel

        from app.assistant.offline_model import OfflineModel
        from app.assistant.provider import build_model

        assert isinstance(build_model(settings_factory()), OfflineModel)
        hosted = build_model(settings_factory(MODEL_PROVIDER="openai", OPENAI_API_KEY="sk-test"))
        assert isinstance(hosted, OpenAIResponsesModel)
        local = build_model(
            settings_factory(
                MODEL_PROVIDER="openai",
                OPENAI_BASE_URL="http://127.0.0.1:11434/v1",
                MODEL="llama3.2",
            )
        )
        assert isinstance(local, OpenAIChatCompletionsModel)
        assert str(local._client.base_url) == "http://127.0.0.1:11434/v1/"
        assert local.model == "llama3.2"

    def test_building_a_network_client_fails_the_test(self) -> None:
        import openai

        with pytest.raises(pytest.fail.Exception, match="network model client"):
            openai.AsyncOpenAI(api_key="sk-test")


class TestResume:
    async def test_resume_after_last_event_id_replays_then_follows_live(
        self, settings, alice, bob
    ) -> None:
        gate = Gate("resumed reply")
        async with (
            start_app(settings, model=ScriptedModel([gate.step()])) as running,
            running.client() as client,
        ):
            thread_id = await create_thread(client, alice)
            original = asyncio.create_task(send(client, thread_id, "keep going", alice))
            await gate.entered.wait()
            turn_id = next(iter(running.turn_runner._running))
            url = f"/api/threads/{thread_id}/turns/{turn_id}/events"

            async def resume(headers: dict[str, str]) -> list:
                async with client.stream("GET", url, headers=headers) as response:
                    assert response.status_code == 200
                    return [e async for e in iter_events(response)]

            resumed = asyncio.create_task(resume({**alice, "Last-Event-ID": "1"}))
            await asyncio.sleep(0)
            gate.opened.set()
            full, tail = await original, await resumed
            assert [e.id for e in tail] == [e.id for e in full[1:]]
            assert [e.data for e in tail] == [e.data for e in full[1:]]
            assert tail[-1].event == "done"
            # Another user, an unknown turn, or another thread's id: all 404.
            assert (await client.get(url, headers=bob)).status_code == 404
            other = f"/api/threads/{thread_id}/turns/{uuid.uuid4()}/events"
            assert (await client.get(other, headers=alice)).status_code == 404
            elsewhere = await create_thread(client, alice)
            moved = f"/api/threads/{elsewhere}/turns/{turn_id}/events"
            assert (await client.get(moved, headers=alice)).status_code == 404
