"""Reading the runner's input items for the offline model.

The runner hands a model the whole thread as Responses-API items; these helpers turn them into
plain data the planner can reason about (the current request, the tool calls already made in
this turn, the user's earlier messages, the summary of pruned turns) without SDK types.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from app.assistant.offline_summary import OfflineSummary
from app.memory.pruning import is_turn_start
from app.memory.summary import is_summary_item

HANDOFF_PREFIX = "transfer_to_"
"""The SDK names a handoff's tool `transfer_to_<agent>`: such a call hands the turn over."""


@dataclass(frozen=True)
class ToolStep:
    """One tool call made earlier in the current turn, with its output once it has run."""

    name: str
    arguments: dict[str, Any]
    output: Any


def as_item_list(items: str | Sequence[Any]) -> list[dict[str, Any]]:
    """Normalise runner input to dicts; a bare string is the SDK's shorthand for one user turn."""
    if isinstance(items, str):
        return [{"role": "user", "content": items}]
    result = []
    for item in items:
        if hasattr(item, "model_dump"):
            item = item.model_dump(exclude_unset=True)
        result.append(dict(item) if isinstance(item, dict) else {})
    return result


def message_text(content: Any) -> str:
    """Concatenate the text parts of a message's content, which may be a str or a part list."""
    if isinstance(content, str):
        return content
    parts = []
    for part in content or []:
        if isinstance(part, dict) and isinstance(part.get("text"), str):
            parts.append(part["text"])
    return "".join(parts)


def user_texts(items: list[dict[str, Any]]) -> list[str]:
    """All user messages of the thread, oldest first; this is the model's only memory."""
    return [message_text(item.get("content")) for item in items if is_turn_start(item)]


def summary_in(items: list[dict[str, Any]]) -> OfflineSummary:
    """What the summary of pruned turns says, if the model was sent one (else nothing)."""
    for item in items:
        if is_summary_item(item):
            return OfflineSummary.parse(message_text(item.get("content")))
    return OfflineSummary()


def split_turn(items: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """Return the current request (last user message) and the items produced after it."""
    for index in range(len(items) - 1, -1, -1):
        if is_turn_start(items[index]):
            return message_text(items[index].get("content")), items[index + 1 :]
    return "", items


def parse_output(output: Any) -> Any:
    """Decode a tool output: JSON, then a Python literal (``str(dict)``), else the raw text."""
    if not isinstance(output, str):
        return output
    try:
        return json.loads(output)
    except ValueError:
        pass
    try:
        return ast.literal_eval(output)
    except (ValueError, SyntaxError):
        return output


def turn_steps(after: list[dict[str, Any]]) -> list[ToolStep]:
    """Pair this turn's function calls with their outputs (by ``call_id``), in call order."""
    outputs = {
        item.get("call_id"): message_text(item.get("output"))
        for item in after
        if item.get("type") == "function_call_output"
    }
    steps = []
    for item in after:
        if item.get("type") != "function_call" or is_handoff(str(item.get("name", ""))):
            continue
        arguments = parse_output(item.get("arguments") or "{}")
        steps.append(
            ToolStep(
                name=str(item.get("name", "")),
                arguments=arguments if isinstance(arguments, dict) else {},
                output=parse_output(outputs.get(item.get("call_id"))),
            )
        )
    return steps


def is_handoff(tool_name: str) -> bool:
    return tool_name.startswith(HANDOFF_PREFIX)
