"""Turn-aligned pruning of agent memory, and rebuilding memory from the message log.

A cut is only ever made where a user message starts a turn. Everything a turn holds — tool
calls and their outputs, reasoning items, approvals — comes after its user message, so a
history that starts at a turn boundary can never hold a `function_call_output` whose
`function_call` was removed (OpenAI rejects that input with "No tool call found for function
call output").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


def is_turn_start(item: dict[str, Any]) -> bool:
    """A user message (easy or typed form) starts a turn."""
    return item.get("role") == "user" and item.get("type", "message") == "message"


@dataclass(frozen=True)
class Cut:
    """Where to cut a history: keep items from `keep_from` on."""

    keep_from: int
    oversized_turn: bool  # the newest turn alone exceeds the cap and is kept whole

    @property
    def removes_anything(self) -> bool:
        return self.keep_from > 0


def plan_cut(turn_starts: Sequence[bool], max_items: int) -> Cut:
    """Choose the oldest turn boundary that leaves at most `max_items` items.

    Args:
        turn_starts: for each item in order, whether it starts a turn.
        max_items: the cap.

    Returns:
        The cut. With no boundary that fits, the newest turn is kept whole (and flagged);
        with no boundary at all nothing is removed, since no cut would be valid.
    """
    total = len(turn_starts)
    if total <= max_items:
        return Cut(keep_from=0, oversized_turn=False)
    boundaries = [i for i, start in enumerate(turn_starts) if start]
    for index in boundaries:
        if total - index <= max_items:
            return Cut(keep_from=index, oversized_turn=False)
    if not boundaries:
        return Cut(keep_from=0, oversized_turn=True)
    return Cut(keep_from=boundaries[-1], oversized_turn=True)


def items_from_log(messages: Sequence[tuple[str, str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """SDK input items equivalent to logged messages, tool calls included.

    Args:
        messages: (role, content, metadata) in chronological order; an assistant message's
            metadata lists its turn's `tool_calls` (call_id, name, arguments, output).
    """
    items: list[dict[str, Any]] = []
    for role, content, meta in messages:
        if role == "user":
            items.append({"role": "user", "content": content})
            continue
        for call in meta.get("tool_calls") or []:
            call_id = str(call.get("call_id", ""))
            items.append(
                {
                    "type": "function_call",
                    "call_id": call_id,
                    "name": str(call.get("name", "")),
                    "arguments": str(call.get("arguments", "")),
                }
            )
            if call.get("output") is not None:
                items.append(
                    {"type": "function_call_output", "call_id": call_id, "output": call["output"]}
                )
        items.append({"role": "assistant", "content": content})
    return items
