"""The trace-ingest endpoint: the SDK's own exporter, pointed at the server, uploads there."""

from __future__ import annotations

import asyncio

from agents import RunConfig
from agents.tracing import trace
from agents.tracing.traces import NoOpTrace

from tests.model_server import Text
from tests.model_server.fixtures import TEST_API_KEY, exporting_traces_to
from tests.model_server.sdk import agent, run_streamed

INGEST = "/v1/traces/ingest"


class TestTraceIngest:
    async def test_a_traced_run_uploads_its_trace_and_spans(self, model_server, chat_model) -> None:
        model_server.enqueue(Text("traced"))
        with exporting_traces_to(model_server) as processor:
            await run_streamed(
                agent(chat_model), "hi", run_config=RunConfig(workflow_name="model-server-trace")
            )
            await asyncio.to_thread(processor.force_flush)
        (upload,) = model_server.traces
        (trace,) = [item for item in upload["data"] if item["object"] == "trace"]
        spans = [item for item in upload["data"] if item["object"] == "trace.span"]
        assert trace["workflow_name"] == "model-server-trace"
        # SDK 0.24 wraps each run in "task" and each model turn in "turn" custom spans.
        assert sorted((s["span_data"]["type"], s["span_data"].get("name")) for s in spans) == [
            ("agent", "tester"),
            ("custom", "task"),
            ("custom", "turn"),
            ("generation", None),
        ]
        assert {span["trace_id"] for span in spans} == {trace["id"]}
        (request,) = [r for r in model_server.requests if r.path == INGEST]
        assert request.headers["authorization"] == f"Bearer {TEST_API_KEY}"
        assert request.headers["openai-beta"] == "traces=v1"

    async def test_a_run_with_tracing_disabled_exports_nothing(
        self, model_server, chat_model
    ) -> None:
        model_server.enqueue(Text("untraced"))
        with exporting_traces_to(model_server) as processor:
            await run_streamed(agent(chat_model), "hi", run_config=RunConfig(tracing_disabled=True))
            await asyncio.to_thread(processor.force_flush)
        assert model_server.traces == []
        assert [r.path for r in model_server.requests] == ["/v1/chat/completions"]

    def test_tracing_is_off_in_the_test_run_except_inside_the_block(self, model_server) -> None:
        assert isinstance(trace("before"), NoOpTrace)
        with exporting_traces_to(model_server):
            assert not isinstance(trace("inside"), NoOpTrace)
        assert isinstance(trace("after"), NoOpTrace)
