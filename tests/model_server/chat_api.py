"""`POST /v1/chat/completions`: a step rendered as a completion or as a chunk stream.

The stream follows the real API chunk by chunk: a first delta with the role, content deltas
(or, per tool call, a delta with its id, type and name then its arguments in pieces), a last
choice delta with the finish reason, then, only when `stream_options.include_usage` is set, a
chunk with empty `choices` and the usage (every earlier chunk then carries `"usage": null`),
and `data: [DONE]`.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

from starlette.types import ASGIApp

from tests.model_server.planner import (
    ModelCall,
    argument_pieces,
    completion_tokens,
    tool_calls,
)
from tests.model_server.state import HangGate
from tests.model_server.steps import (
    Drop,
    Hang,
    Interrupted,
    Malformed,
    Step,
    Text,
    counting_text,
    split_words,
)
from tests.model_server.streaming import DROP, HANG, Frame, FrameResponse, Pause, json_response

GARBAGE = b"data: <html><body>502 Bad Gateway</body></html>\n\n"


def usage(call: ModelCall, step: Step) -> dict[str, Any]:
    prompt, completion = call.prompt_tokens, completion_tokens(step)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def render(step: Step, call: ModelCall, hangs: HangGate) -> ASGIApp:
    """The response for a non-error step (HTTP errors are rendered by the app)."""
    stream = _Chunks(call)
    if call.stream:
        return FrameResponse(stream.frames(step), hangs)
    body = json.dumps(completion(step, call, stream.id), separators=(",", ":")).encode()
    return json_response(body, step, hangs)


def completion(step: Step, call: ModelCall, completion_id: str) -> dict[str, Any]:
    """A non-streamed `chat.completion` object."""
    calls = tool_calls(step)
    message: dict[str, Any] = {
        "role": "assistant",
        "content": step.text if isinstance(step, Text) else None,
        "refusal": None,
        "annotations": [],
    }
    if calls:
        message["tool_calls"] = [
            {
                "id": c.call_id,
                "type": "function",
                "function": {"name": c.name, "arguments": c.arguments_json},
            }
            for c in calls
        ]
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": call.model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": "tool_calls" if calls else "stop",
            }
        ],
        "usage": usage(call, step),
        "service_tier": "default",
        "system_fingerprint": None,
    }


class _Chunks:
    """Builds the chunk stream of one completion (one id and timestamp for every chunk)."""

    def __init__(self, call: ModelCall) -> None:
        self.call = call
        self.id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        self.created = int(time.time())

    def chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        return self._sse(
            {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        )

    def _sse(self, choice: dict[str, Any] | None, usage_value: Any = None) -> bytes:
        data: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.call.model,
            "service_tier": "default",
            "system_fingerprint": None,
            "choices": [choice] if choice is not None else [],
        }
        if self.call.include_usage:
            data["usage"] = usage_value
        return b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"

    def frames(self, step: Step) -> Iterator[Frame]:
        calls = tool_calls(step)
        if calls:
            yield from self._tool_call_frames(step)
        elif isinstance(step, Text):
            yield self.chunk({"role": "assistant", "content": "", "refusal": None})
            yield from self._text_frames(step.deltas(), step.delay, step.first_delay)
            yield self.chunk({}, "stop")
        else:
            yield from self._interrupted_frames(step)  # type: ignore[arg-type]
            return
        if self.call.include_usage:
            yield self._sse(None, usage(self.call, step))
        yield b"data: [DONE]\n\n"

    def _text_frames(self, deltas: list[str], delay: float, first: float = 0.0) -> Iterator[Frame]:
        for index, delta in enumerate(deltas):
            if index and delay:
                yield Pause(delay)
            elif not index and first:
                yield Pause(first)
            yield self.chunk({"content": delta})

    def _tool_call_frames(self, step: Step) -> Iterator[Frame]:
        for index, call in enumerate(tool_calls(step)):
            opening = {
                "index": index,
                "id": call.call_id,
                "type": "function",
                "function": {"name": call.name, "arguments": ""},
            }
            delta: dict[str, Any] = {"tool_calls": [opening]}
            if index == 0:
                delta = {"role": "assistant", "content": None, "refusal": None, **delta}
            yield self.chunk(delta)
            for piece in argument_pieces(call.arguments_json):
                yield self.chunk(
                    {"tool_calls": [{"index": index, "function": {"arguments": piece}}]}
                )
        yield self.chunk({}, "tool_calls")

    def _interrupted_frames(self, step: Interrupted) -> Iterator[Frame]:
        yield self.chunk({"role": "assistant", "content": "", "refusal": None})
        yield from self._text_frames(split_words(counting_text(step.after_tokens)), 0.0)
        if isinstance(step, Malformed):
            if step.kind == "garbage":
                yield GARBAGE
            else:
                yield self.chunk({"content": "cut"})[:60] + b"\n\n"
        elif isinstance(step, Hang):
            yield HANG
        elif isinstance(step, Drop):
            yield DROP
