"""The SDK's OpenAI models, with every provider failure classified and truncation caught.

`ChatCompletionsModel` and `ResponsesModel` are the SDK's own `OpenAIChatCompletionsModel` and
`OpenAIResponsesModel` with three changes:

- Whatever the provider path raises (an `openai.APIError`, a stream that is not JSON) becomes a
  `ProviderError` saying which class of failure it is (`provider_errors`).
- A stream that ends cleanly but early (a proxy cutting the response) is a retryable failure:
  off api.openai.com the SDK accepts a Chat Completions stream without a finish reason as a
  complete (silently truncated) reply, and a Responses stream without a terminal event
  surfaces as a generic `ModelBehaviorError`.
- Chat Completions streams ask for token usage (`stream_options.include_usage`), which the
  SDK does only for api.openai.com, unless OPENAI_INCLUDE_USAGE is off.

Both hook the SDK's private `_fetch_response`, the one place that sees the raw stream; the SDK
is pinned (requirements.txt), and the provider-path tests fail if that seam moves.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import openai
from agents import ModelSettings, OpenAIChatCompletionsModel, OpenAIResponsesModel
from agents.agent_output import AgentOutputSchemaBase
from agents.handoffs import Handoff
from agents.items import TResponseInputItem, TResponseStreamEvent
from agents.models.interface import ModelTracing
from agents.tool import Tool
from openai.types.responses.response_prompt_param import ResponsePromptParam

from app.assistant.provider_errors import ProviderError, broken_stream, classify, safe_base_url

# A Responses stream is complete once one of these arrives (the SDK's own list).
_RESPONSES_TERMINAL = frozenset(
    {"response.completed", "response.failed", "response.incomplete", "error", "response.error"}
)


class _CheckedStream:
    """A provider stream that raises `ProviderError` when it breaks or ends unfinished."""

    def __init__(
        self,
        inner: Any,
        *,
        base_url: str,
        finishes: Callable[[Any], bool],
        request_id: Callable[[Any], str | None],
    ) -> None:
        self._inner = inner
        self._iterator: Any = None
        self._base_url = base_url
        self._finishes = finishes
        self._request_id = request_id
        self._finished = False

    def __getattr__(self, name: str) -> Any:
        # The SDK reads the request id off the stream (`.response`, `.request_id`).
        return getattr(self._inner, name)

    def __aiter__(self) -> _CheckedStream:
        return self

    async def __anext__(self) -> Any:
        if self._iterator is None:
            self._iterator = self._inner.__aiter__()
        try:
            item = await self._iterator.__anext__()
        except StopAsyncIteration:
            if not self._finished:
                raise self._broken("stream ended before the reply was complete") from None
            raise
        except json.JSONDecodeError as e:
            raise self._broken("malformed stream (not JSON)") from e
        except openai.APIError as e:
            failure = _classified(e, self._base_url).failure
            if failure.status is None:  # it broke mid-stream: the request itself got a 200
                failure = dataclasses.replace(
                    failure, status=200, request_id=self._request_id(self._inner)
                )
            raise ProviderError(failure) from e
        if self._finishes(item):
            self._finished = True
        return item

    async def aclose(self) -> None:
        for name in ("aclose", "close"):
            close = getattr(self._inner, name, None)
            if callable(close):
                result = close()
                if inspect.isawaitable(result):
                    await result
                return

    def _broken(self, what: str) -> ProviderError:
        return broken_stream(
            what, base_url=self._base_url, request_id=self._request_id(self._inner)
        )


def _classified(error: Exception, base_url: str) -> ProviderError:
    failure = classify(error, base_url=base_url)
    assert failure is not None  # only called with openai.APIError
    return ProviderError(failure)


def _chat_chunk_finishes(chunk: Any) -> bool:
    return any(
        choice.index == 0 and choice.finish_reason is not None
        for choice in getattr(chunk, "choices", None) or []
    )


def _chat_request_id(stream: Any) -> str | None:
    headers = getattr(getattr(stream, "response", None), "headers", None)
    return headers.get("x-request-id") if headers is not None else None


def _responses_event_finishes(event: Any) -> bool:
    return getattr(event, "type", None) in _RESPONSES_TERMINAL


def _responses_request_id(stream: Any) -> str | None:
    return getattr(stream, "request_id", None)


class ChatCompletionsModel(OpenAIChatCompletionsModel):
    """`OpenAIChatCompletionsModel` with classified failures, truncation checks and usage."""

    def __init__(self, model: str, openai_client: openai.AsyncOpenAI, *, include_usage: bool):
        super().__init__(model=model, openai_client=openai_client)
        self.base_url = safe_base_url(openai_client.base_url)
        self._include_usage = include_usage

    async def stream_response(
        self,
        system_instructions: str | None,
        input: str | list[TResponseInputItem],
        model_settings: ModelSettings,
        tools: list[Tool],
        output_schema: AgentOutputSchemaBase | None,
        handoffs: list[Handoff],
        tracing: ModelTracing,
        previous_response_id: str | None = None,
        conversation_id: str | None = None,
        prompt: ResponsePromptParam | None = None,
    ) -> AsyncIterator[TResponseStreamEvent]:
        """The SDK's stream, asking for usage unless the agent's settings already decide."""
        if self._include_usage and model_settings.include_usage is None:
            model_settings = dataclasses.replace(model_settings, include_usage=True)
        async for event in super().stream_response(
            system_instructions,
            input,
            model_settings,
            tools,
            output_schema,
            handoffs,
            tracing,
            previous_response_id=previous_response_id,
            conversation_id=conversation_id,
            prompt=prompt,
        ):
            yield event

    async def _fetch_response(self, *args: Any, **kwargs: Any) -> Any:
        """The SDK's request, its failures classified and its chunk stream checked."""
        try:
            result = await super()._fetch_response(*args, **kwargs)
        except (openai.APIError, json.JSONDecodeError) as e:
            raise _request_failed(e, self.base_url) from e
        if not isinstance(result, tuple):
            return result
        response, stream = result
        checked = _CheckedStream(
            stream,
            base_url=self.base_url,
            finishes=_chat_chunk_finishes,
            request_id=_chat_request_id,
        )
        return response, checked


class ResponsesModel(OpenAIResponsesModel):
    """`OpenAIResponsesModel` with classified failures and truncation checks."""

    def __init__(self, model: str, openai_client: openai.AsyncOpenAI):
        super().__init__(model=model, openai_client=openai_client)
        self.base_url = safe_base_url(openai_client.base_url)

    async def _fetch_response(self, *args: Any, **kwargs: Any) -> Any:
        """The SDK's request, its failures classified and its event stream checked."""
        try:
            result = await super()._fetch_response(*args, **kwargs)
        except (openai.APIError, json.JSONDecodeError) as e:
            raise _request_failed(e, self.base_url) from e
        if not kwargs.get("stream"):
            return result
        return _CheckedStream(
            result,
            base_url=self.base_url,
            finishes=_responses_event_finishes,
            request_id=_responses_request_id,
        )


def _request_failed(error: Exception, base_url: str) -> ProviderError:
    if isinstance(error, openai.APIError):
        return _classified(error, base_url)
    return broken_stream("malformed response (not JSON)", base_url=base_url, request_id=None)
