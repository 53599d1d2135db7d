"""Realistic session items: Responses-API-shaped dicts of 0.5-2 KB, grouped into turns.

Memory stores spend their time serializing and parsing JSON, so the benchmark uses items of the
size and shape real turns have (user message, `function_call`, `function_call_output`,
assistant output message) rather than tiny stand-ins that would flatter every store alike.
"""

from __future__ import annotations

import json
import random
from typing import Any

Item = dict[str, Any]
# One turn as the SDK's runner writes it: each inner list is one `add_items` call.
TurnBatches = list[list[Item]]

MIN_BYTES = 512
MAX_BYTES = 2048
_VOCABULARY = (
    "task milk build deploy review notes meeting café naïve schedule report invoice budget "
    "follow-up release draft—final ticket backlog sprint garden dentist groceries"
)
_WORDS = _VOCABULARY.split()


def _text(rng: random.Random, chars: int) -> str:
    words: list[str] = []
    size = 0
    while size < chars:
        word = rng.choice(_WORDS)
        words.append(word)
        size += len(word) + 1
    return " ".join(words)[:chars]


def _sized(rng: random.Random, build: Any) -> Item:
    """Build an item whose JSON is between MIN_BYTES and MAX_BYTES, padding its free text."""
    target = rng.randint(MIN_BYTES, MAX_BYTES)
    text = _text(rng, max(0, target - _size(build(""))))
    while text and _size(build(text)) > target:  # escapes and UTF-8 make text cost more
        text = text[: len(text) - max(1, (_size(build(text)) - target) // 2)]
    return build(text)


def _size(item: Item) -> int:
    return len(json.dumps(item, ensure_ascii=False).encode())


def _hex(rng: random.Random) -> str:
    return f"{rng.getrandbits(96):024x}"


def user_item(rng: random.Random) -> Item:
    return _sized(rng, lambda text: {"role": "user", "content": f"add task {text}"})


def function_call_pair(rng: random.Random) -> list[Item]:
    """A tool call and its output, linked by `call_id` as the SDK records them."""
    call = _hex(rng)
    fc = _sized(
        rng,
        lambda text: {
            "arguments": json.dumps({"title": "buy milk", "notes": text}),
            "call_id": f"call_{call}",
            "name": "add_task",
            "type": "function_call",
            "id": f"fc_{call}",
            "status": "completed",
        },
    )
    fco = _sized(
        rng,
        lambda text: {
            "call_id": f"call_{call}",
            "output": json.dumps(
                {"id": "6816197c-2114-401e-a01f-c2b569a69971", "title": "buy milk", "notes": text}
            ),
            "type": "function_call_output",
        },
    )
    return [fc, fco]


def assistant_item(rng: random.Random) -> Item:
    msg = _hex(rng)
    return _sized(
        rng,
        lambda text: {
            "id": f"msg_{msg}",
            "content": [
                {"annotations": [], "text": f"Added {text}", "type": "output_text", "logprobs": []}
            ],
            "role": "assistant",
            "status": "completed",
            "type": "message",
        },
    )


def turn(rng: random.Random, *, tool: bool) -> TurnBatches:
    """The `add_items` calls of one turn: plain is [user], [reply]; a tool turn adds a pair."""
    if tool:
        return [[user_item(rng)], function_call_pair(rng), [assistant_item(rng)]]
    return [[user_item(rng)], [assistant_item(rng)]]


def is_tool_turn(index: int) -> bool:
    """Every third turn calls a tool, roughly the mix of the example todo agent."""
    return index % 3 == 1


def history(rng: random.Random, n_items: int) -> list[Item]:
    """`n_items` items of whole turns in order (the last turn may be cut short)."""
    items: list[Item] = []
    index = 0
    while len(items) < n_items:
        for batch in turn(rng, tool=is_tool_turn(index)):
            items.extend(batch)
        index += 1
    return items[:n_items]


def is_user(item: Item) -> bool:
    return item.get("role") == "user" and "type" not in item
