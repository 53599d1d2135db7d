"""`POST /v1/responses`: a step rendered as a Response or as the Responses event stream.

The stream has the real API's event order, the one `offline_model.stream_events` renders too:
`response.created`, `response.in_progress`, then per output item `output_item.added`, its
content (`content_part.added`, `output_text.delta`..., `output_text.done`, `content_part.done`
for a message; `function_call_arguments.delta`..., `.done` for a call), `output_item.done`,
and finally `response.completed` carrying the whole response and its usage. It is written
out here rather than reused because deltas need per-step splits and delays, and call
arguments arrive in pieces, as they do from OpenAI.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from typing import Any

from starlette.types import ASGIApp

from tests.model_server.conversations import new_id
from tests.model_server.planner import ModelCall, argument_pieces, completion_tokens, tool_calls
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

GARBAGE = b"event: response.output_text.delta\ndata: <html>502 Bad Gateway</html>\n\n"


def usage(call: ModelCall, step: Step) -> dict[str, Any]:
    prompt, completion = call.prompt_tokens, completion_tokens(step)
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt + completion,
    }


def output_items(step: Step) -> list[dict[str, Any]]:
    """The completed output items of a reply (a message, or one item per tool call)."""
    if isinstance(step, Text):
        return [message_item(new_id("msg"), step.text, "completed")]
    return [
        {
            "id": new_id("fc"),
            "type": "function_call",
            "call_id": call.call_id,
            "name": call.name,
            "arguments": call.arguments_json,
            "status": "completed",
        }
        for call in tool_calls(step)
    ]


def message_item(item_id: str, text: str | None, status: str) -> dict[str, Any]:
    content = [] if text is None else [text_part(text)]
    return {
        "id": item_id,
        "type": "message",
        "role": "assistant",
        "status": status,
        "content": content,
    }


def text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def response_object(
    call: ModelCall,
    response_id: str,
    output: list[dict[str, Any]],
    usage_value: Any,
    extra: dict[str, Any],
) -> dict[str, Any]:
    """A `response` object; `extra` carries request echoes (instructions, conversation, ...)."""
    return {
        "id": response_id,
        "object": "response",
        "created_at": int(time.time()),
        "status": "completed" if usage_value is not None else "in_progress",
        "model": call.model,
        "output": output,
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "temperature": 1.0,
        "error": None,
        "incomplete_details": None,
        "metadata": {},
        "text": {"format": {"type": "text"}},
        "truncation": "disabled",
        "usage": usage_value,
        **extra,
    }


def render(
    step: Step,
    call: ModelCall,
    hangs: HangGate,
    response_id: str,
    output: list[dict[str, Any]],
    extra: dict[str, Any],
) -> ASGIApp:
    """The response for a non-error step; `output` is `output_items(step)` for completed ones."""
    if call.stream:
        events = _Events(call, response_id, extra)
        return FrameResponse(events.frames(step, output), hangs)
    body = json.dumps(
        response_object(call, response_id, output, usage(call, step), extra), separators=(",", ":")
    ).encode()
    return json_response(body, step, hangs)


class _Events:
    """Builds the event stream of one response, numbering events in order."""

    def __init__(self, call: ModelCall, response_id: str, extra: dict[str, Any]) -> None:
        self.call, self.response_id, self.extra = call, response_id, extra
        self.seq = itertools.count()

    def event(self, kind: str, **fields: Any) -> bytes:
        data = {"type": kind, "sequence_number": next(self.seq), **fields}
        payload = json.dumps(data, separators=(",", ":"))
        return f"event: {kind}\ndata: {payload}\n\n".encode()

    def frames(self, step: Step, output: list[dict[str, Any]]) -> Iterator[Frame]:
        pending = response_object(self.call, self.response_id, [], None, self.extra)
        yield self.event("response.created", response=pending)
        yield self.event("response.in_progress", response=pending)
        if not isinstance(step, Text) and not tool_calls(step):
            yield from self._interrupted(step)  # type: ignore[arg-type]
            return
        for index, item in enumerate(output):
            if item["type"] == "message":
                assert isinstance(step, Text)
                yield from self._message(index, item, step)
            else:
                yield from self._call(index, item)
        final = response_object(
            self.call, self.response_id, output, usage(self.call, step), self.extra
        )
        yield self.event("response.completed", response=final)

    def _message(self, index: int, item: dict[str, Any], step: Text) -> Iterator[Frame]:
        deltas, delay = step.deltas(), step.delay
        where = {"item_id": item["id"], "output_index": index, "content_index": 0}
        yield self.event(
            "response.output_item.added",
            output_index=index,
            item=message_item(item["id"], None, "in_progress"),
        )
        yield self.event("response.content_part.added", part=text_part(""), **where)
        for number, delta in enumerate(deltas):
            if number and delay:
                yield Pause(delay)
            elif not number and step.first_delay:
                yield Pause(step.first_delay)
            yield self.event("response.output_text.delta", delta=delta, logprobs=[], **where)
        text = "".join(deltas)
        yield self.event("response.output_text.done", text=text, logprobs=[], **where)
        yield self.event("response.content_part.done", part=text_part(text), **where)
        yield self.event("response.output_item.done", output_index=index, item=item)

    def _call(self, index: int, item: dict[str, Any]) -> Iterator[Frame]:
        started = {**item, "arguments": "", "status": "in_progress"}
        yield self.event("response.output_item.added", output_index=index, item=started)
        where = {"item_id": item["id"], "output_index": index}
        for piece in argument_pieces(item["arguments"]):
            yield self.event("response.function_call_arguments.delta", delta=piece, **where)
        yield self.event(
            "response.function_call_arguments.done",
            arguments=item["arguments"],
            name=item["name"],
            **where,
        )
        yield self.event("response.output_item.done", output_index=index, item=item)

    def _interrupted(self, step: Interrupted) -> Iterator[Frame]:
        item_id = new_id("msg")
        where = {"item_id": item_id, "output_index": 0, "content_index": 0}
        yield self.event(
            "response.output_item.added",
            output_index=0,
            item=message_item(item_id, None, "in_progress"),
        )
        yield self.event("response.content_part.added", part=text_part(""), **where)
        for delta in split_words(counting_text(step.after_tokens)):
            yield self.event("response.output_text.delta", delta=delta, logprobs=[], **where)
        if isinstance(step, Malformed):
            if step.kind == "garbage":
                yield GARBAGE
            else:
                cut = self.event("response.output_text.delta", delta="cut", logprobs=[], **where)
                yield cut[:80] + b"\n\n"
        elif isinstance(step, Hang):
            yield HANG
        elif isinstance(step, Drop):
            yield DROP
