"""Threadkeeper's built-in offline model: a deterministic, network-free ``agents`` Model.

When no API key is configured the backend still has to chat, call tools, stream and remember,
so this model implements the SDK ``Model`` interface for real (both ``get_response`` and
``stream_response``, emitting the same Responses-API events an OpenAI model would) and drives
the task tools through a small command grammar instead of a language model. Each call is
decided only from the input items it is given, so it shows exactly what the runner and the
session feed a model: "memory" works if, and only if, history is passed back in.

Grammar (case-insensitive; surrounding whitespace and trailing ``.!?`` are ignored; the
current request is the last user message, and the tool calls after it are this turn's steps):

* ``add task <title>`` | ``add <title> to my list|todo list|tasks``
  -> ``add_task(title)``, then ``Added "<title>" to your tasks.``
* ``list tasks`` | ``list my tasks`` | ``show my tasks`` | ``what are my tasks?`` |
  ``what's on my list?``
  -> ``list_tasks(include_done=true)``, then a numbered list ``1. [ ] title`` (``[x]`` when
  done) or ``You have no tasks.``
* ``complete <ref>`` | ``finish <ref>`` | ``done <ref>`` | ``mark <ref> as done``
  -> ``list_tasks``, then ``complete_task(task_id)``, then ``Marked "<title>" as done.``
* ``rename <ref> to <new title>`` -> ``list_tasks``, then ``update_task(task_id, title)``,
  then ``Renamed "<old>" to "<new>".``
* ``delete <ref>`` | ``remove <ref>`` -> ``list_tasks``, then ``delete_task(task_id)``, then
  ``Deleted "<title>".``
* ``remember that <fact>`` -> ``Got it — I'll remember that <fact>.`` (no tool).
* ``what did I ask you to remember?`` (also "what did I tell you to remember", "what do you
  remember") -> every ``remember that ...`` found in the user messages of the input history.
* ``what did I say first?`` -> quotes the first user message of the history.
* ``help`` | ``what are you`` | ``who are you`` -> what this model is and how to use a real one.
* ``thread info`` | ``about this thread`` | ``what is this thread?`` -> ``thread_info()`` (the
  triage agent's tool), then ``This thread is "<title>": <n> messages since <date>.``
* anything else -> a short list of the commands above.

``<ref>`` is a 1-based number as shown by ``list tasks`` (``2``, ``task 2``, ``#2``) or a
title: an exact case-insensitive match, else a unique substring. An unknown or ambiguous
reference is answered in text without a second tool call. A tool is only called when a tool of
that name is offered to the model (and none when ``tool_choice="none"``). A task request to an
agent without the task tools but with a handoff (a ``transfer_to_<agent>`` tool) hands the turn
over to that agent first, which then answers it with its own tools. Tool outputs that
are ``{"error": ...}`` or unreadable (neither JSON nor a Python literal) are reported back to the
user in the reply text.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import logging
import math
import re
from collections.abc import AsyncIterator, Iterator

from agents.agent_output import AgentOutputSchemaBase
from agents.handoffs import Handoff
from agents.items import ModelResponse, TResponseInputItem, TResponseStreamEvent
from agents.model_settings import ModelSettings
from agents.models.interface import Model, ModelTracing
from agents.tool import Tool
from agents.usage import Usage
from openai.types.responses import (
    Response,
    ResponseCompletedEvent,
    ResponseContentPartAddedEvent,
    ResponseContentPartDoneEvent,
    ResponseCreatedEvent,
    ResponseFunctionCallArgumentsDeltaEvent,
    ResponseFunctionCallArgumentsDoneEvent,
    ResponseFunctionToolCall,
    ResponseInProgressEvent,
    ResponseOutputItemAddedEvent,
    ResponseOutputItemDoneEvent,
    ResponseOutputMessage,
    ResponseOutputText,
    ResponseTextDeltaEvent,
    ResponseTextDoneEvent,
    ResponseUsage,
)
from openai.types.responses.response_prompt_param import ResponsePromptParam
from openai.types.responses.response_usage import InputTokensDetails, OutputTokensDetails

from .offline_planner import Reply, plan_reply

logger = logging.getLogger(__name__)

DEFAULT_MODEL_NAME = "threadkeeper-offline"
WORDS_PER_DELTA = 3
"""Text is streamed a few words at a time so clients see real incremental deltas."""

_CHUNK = re.compile(r"\s*\S+\s*")
OutputItem = ResponseFunctionToolCall | ResponseOutputMessage


def estimate_tokens(text: str) -> int:
    """Approximate a token count (about four characters per token) without a tokenizer."""
    return math.ceil(len(text) / 4)


def split_text(text: str, words_per_chunk: int = WORDS_PER_DELTA) -> list[str]:
    """Split text into chunks of a few words that concatenate back to exactly ``text``."""
    words = _CHUNK.findall(text)
    if not words:
        return [text] if text else []
    return [
        "".join(words[start : start + words_per_chunk])
        for start in range(0, len(words), words_per_chunk)
    ]


class OfflineModel(Model):
    """A deterministic stand-in for an LLM, used as the default model when no API key is set.

    It keeps no per-thread state: every answer is a pure function of the input items and
    the offered tools, so one instance can serve concurrent runs and replays are identical.
    """

    def __init__(self, model_name: str = DEFAULT_MODEL_NAME, *, delta_delay_s: float = 0.0) -> None:
        """Create the model.

        Args:
            model_name: Name reported in responses, so traces and logs show which model ran.
            delta_delay_s: Pause after each streamed text delta, so a reply takes as long as
                a real model's would (drills, demos of stop and resume); 0 streams at once.
        """
        self.model_name = model_name
        self.delta_delay_s = delta_delay_s

    async def get_response(
        self,
        system_instructions: str | None,
        input: str | list[TResponseInputItem],
        model_settings: ModelSettings,
        tools: list[Tool],
        output_schema: AgentOutputSchemaBase | None,
        handoffs: list[Handoff],
        tracing: ModelTracing,
        *,
        previous_response_id: str | None,
        conversation_id: str | None,
        prompt: ResponsePromptParam | None,
    ) -> ModelResponse:
        """Answer with one tool call or one message; see the module docstring for the grammar."""
        item, usage = self._plan(system_instructions, input, model_settings, tools, handoffs)
        return ModelResponse(output=[item], usage=usage, response_id=_response_id(item))

    async def stream_response(
        self,
        system_instructions: str | None,
        input: str | list[TResponseInputItem],
        model_settings: ModelSettings,
        tools: list[Tool],
        output_schema: AgentOutputSchemaBase | None,
        handoffs: list[Handoff],
        tracing: ModelTracing,
        *,
        previous_response_id: str | None,
        conversation_id: str | None,
        prompt: ResponsePromptParam | None,
    ) -> AsyncIterator[TResponseStreamEvent]:
        """Stream the same answer as ``get_response`` as Responses-API events.

        The event order mirrors the OpenAI Responses stream, so the runner, ``RunResultStreaming``
        and any SSE bridge treat this model exactly like a hosted one. Control is yielded to
        the event loop after every text delta (for ``delta_delay_s``) so a streaming client
        really receives it in parts.
        """
        item, usage = self._plan(system_instructions, input, model_settings, tools, handoffs)
        for event in stream_events(self._completed_response(item, usage)):
            yield event
            if isinstance(event, ResponseTextDeltaEvent):
                await asyncio.sleep(self.delta_delay_s)

    def _plan(
        self,
        system_instructions: str | None,
        input: str | list[TResponseInputItem],
        model_settings: ModelSettings,
        tools: list[Tool],
        handoffs: list[Handoff],
    ) -> tuple[OutputItem, Usage]:
        """Decide the single output item and estimate its usage; shared by both call styles."""
        offered = (
            set()
            if model_settings.tool_choice == "none"
            else _tool_names(tools) | {handoff.tool_name for handoff in handoffs}
        )
        reply = plan_reply(input, offered)
        serialized = json.dumps(input, default=str, sort_keys=True, ensure_ascii=False)
        # Input only grows within a thread, so length + content gives ids that are unique
        # per thread yet stable across replays of the same input.
        digest = hashlib.sha256(f"{len(input)}:{serialized}".encode()).hexdigest()[:24]
        input_tokens = estimate_tokens((system_instructions or "") + serialized)
        output_tokens = estimate_tokens(reply.text if reply.tool is None else _args_json(reply))
        logger.debug(
            "Offline model replied with %s (tools offered: %s)",
            reply.tool or "text",
            sorted(offered),
        )
        usage = Usage(
            requests=1,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            total_tokens=input_tokens + output_tokens,
        )
        return _output_item(reply, digest), usage

    def _completed_response(self, item: OutputItem, usage: Usage) -> Response:
        """Wrap the item in the terminal ``Response`` that ``response.completed`` carries."""
        return Response(
            id=_response_id(item),
            created_at=0,  # Fixed so identical inputs produce identical responses.
            model=self.model_name,
            object="response",
            output=[item],
            parallel_tool_calls=False,
            tool_choice="auto",
            tools=[],
            top_p=None,
            status="completed",
            usage=ResponseUsage(
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                total_tokens=usage.total_tokens,
                input_tokens_details=InputTokensDetails.model_validate(
                    {"cached_tokens": 0, "cache_write_tokens": 0}
                ),
                output_tokens_details=OutputTokensDetails(reasoning_tokens=0),
            ),
        )


def _tool_names(tools: list[Tool]) -> set[str]:
    return {name for name in (getattr(tool, "name", None) for tool in tools) if name}


def _response_id(item: OutputItem) -> str:
    """Derive the response id from the item id, which already encodes the input digest."""
    return "resp_" + str(item.id).split("_", 1)[1]


def _args_json(reply: Reply) -> str:
    return json.dumps(reply.arguments, ensure_ascii=False, separators=(",", ":"))


def _output_item(reply: Reply, digest: str) -> OutputItem:
    if reply.tool is not None:
        return ResponseFunctionToolCall(
            id=f"fc_{digest}",
            call_id=f"call_{digest}",
            type="function_call",
            name=reply.tool,
            arguments=_args_json(reply),
            status="completed",
        )
    return ResponseOutputMessage(
        id=f"msg_{digest}",
        type="message",
        role="assistant",
        status="completed",
        content=[_text_part(reply.text)],
    )


def _text_part(text: str) -> ResponseOutputText:
    return ResponseOutputText(type="output_text", text=text, annotations=[], logprobs=[])


def stream_events(response: Response) -> Iterator[TResponseStreamEvent]:
    """Render a completed single-item response as the OpenAI Responses event sequence."""
    seq = itertools.count()
    pending = response.model_copy(update={"output": [], "status": "in_progress", "usage": None})
    yield ResponseCreatedEvent(type="response.created", response=pending, sequence_number=next(seq))
    yield ResponseInProgressEvent(
        type="response.in_progress", response=pending, sequence_number=next(seq)
    )
    for index, item in enumerate(response.output):
        if isinstance(item, ResponseFunctionToolCall | ResponseOutputMessage):
            yield from _item_events(item, index, seq)
    yield ResponseCompletedEvent(
        type="response.completed", response=response, sequence_number=next(seq)
    )


def _item_events(
    item: OutputItem, index: int, seq: Iterator[int]
) -> Iterator[TResponseStreamEvent]:
    if isinstance(item, ResponseFunctionToolCall):
        started: OutputItem = item.model_copy(update={"arguments": "", "status": "in_progress"})
        body = _call_events(item, index, seq)
    else:
        started = item.model_copy(update={"content": [], "status": "in_progress"})
        body = _message_events(item, index, seq)
    yield ResponseOutputItemAddedEvent(
        type="response.output_item.added",
        item=started,
        output_index=index,
        sequence_number=next(seq),
    )
    yield from body
    yield ResponseOutputItemDoneEvent(
        type="response.output_item.done",
        item=item,
        output_index=index,
        sequence_number=next(seq),
    )


def _call_events(
    item: ResponseFunctionToolCall, index: int, seq: Iterator[int]
) -> Iterator[TResponseStreamEvent]:
    item_id = item.id or item.call_id
    yield ResponseFunctionCallArgumentsDeltaEvent(
        type="response.function_call_arguments.delta",
        item_id=item_id,
        output_index=index,
        delta=item.arguments,
        sequence_number=next(seq),
    )
    # Older openai releases require ``name`` here; newer ones keep it as an extra field.
    yield ResponseFunctionCallArgumentsDoneEvent.model_validate(
        {
            "type": "response.function_call_arguments.done",
            "item_id": item_id,
            "output_index": index,
            "arguments": item.arguments,
            "name": item.name,
            "sequence_number": next(seq),
        }
    )


def _message_events(
    item: ResponseOutputMessage, index: int, seq: Iterator[int]
) -> Iterator[TResponseStreamEvent]:
    for part_index, part in enumerate(item.content):
        if not isinstance(part, ResponseOutputText):
            continue
        where = {"item_id": item.id, "output_index": index, "content_index": part_index}
        yield ResponseContentPartAddedEvent(
            type="response.content_part.added",
            part=_text_part(""),
            sequence_number=next(seq),
            **where,
        )
        for chunk in split_text(part.text):
            yield ResponseTextDeltaEvent(
                type="response.output_text.delta",
                delta=chunk,
                logprobs=[],
                sequence_number=next(seq),
                **where,
            )
        yield ResponseTextDoneEvent(
            type="response.output_text.done",
            text=part.text,
            logprobs=[],
            sequence_number=next(seq),
            **where,
        )
        yield ResponseContentPartDoneEvent(
            type="response.content_part.done",
            part=part,
            sequence_number=next(seq),
            **where,
        )
