"""The Conversations API, in memory, as `agents.memory.OpenAIConversationsSession` uses it.

Items are stored the way the real API returns them: every item gets an id and a status, and a
message's string content becomes typed parts (`input_text` for user/system/developer,
`output_text` for the assistant). Listing is cursor-paginated like the real endpoint: `order`
(default `desc`), `limit` (default 20, 1-100) and `after` (an item id), answered with
`first_id`, `last_id` and `has_more`, which is what the client's auto-pagination follows.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

MAX_ITEMS_PER_CREATE = 20
DEFAULT_LIMIT = 20
MAX_LIMIT = 100
_ID_PREFIXES = {"message": "msg", "function_call": "fc", "function_call_output": "fco"}


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def stored_item(item: dict[str, Any]) -> dict[str, Any]:
    """An input item as the API stores and returns it (id, status, typed content parts)."""
    kind = item.get("type") or "message"
    stored = {key: value for key, value in item.items() if key != "id"}
    stored["type"] = kind
    stored["id"] = item.get("id") or new_id(_ID_PREFIXES.get(kind, "item"))
    stored.setdefault("status", "completed")
    if kind == "message":
        stored["content"] = _content_parts(item.get("role", "user"), item.get("content"))
    return stored


def _content_parts(role: str, content: Any) -> list[dict[str, Any]]:
    if isinstance(content, list):
        return [_with_annotations(part) for part in content if isinstance(part, dict)]
    if role == "assistant":
        return [{"type": "output_text", "text": str(content or ""), "annotations": []}]
    return [{"type": "input_text", "text": str(content or "")}]


def _with_annotations(part: dict[str, Any]) -> dict[str, Any]:
    if part.get("type") == "output_text":
        return {"annotations": [], **part}
    return part


@dataclass
class Conversation:
    id: str
    created_at: int
    metadata: dict[str, Any]
    items: list[dict[str, Any]] = field(default_factory=list)

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "conversation",
            "created_at": self.created_at,
            "metadata": self.metadata,
        }


class ConversationStore:
    """Conversations by id; used only on the server's loop, so no locking is needed."""

    def __init__(self) -> None:
        self._conversations: dict[str, Conversation] = {}

    def clear(self) -> None:
        self._conversations.clear()

    def create(self, items: list[dict[str, Any]], metadata: dict[str, Any]) -> Conversation:
        conversation = Conversation(new_id("conv"), int(time.time()), metadata)
        conversation.items.extend(stored_item(item) for item in items)
        self._conversations[conversation.id] = conversation
        return conversation

    def get(self, conversation_id: str) -> Conversation | None:
        return self._conversations.get(conversation_id)

    def delete(self, conversation_id: str) -> bool:
        return self._conversations.pop(conversation_id, None) is not None

    def __len__(self) -> int:
        return len(self._conversations)


def add_items(conversation: Conversation, items: list[dict[str, Any]]) -> dict[str, Any]:
    """Append items; the answer lists the stored items, as `items.create` returns them."""
    added = [stored_item(item) for item in items]
    conversation.items.extend(added)
    return item_page(added, has_more=False)


def list_items(
    conversation: Conversation, *, order: str, limit: int, after: str | None
) -> dict[str, Any] | None:
    """One page of items, or None when `after` names no item of the conversation."""
    items = conversation.items if order == "asc" else list(reversed(conversation.items))
    start = 0
    if after is not None:
        ids = [item["id"] for item in items]
        if after not in ids:
            return None
        start = ids.index(after) + 1
    page = items[start : start + limit]
    return item_page(page, has_more=start + limit < len(items))


def item_page(items: list[dict[str, Any]], *, has_more: bool) -> dict[str, Any]:
    return {
        "object": "list",
        "data": items,
        "first_id": items[0]["id"] if items else None,
        "last_id": items[-1]["id"] if items else None,
        "has_more": has_more,
    }


def delete_item(conversation: Conversation, item_id: str) -> bool:
    for index, item in enumerate(conversation.items):
        if item["id"] == item_id:
            del conversation.items[index]
            return True
    return False
