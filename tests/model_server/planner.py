"""Decide the answer to one model request: a rule, the next scripted step, or the mode's reply.

Order matters and mirrors the real API: a request for a model that does not exist, or one too
long for the context window, fails before anything scripted is consumed, so a test's script
is never eaten by a request that could not have reached the model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from app.assistant.offline_planner import plan_reply
from tests.model_server.history import estimate_tokens, prompt_text
from tests.model_server.state import FIXED_TOKENS, ServerState
from tests.model_server.steps import HttpError, Step, Text, ToolCall, ToolCalls


@dataclass(frozen=True)
class ModelCall:
    """A model request of either API, reduced to what the answer depends on."""

    api: Literal["chat", "responses"]
    model: str
    stream: bool
    include_usage: bool
    instructions: str
    items: list[dict[str, Any]]
    tools: set[str]

    @property
    def prompt_tokens(self) -> int:
        return estimate_tokens(prompt_text(self.instructions, self.items))


def decide(state: ServerState, call: ModelCall) -> Step:
    """The step that answers `call`; see the module docstring for the order."""
    config = state.config
    if call.model not in config.models:
        return HttpError.model_not_found(call.model)
    if config.context_window is not None and call.prompt_tokens > config.context_window:
        return HttpError.context_length_exceeded(config.context_window, call.prompt_tokens)
    scripted = state.next_step()
    if scripted is not None:
        return scripted
    if config.mode == "fixed":
        count = requested_tokens(call.items) or config.tokens or FIXED_TOKENS
        return Text.of_tokens(count, delay=config.token_delay, first_delay=config.first_token_delay)
    reply = plan_reply(call.items, call.tools)
    if reply.tool is not None:
        return ToolCall(reply.tool, reply.arguments)
    return Text(
        reply.text,
        tokens=config.tokens,
        delay=config.token_delay,
        first_delay=config.first_token_delay,
    )


_TOKENS_ASKED = re.compile(r"\[tokens=(\d{1,6})\]")


def requested_tokens(items: list[dict[str, Any]]) -> int | None:
    """N when the last user message says `[tokens=N]`: the benchmark's reply length per turn."""
    for item in reversed(items):
        if item.get("role") == "user":
            found = _TOKENS_ASKED.search(str(item.get("content", "")))
            return int(found.group(1)) if found and int(found.group(1)) > 0 else None
    return None


def completion_tokens(step: Step) -> int:
    """Output tokens of a completed reply, by the same four-characters rule as the prompt."""
    if isinstance(step, Text):
        return estimate_tokens(step.text)
    return sum(estimate_tokens(call.name + call.arguments_json) for call in tool_calls(step))


def tool_calls(step: Step) -> tuple[ToolCall, ...]:
    """The calls of a tool-call step, one or several."""
    if isinstance(step, ToolCalls):
        return step.calls
    if isinstance(step, ToolCall):
        return (step,)
    return ()


def argument_pieces(arguments: str, pieces: int = 3) -> list[str]:
    """Split call arguments into a few pieces, as the real API streams them."""
    if not arguments:
        return [""]
    size = -(-len(arguments) // pieces)
    return [arguments[start : start + size] for start in range(0, len(arguments), size)]
