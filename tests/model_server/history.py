"""Read a model request back into conversation items, offered tools and a token count.

The grammar (`app.assistant.offline_planner.plan_reply`) reads Responses-style items. Chat
Completions requests carry the same conversation as messages, so they are converted back:
user/assistant messages stay messages, an assistant's `tool_calls` become `function_call`
items and `tool` messages become `function_call_output` items, paired by call id. Both APIs
therefore get the same answer for the same conversation, and the same token counts.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from app.assistant.offline_history import as_item_list, message_text


def estimate_tokens(text: str) -> int:
    """About four characters per token, rounded up: the rule every usage figure follows."""
    return math.ceil(len(text) / 4)


def chat_items(messages: Iterable[Any]) -> list[dict[str, Any]]:
    """Responses-style items for Chat Completions `messages` (system messages are dropped)."""
    items: list[dict[str, Any]] = []
    for message in messages:
        if not isinstance(message, dict):
            continue
        role = message.get("role")
        if role == "user":
            items.append({"role": "user", "content": message_text(message.get("content"))})
        elif role == "assistant":
            items.extend(_assistant_items(message))
        elif role == "tool":
            items.append(
                {
                    "type": "function_call_output",
                    "call_id": message.get("tool_call_id"),
                    "output": message_text(message.get("content")),
                }
            )
    return items


def _assistant_items(message: dict[str, Any]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    text = message_text(message.get("content"))
    if text:
        items.append({"role": "assistant", "content": text})
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        items.append(
            {
                "type": "function_call",
                "call_id": call.get("id"),
                "name": function.get("name", ""),
                "arguments": function.get("arguments", ""),
            }
        )
    return items


def responses_items(request_input: Any) -> list[dict[str, Any]]:
    """The Responses `input` (a string or a list of items) as a list of item dicts."""
    if request_input is None:
        return []
    return as_item_list(request_input)


def offered_tools(tools: Any, tool_choice: Any) -> set[str]:
    """Names of the function tools a request offers; none when `tool_choice` is "none"."""
    if tool_choice == "none" or not isinstance(tools, list):
        return set()
    names = set()
    for tool in tools:
        if not isinstance(tool, dict) or tool.get("type") != "function":
            continue
        # Chat Completions nests the name under "function"; Responses puts it at the top.
        name = (tool.get("function") or {}).get("name") or tool.get("name")
        if isinstance(name, str):
            names.add(name)
    return names


def prompt_text(instructions: str | None, items: list[dict[str, Any]]) -> str:
    """Everything the model reads, as one string: instructions, messages, calls and outputs.

    Tool definitions and JSON structure are left out, so a conversation counts the same on
    both APIs and a test can compute the expected `prompt_tokens` by hand.
    """
    parts = [instructions or ""]
    for item in items:
        kind = item.get("type", "message")
        if kind == "function_call":
            parts.append(str(item.get("name", "")) + str(item.get("arguments", "")))
        elif kind == "function_call_output":
            parts.append(message_text(item.get("output")))
        else:
            parts.append(message_text(item.get("content")))
    return "".join(parts)


def chat_instructions(messages: Iterable[Any]) -> str:
    """The system and developer messages of a Chat Completions request, concatenated."""
    return "".join(
        message_text(message.get("content"))
        for message in messages
        if isinstance(message, dict) and message.get("role") in ("system", "developer")
    )
