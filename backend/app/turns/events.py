"""The Server-Sent Events a turn streams, and their payloads.

Order: `user_message`, then any of `text_delta` / `tool_call` / `tool_result`, then either
`assistant_message` or `error`, and always `done` last.
"""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, SerializerFunctionWrapHandler, model_serializer

from app.models.turn import TurnStatus


class TurnEvent(StrEnum):
    USER_MESSAGE = "user_message"
    TEXT_DELTA = "text_delta"
    TOOL_CALL = "tool_call"
    TOOL_RESULT = "tool_result"
    ASSISTANT_MESSAGE = "assistant_message"
    ERROR = "error"
    DONE = "done"


class TextDelta(BaseModel):
    delta: str


class ToolCall(BaseModel):
    call_id: str
    name: str
    arguments: str


class ToolResult(BaseModel):
    call_id: str
    name: str
    output: str


class TurnError(BaseModel):
    """`{code, message, retryable}`, plus what some classes add (absent otherwise)."""

    code: str
    message: str
    retryable: bool
    retry_after_seconds: int | None = None  # model_rate_limited: the provider's Retry-After
    setting: str | None = None  # model_misconfigured: the setting an operator must fix

    @model_serializer(mode="wrap")
    def _omit_absent(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        for optional in ("retry_after_seconds", "setting"):
            if data.get(optional) is None:
                data.pop(optional, None)
        return data


class TurnDone(BaseModel):
    turn_id: uuid.UUID
    status: TurnStatus  # completed | failed | cancelled


class ToolCallRecord(BaseModel):
    """A tool call with its result, as kept in the assistant message's metadata."""

    call_id: str
    name: str
    arguments: str
    output: str | None = None

    def as_metadata(self) -> dict[str, Any]:
        return self.model_dump()
