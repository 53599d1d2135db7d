"""Translation of the SDK's stream events into the turn's SSE events, and what a turn records.

Kept apart from the turn's orchestration so the mapping can be read (and tested) in one place.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from agents import RunItemStreamEvent, StreamEvent as SdkStreamEvent
from agents.stream_events import RawResponsesStreamEvent
from pydantic import BaseModel

from app.turns.events import TextDelta, ToolCall, ToolCallRecord, ToolResult, TurnEvent


@dataclass
class TurnRecorder:
    """Collects what a turn produced while its events stream by."""

    text_parts: list[str] = field(default_factory=list)
    tool_calls: dict[str, ToolCallRecord] = field(default_factory=dict)

    def translate(self, event: SdkStreamEvent) -> tuple[TurnEvent, BaseModel] | None:
        """The SSE event for one SDK event, or None for events clients do not see."""
        if isinstance(event, RawResponsesStreamEvent):
            if getattr(event.data, "type", None) == "response.output_text.delta":
                delta = str(event.data.delta)  # type: ignore[union-attr]  # narrowed by `type`
                self.text_parts.append(delta)
                return TurnEvent.TEXT_DELTA, TextDelta(delta=delta)
            return None
        if not isinstance(event, RunItemStreamEvent):
            return None
        # A handoff is a function call too (`transfer_to_<agent>`): it is shown, logged and
        # rebuilt into memory like any tool call, so a rebuilt memory keeps it.
        if event.name in ("tool_called", "handoff_requested"):
            raw = _as_dict(event.item.raw_item)
            call = ToolCallRecord(
                call_id=str(raw.get("call_id", "")),
                name=str(raw.get("name", "")),
                arguments=str(raw.get("arguments", "")),
            )
            self.tool_calls[call.call_id] = call
            return TurnEvent.TOOL_CALL, ToolCall(
                call_id=call.call_id, name=call.name, arguments=call.arguments
            )
        if event.name in ("tool_output", "handoff_occured"):
            raw = _as_dict(event.item.raw_item)
            call_id = str(raw.get("call_id", ""))
            output = _output_text(getattr(event.item, "output", raw.get("output")))
            record = self.tool_calls.get(call_id)
            if record is not None:
                record.output = output
            name = record.name if record else ""
            return TurnEvent.TOOL_RESULT, ToolResult(call_id=call_id, name=name, output=output)
        return None

    @property
    def text(self) -> str:
        """Every text delta so far, joined."""
        return "".join(self.text_parts)

    def metadata_tool_calls(self, *, completed_only: bool = False) -> list[dict[str, Any]]:
        """The calls for the reply's metadata; `completed_only`: those that returned."""
        calls = self.tool_calls.values()
        return [c.as_metadata() for c in calls if c.output is not None or not completed_only]


def _as_dict(raw: Any) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    if hasattr(raw, "model_dump"):
        dumped: dict[str, Any] = raw.model_dump(exclude_unset=True)
        return dumped
    return {}


def _output_text(output: Any) -> str:
    if isinstance(output, str):
        return output
    try:
        return json.dumps(output, default=str)
    except (TypeError, ValueError):
        return str(output)
