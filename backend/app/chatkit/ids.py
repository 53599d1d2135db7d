"""ChatKit ids for Threadkeeper's threads and items.

- Threads: the thread's UUID. Anything else names no thread (ChatKit's not-found error), so
  memory paths are only ever built from parsed UUIDs.
- A user message sent through ChatKit: the id its client was given (kept with the message).
  A user message sent through REST: its UUID.
- The agent's reply in a turn: `reply_<turn id>`, and its tool calls (a workflow item):
  `tools_<turn id>`. Both are known when the turn starts, so the live stream and a later
  `items.list` name them alike, whichever API started the turn. (Messages from before turns
  were recorded use the message's own id.)
- Other ChatKit items (widgets, workflows, ...): the id ChatKit generated.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Literal

from chatkit.store import NotFoundError, StoreItemType

REPLY_PREFIX = "reply_"
TOOLS_PREFIX = "tools_"

_PREFIXES: dict[StoreItemType, str] = {
    "thread": "thr",
    "message": "msg",
    "tool_call": "tc",
    "workflow": "wf",
    "task": "tsk",
    "attachment": "atc",
    "sdk_hidden_context": "shcx",
}


def new_item_id(item_type: StoreItemType) -> str:
    """A fresh item id: ChatKit's prefixes with a whole UUID (never a reply or tools id)."""
    return f"{_PREFIXES[item_type]}_{uuid.uuid4().hex}"


def reply_item_id(anchor: uuid.UUID) -> str:
    """The reply of turn `anchor` (or, before turns were recorded, of that message)."""
    return f"{REPLY_PREFIX}{anchor.hex}"


def tools_item_id(anchor: uuid.UUID) -> str:
    """The tool calls of turn `anchor`'s reply, shown as one workflow item."""
    return f"{TOOLS_PREFIX}{anchor.hex}"


@dataclass(frozen=True)
class ItemRef:
    """What an item id names: a part of a reply, a message by its UUID, or a stored id."""

    kind: Literal["reply", "tools", "message", "stored"]
    raw: str
    anchor: uuid.UUID | None = None


def parse_item_id(item_id: str) -> ItemRef:
    for prefix, kind in ((REPLY_PREFIX, "reply"), (TOOLS_PREFIX, "tools")):
        if item_id.startswith(prefix):
            anchor = _uuid(item_id[len(prefix) :])
            if anchor is not None:
                return ItemRef(kind, item_id, anchor)  # type: ignore[arg-type]  # kind is one of the two
    message_id = _uuid(item_id)
    if message_id is not None:
        return ItemRef("message", item_id, message_id)
    return ItemRef("stored", item_id)


def parse_thread_id(thread_id: str) -> uuid.UUID:
    """The UUID a ChatKit thread id names.

    Raises:
        NotFoundError: (ChatKit's) for anything that is not one of our thread ids.
    """
    parsed = _uuid(thread_id)
    if parsed is None or str(parsed) != thread_id.lower():
        raise NotFoundError(f"Thread {thread_id} not found")
    return parsed


def _uuid(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None
