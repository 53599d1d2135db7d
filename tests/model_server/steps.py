"""Script steps: what the model server answers to one model request.

A test enqueues steps; each model request (Chat Completions or Responses, streamed or not)
takes the next one. Steps describe *what* to answer, never the wire format, so one script works
against both APIs. Grammar and fixed mode produce the same step types, which keeps a single
renderer per API.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

_WORD = re.compile(r"\s*\S+")


def split_words(text: str) -> list[str]:
    """Split text into words that keep their leading whitespace, so they concatenate back."""
    words = _WORD.findall(text)
    tail = text[len("".join(words)) :]
    if tail and words:
        words[-1] += tail
    return words or ([text] if text else [])


def split_into(text: str, count: int) -> list[str]:
    """Split text into at most `count` word-aligned pieces of near-equal word counts."""
    words = split_words(text)
    if count <= 0 or len(words) <= count:
        return words
    size, extra = divmod(len(words), count)
    pieces, start = [], 0
    for index in range(count):
        end = start + size + (1 if index < extra else 0)
        pieces.append("".join(words[start:end]))
        start = end
    return pieces


def counting_text(count: int) -> str:
    """The fixed reply of `count` tokens: "tok1 tok2 ... tokN" (one word per token)."""
    return " ".join(f"tok{number}" for number in range(1, count + 1))


@dataclass(frozen=True)
class Text:
    """A text reply streamed as deltas, with `delay` seconds between consecutive deltas.

    By default every word is one delta; `tokens` regroups the words into at most that many.
    `first_delay` is the wait before the first delta: a real model's time to first token.
    """

    text: str
    tokens: int | None = None
    delay: float = 0.0
    first_delay: float = 0.0

    @classmethod
    def of_tokens(cls, count: int, *, delay: float = 0.0, first_delay: float = 0.0) -> Text:
        """A reply of exactly `count` deltas, "tok1", " tok2", ...: slow streams for load tests."""
        return cls(counting_text(count), delay=delay, first_delay=first_delay)

    def deltas(self) -> list[str]:
        """The streamed pieces; they concatenate to exactly `text`."""
        return split_into(self.text, self.tokens or 0)


@dataclass(frozen=True)
class ToolCall:
    """One function call; `call_id` is generated when not given, as the real API does."""

    name: str
    arguments: Mapping[str, Any] | str = field(default_factory=dict)
    call_id: str = field(default_factory=lambda: f"call_{uuid.uuid4().hex[:24]}")

    @property
    def arguments_json(self) -> str:
        if isinstance(self.arguments, str):
            return self.arguments
        return json.dumps(dict(self.arguments), separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class ToolCalls:
    """Several function calls in one reply (parallel tool calls)."""

    calls: tuple[ToolCall, ...]


@dataclass(frozen=True)
class HttpError:
    """An HTTP error with OpenAI's body shape: {"error": {message, type, code, param}}.

    The presets reproduce the errors the real API sends, so callers can be tested against the
    exact status, code and headers they would see in production.
    """

    status: int
    message: str
    type: str = "invalid_request_error"
    code: str | None = None
    param: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    @classmethod
    def context_length_exceeded(cls, limit: int = 128_000, used: int = 130_000) -> HttpError:
        return cls(
            400,
            f"This model's maximum context length is {limit} tokens. However, your messages "
            f"resulted in {used} tokens. Please reduce the length of the messages.",
            code="context_length_exceeded",
            param="messages",
        )

    @classmethod
    def invalid_api_key(cls, key: str = "sk-wrong") -> HttpError:
        return cls(
            401,
            f"Incorrect API key provided: {key[:6]}***. You can find your API key at "
            "https://platform.openai.com/account/api-keys.",
            code="invalid_api_key",
        )

    @classmethod
    def model_not_found(cls, model: str) -> HttpError:
        return cls(
            404,
            f"The model `{model}` does not exist or you do not have access to it.",
            code="model_not_found",
        )

    @classmethod
    def rate_limited(cls, retry_after: int = 1, request_id: str | None = None) -> HttpError:
        headers = {"retry-after": str(retry_after)}
        if request_id is not None:
            headers["x-request-id"] = request_id
        return cls(
            429,
            "Rate limit reached for requests. Please try again later.",
            type="requests",
            code="rate_limit_exceeded",
            headers=headers,
        )

    @classmethod
    def server_error(cls) -> HttpError:
        return cls(
            500,
            "The server had an error while processing your request. Sorry about that!",
            type="server_error",
        )

    @classmethod
    def unavailable(cls) -> HttpError:
        return cls(
            503,
            "The server is overloaded or not ready yet.",
            type="server_error",
            code="service_unavailable",
        )


@dataclass(frozen=True)
class Malformed:
    """A stream that turns to garbage (or cut-off JSON) after `after_tokens` good deltas."""

    after_tokens: int = 1
    kind: Literal["truncated_json", "garbage"] = "truncated_json"


@dataclass(frozen=True)
class Hang:
    """A stream that stops sending after `after_tokens` deltas and never finishes.

    It ends (by dropping the connection) when the client goes away or the server is reset or
    stopped. A non-streaming request hangs before any response is sent.
    """

    after_tokens: int = 0


@dataclass(frozen=True)
class Drop:
    """The server closes the connection mid-response, after `after_tokens` deltas."""

    after_tokens: int = 1


@dataclass(frozen=True)
class EndsEarly:
    """The stream ends cleanly after `after_tokens` deltas: no finish reason, no `[DONE]`.

    This is what a proxy that cuts a response short looks like; it is not an HTTP error.
    """

    after_tokens: int = 1


Step = Text | ToolCall | ToolCalls | HttpError | Malformed | Hang | Drop | EndsEarly
Interrupted = Malformed | Hang | Drop | EndsEarly
"""Steps that start a normal text stream and then fail in a particular way."""


def as_step(value: Step | Iterable[ToolCall]) -> Step:
    """A step as given, or a list of ToolCalls as one parallel reply."""
    if isinstance(value, Step):
        return value
    return ToolCalls(tuple(value))
