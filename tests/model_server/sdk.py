"""Small helpers for driving the real SDK against the model server in tests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import openai
from agents import (
    Agent,
    FunctionTool,
    ModelSettings,
    OpenAIChatCompletionsModel,
    OpenAIResponsesModel,
    RunConfig,
    Runner,
    function_tool,
)
from agents.models.interface import Model
from agents.result import RunResultStreaming

from tests.model_server.fixtures import MODEL

INSTRUCTIONS = "Be brief."
NO_TRACING = RunConfig(tracing_disabled=True)

ModelFactory = Callable[[openai.AsyncOpenAI], Model]
MODEL_FACTORIES: dict[str, ModelFactory] = {
    "chat_completions": lambda client: OpenAIChatCompletionsModel(MODEL, openai_client=client),
    "responses": lambda client: OpenAIResponsesModel(MODEL, openai_client=client),
}


@dataclass
class Adder:
    """A function tool that adds two integers and remembers how it was called."""

    calls: list[tuple[int, int]] = field(default_factory=list)

    def tool(self) -> FunctionTool:
        @function_tool
        def add(a: int, b: int) -> str:
            """Add two integers."""
            self.calls.append((a, b))
            return str(a + b)

        return add


def agent(model: Model, *, tools: list[Any] | None = None, **settings: Any) -> Agent[Any]:
    return Agent(
        name="tester",
        instructions=INSTRUCTIONS,
        model=model,
        tools=tools or [],
        model_settings=ModelSettings(**settings),
    )


@dataclass
class StreamedRun:
    result: RunResultStreaming
    deltas: list[str]

    @property
    def usage(self) -> Any:
        return self.result.context_wrapper.usage


async def run_streamed(
    target: Agent[Any], text: str, *, deltas: list[str] | None = None, **kwargs: Any
) -> StreamedRun:
    """Run the agent with `Runner.run_streamed`, collecting its text deltas.

    Pass `deltas` to keep what streamed before the run raised.
    """
    kwargs.setdefault("run_config", NO_TRACING)
    result = Runner.run_streamed(target, text, **kwargs)
    collected = [] if deltas is None else deltas
    async for event in result.stream_events():
        if event.type == "raw_response_event" and event.data.type == "response.output_text.delta":
            collected.append(event.data.delta)
    return StreamedRun(result, collected)
