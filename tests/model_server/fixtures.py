"""Pytest fixtures for the model server, registered by `tests/conftest.py` (`pytest_plugins`).

One server runs for the whole session and is reset before and after every test, so a test
starts with an empty script, no recorded requests and the default config. A test that stops
the server (a provider outage) gets it started again, on the same port, by the next test.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator

import openai
import pytest
from agents import OpenAIChatCompletionsModel, OpenAIResponsesModel
from agents.tracing import get_trace_provider
from agents.tracing.processors import BackendSpanExporter, BatchTraceProcessor

from tests.model_server.server import ModelServer

TEST_API_KEY = "sk-test-model-server"
MODEL = "gpt-5-mini"
"""The app's default model, which the server knows."""


@pytest.fixture(scope="session")
def model_server_session() -> Iterator[ModelServer]:
    with ModelServer() as server:
        yield server


@pytest.fixture
def model_server(model_server_session: ModelServer) -> Iterator[ModelServer]:
    """The scripted OpenAI-compatible server: `.base_url`, `.enqueue(...)`, `.requests`."""
    server = model_server_session
    server.reset()
    server.start()
    yield server
    server.reset()


@pytest.fixture
async def model_client(model_server: ModelServer) -> AsyncIterator[openai.AsyncOpenAI]:
    """An `AsyncOpenAI` aimed at the server, without retries, so every request is one step."""
    client = openai.AsyncOpenAI(base_url=model_server.base_url, api_key=TEST_API_KEY, max_retries=0)
    async with client:
        yield client


@contextlib.contextmanager
def exporting_traces_to(server: ModelServer) -> Iterator[BatchTraceProcessor]:
    """Send the SDK's traces to the server's ingest endpoint for the block, then restore.

    The processor is the SDK's own `BatchTraceProcessor` + `BackendSpanExporter`, only with
    the endpoint changed; call `force_flush()` on it to upload what is buffered. Tracing is
    enabled for the block (the test run disables it globally with
    OPENAI_AGENTS_DISABLE_TRACING); a run's own `RunConfig(tracing_disabled=True)` still wins.
    """
    exporter = BackendSpanExporter(
        api_key=TEST_API_KEY, endpoint=f"{server.base_url}/traces/ingest", max_retries=1
    )
    processor = BatchTraceProcessor(exporter)
    provider = get_trace_provider()
    # The SDK has setters but no getters for these, so the previous values are read privately.
    multi = provider._multi_processor  # type: ignore[attr-defined]
    previous_processors = list(multi._processors)
    previous_disabled = provider._manual_disabled  # type: ignore[attr-defined]
    multi.set_processors([processor])
    provider.set_disabled(False)
    try:
        yield processor
    finally:
        provider._manual_disabled = previous_disabled  # type: ignore[attr-defined]
        provider._refresh_disabled_flag()  # type: ignore[attr-defined]
        multi.set_processors(previous_processors)
        processor.shutdown()
        exporter.close()


@pytest.fixture
def chat_model(model_client: openai.AsyncOpenAI) -> OpenAIChatCompletionsModel:
    """The SDK's Chat Completions model on the server, as the app builds it for local servers."""
    return OpenAIChatCompletionsModel(MODEL, openai_client=model_client)


@pytest.fixture
def responses_model(model_client: openai.AsyncOpenAI) -> OpenAIResponsesModel:
    """The SDK's Responses model on the server, as the app builds it for OpenAI."""
    return OpenAIResponsesModel(MODEL, openai_client=model_client)
