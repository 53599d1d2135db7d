"""The real provider path end to end: the app, the `openai` client and the SDK's OpenAI models
over HTTP to the scripted OpenAI-compatible server (grammar mode: it answers like the offline
model from the history each request carries), for Chat Completions and Responses alike."""

from __future__ import annotations

from typing import Any

import pytest
from sqlmodel import select

from app.assistant.offline_grammar import HELP_TEXT
from app.models import Task
from tests.conftest import start_app
from tests.factories import create_thread, logged, memory_items
from tests.logs import app_logs, lines
from tests.model_server.history import (
    chat_instructions,
    chat_items,
    estimate_tokens,
    prompt_text,
)
from tests.sse import reply_text, send

APIS = ["chat_completions", "responses"]


def call_ids_sent(body: dict[str, Any]) -> list[tuple[str, str]]:
    """The (kind, call id) of every tool call and tool output a request carried."""
    sent = []
    for message in body.get("messages") or []:
        for call in message.get("tool_calls") or []:
            sent.append(("call", call["id"]))
        if message.get("role") == "tool":
            sent.append(("output", message["tool_call_id"]))
    for item in body.get("input") or []:
        if item.get("type") == "function_call":
            sent.append(("call", item["call_id"]))
        elif item.get("type") == "function_call_output":
            sent.append(("output", item["call_id"]))
    return sent


def user_texts_sent(body: dict[str, Any]) -> list[str]:
    items = body.get("messages") or body.get("input") or []
    return [item["content"] for item in items if item.get("role") == "user"]


@pytest.mark.parametrize("api", APIS)
class TestProviderPath:
    async def test_text_streams_in_deltas_that_make_the_saved_reply(
        self, provider_settings, model_server, alice, api
    ) -> None:
        async with start_app(provider_settings(api)) as running, running.client() as client:
            thread_id = await create_thread(client, alice)
            events = await send(client, thread_id, "help", alice)
        deltas = [e.data["delta"] for e in events if e.event == "text_delta"]
        assert "".join(deltas) == reply_text(events) == HELP_TEXT
        (request,) = model_server.model_requests
        assert request.path == ("/v1/chat/completions" if api == APIS[0] else "/v1/responses")
        assert request.body["stream"] is True
        assert request.headers["authorization"] == "Bearer sk-test-model-server"

    async def test_a_tool_call_and_its_output_share_the_providers_call_id(
        self, provider_settings, model_server, alice, api
    ) -> None:
        async with start_app(provider_settings(api)) as running, running.client() as client:
            thread_id = await create_thread(client, alice)
            events = await send(client, thread_id, "add task buy milk", alice)
            async with running.sessionmaker() as db:
                titles = (await db.exec(select(Task.title))).all()
        (call,) = [e.data for e in events if e.event == "tool_call"]
        (result,) = [e.data for e in events if e.event == "tool_result"]
        (reply,) = [e.data for e in events if e.event == "assistant_message"]
        assert (call["name"], call["arguments"]) == ("add_task", '{"title":"buy milk"}')
        assert result["call_id"] == call["call_id"]
        assert call["call_id"].startswith("call_")  # the server's id, not one made up here
        assert [c["call_id"] for c in reply["metadata"]["tool_calls"]] == [call["call_id"]]
        assert reply["content"] == 'Added "buy milk" to your tasks.'
        assert "buy milk" in titles
        # The second request gave the provider the call and its output under that id.
        first, second = model_server.model_requests
        assert call_ids_sent(first.body) == []
        assert call_ids_sent(second.body) == [
            ("call", call["call_id"]),
            ("output", call["call_id"]),
        ]

    async def test_memory_spans_turns_and_restarts(
        self, provider_settings, model_server, alice, api
    ) -> None:
        settings = provider_settings(api)
        async with start_app(settings) as running, running.client() as client:
            thread_id = await create_thread(client, alice)
            await send(client, thread_id, "remember that the build id is 42", alice)
            await send(client, thread_id, "add task ship it", alice)
        async with start_app(settings) as running, running.client() as client:
            events = await send(client, thread_id, "what did I ask you to remember?", alice)
            again = await send(client, thread_id, "what did I say first?", alice)
            items = await memory_items(running, alice, thread_id)
            log = await logged(client, alice, thread_id)
        assert reply_text(events) == "You asked me to remember: that the build id is 42."
        assert reply_text(again) == 'You first said: "remember that the build id is 42"'
        assert user_texts_sent(model_server.model_requests[-1].body) == [
            "remember that the build id is 42",
            "add task ship it",
            "what did I ask you to remember?",
            "what did I say first?",
        ]
        assert [r for r, _ in log] == ["user", "assistant"] * 4
        assert sum(1 for i in items if i.get("type") == "function_call") == 1

    async def test_startup_logs_provider_api_base_url_and_model(
        self, provider_settings, model_server, api
    ) -> None:
        with app_logs() as records:
            async with start_app(provider_settings(api)):
                pass
        assert f"Model: provider=openai api={api} base_url={model_server.base_url} " + (
            "model=gpt-5-mini timeout=60s retries=0"
        ) in lines(records)
        assert "Agents: todo (default)" in lines(records)


class TestUsage:
    async def test_chat_completions_streams_report_the_providers_token_usage(
        self, provider_settings, model_server, alice
    ) -> None:
        async with start_app(provider_settings()) as running, running.client() as client:
            thread_id = await create_thread(client, alice)
            events = await send(client, thread_id, "help", alice)
        (request,) = model_server.model_requests
        assert request.body["stream_options"] == {"include_usage": True}
        messages = request.body["messages"]
        prompt = estimate_tokens(prompt_text(chat_instructions(messages), chat_items(messages)))
        completion = estimate_tokens(HELP_TEXT)
        (reply,) = [e.data for e in events if e.event == "assistant_message"]
        assert reply["metadata"]["usage"] == {
            "requests": 1,
            "input_tokens": prompt,
            "output_tokens": completion,
            "total_tokens": prompt + completion,
        }

    async def test_off_it_is_not_asked_for_and_stays_zero(
        self, provider_settings, model_server, alice
    ) -> None:
        settings = provider_settings(OPENAI_INCLUDE_USAGE=False)
        async with start_app(settings) as running, running.client() as client:
            thread_id = await create_thread(client, alice)
            events = await send(client, thread_id, "help", alice)
        (request,) = model_server.model_requests
        assert "stream_options" not in request.body
        (reply,) = [e.data for e in events if e.event == "assistant_message"]
        assert reply["metadata"]["usage"] == {
            "requests": 1,
            "input_tokens": 0,
            "output_tokens": 0,
            "total_tokens": 0,
        }


class TestClientSettings:
    async def test_a_transient_failure_is_retried_by_the_client_within_the_turn(
        self, provider_settings, model_server, alice
    ) -> None:
        from dataclasses import replace

        from tests.model_server import HttpError

        model_server.enqueue(replace(HttpError.unavailable(), headers={"retry-after-ms": "10"}))
        settings = provider_settings(OPENAI_MAX_RETRIES=1)
        async with start_app(settings) as running, running.client() as client:
            thread_id = await create_thread(client, alice)
            events = await send(client, thread_id, "help", alice)
        assert reply_text(events) == HELP_TEXT
        assert len(model_server.model_requests) == 2

    def test_timeouts_and_retries_are_the_settings(self, provider_settings) -> None:
        from app.assistant.provider import build_client

        client = build_client(
            provider_settings(
                OPENAI_TIMEOUT_SECONDS=20, OPENAI_CONNECT_TIMEOUT_SECONDS=3, OPENAI_MAX_RETRIES=4
            )
        )
        assert (client.timeout.read, client.timeout.connect, client.max_retries) == (20, 3, 4)
