"""What memory holds for the PostgreSQL log's messages (to rebuild or repair memory).

The log keeps what users saw: their messages, and the agent's replies with the tool calls of
each turn. These functions give the SDK input items that stand for them, tool calls paired
with their outputs, and choose what a rebuilt memory keeps.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from agents.items import TResponseInputItem

from app.memory.pruning import is_turn_start, plan_cut


def user_item(text: str) -> TResponseInputItem:
    """The item a user's message becomes in memory (the SDK's easy input form)."""
    return cast(TResponseInputItem, {"role": "user", "content": text})


def assistant_item(text: str) -> TResponseInputItem:
    """The item a reply becomes in memory (a stopped reply's partial text too)."""
    return cast(TResponseInputItem, {"role": "assistant", "content": text})


def completed_tool_pairs(items: Sequence[Any]) -> list[TResponseInputItem]:
    """The function calls in `items` that have their output there too, with those outputs,
    in their order: what a failed or stopped turn keeps (a call without its output would be
    rejected by the model provider, and its effect is unknown)."""
    answered = {
        item.get("call_id")
        for item in items
        if isinstance(item, dict) and item.get("type") == "function_call_output"
    }
    return [
        cast(TResponseInputItem, item)
        for item in items
        if isinstance(item, dict)
        and item.get("type") in ("function_call", "function_call_output")
        and item.get("call_id") in answered
    ]


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
        # A failed turn's partial text was shown but never said: memory keeps only its calls.
        if meta.get("status") != "failed" and content:
            items.append({"role": "assistant", "content": content})
    return items


def newest_whole_turns(items: list[dict[str, Any]], max_items: int) -> list[TResponseInputItem]:
    """The newest whole turns of `items` that fit the cap (a rebuild never starts mid-turn)."""
    starts = [is_turn_start(item) for item in items]
    first_turn = starts.index(True) if True in starts else len(items)
    items, starts = items[first_turn:], starts[first_turn:]
    return cast(list[TResponseInputItem], items[plan_cut(starts, max_items).keep_from :])
