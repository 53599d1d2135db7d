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


def newest_whole_turns(items: list[dict[str, Any]], max_items: int) -> list[TResponseInputItem]:
    """The newest whole turns of `items` that fit the cap (a rebuild never starts mid-turn)."""
    starts = [is_turn_start(item) for item in items]
    first_turn = starts.index(True) if True in starts else len(items)
    items, starts = items[first_turn:], starts[first_turn:]
    return cast(list[TResponseInputItem], items[plan_cut(starts, max_items).keep_from :])
