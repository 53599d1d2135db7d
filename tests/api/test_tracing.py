"""Tracing is opt-in: nothing about a conversation is uploaded unless TRACING_ENABLED says so.

The SDK's own exporter is pointed at the model server's trace-ingest endpoint
(`exporting_traces_to`), so an upload that would have gone to api.openai.com is seen here.
"""

from __future__ import annotations

import asyncio
import json

from agents import Agent, Runner

from app.assistant.offline_model import OfflineModel
from tests.conftest import start_app
from tests.factories import create_thread
from tests.model_server.fixtures import exporting_traces_to
from tests.sse import send

SECRET = "add task pick up the passport"


async def run_a_turn(settings, alice, model_server) -> tuple[list[dict], str]:
    """One turn with a tool call, traced as the settings say; returns (uploads, thread id)."""
    with exporting_traces_to(model_server) as processor:
        async with start_app(settings) as running, running.client() as client:
            thread_id = await create_thread(client, alice)
            await send(client, thread_id, SECRET, alice)
        await asyncio.to_thread(processor.force_flush)
    return model_server.traces, thread_id


class TestTracing:
    async def test_a_key_and_a_local_base_url_upload_nothing_by_default(
        self, provider_settings, model_server, alice
    ) -> None:
        uploads, _ = await run_a_turn(provider_settings(), alice, model_server)
        assert uploads == []
        assert [r.path for r in model_server.requests] == ["/v1/chat/completions"] * 2

    async def test_runs_started_outside_a_turn_are_not_traced_either(
        self, provider_settings, model_server
    ) -> None:
        # A plug-in's tool that runs an agent of its own gets no trace exported by default.
        with exporting_traces_to(model_server) as processor:
            async with start_app(provider_settings()):
                await Runner.run(Agent(name="inner", model=OfflineModel()), "help")
            await asyncio.to_thread(processor.force_flush)
        assert model_server.traces == []

    async def test_opted_in_traces_carry_timings_and_names_but_no_content(
        self, provider_settings, model_server, alice
    ) -> None:
        uploads, thread_id = await run_a_turn(
            provider_settings(TRACING_ENABLED=True), alice, model_server
        )
        items = [item for upload in uploads for item in upload["data"]]
        (trace,) = [item for item in items if item["object"] == "trace"]
        assert (trace["workflow_name"], trace["group_id"]) == ("threadkeeper-turn", thread_id)
        kinds = sorted({item["span_data"]["type"] for item in items if item["object"] != "trace"})
        assert kinds == ["agent", "custom", "function", "generation"]
        assert "pick up the passport" not in json.dumps(uploads)

    async def test_content_is_included_only_when_asked_for(
        self, provider_settings, model_server, alice
    ) -> None:
        settings = provider_settings(TRACING_ENABLED=True, TRACING_INCLUDE_CONTENT=True)
        uploads, _ = await run_a_turn(settings, alice, model_server)
        assert "pick up the passport" in json.dumps(uploads)
