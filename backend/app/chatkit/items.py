"""The log's messages as ChatKit items, and a ChatKit user message as the text a turn takes.

One function renders a logged message for both a live stream (from the turn's
`assistant_message` event) and a later read (from the row), so what a client saw streaming
is what it reads back.

- A user message: the ChatKit item its client sent (tags, quoted text, inference options),
  else one text part.
- An assistant message: its tool calls (if any) as one workflow item of finished tasks, then
  the reply's text. A failed or stopped turn's kept reply renders the same way.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from chatkit.types import (
    AssistantMessageContent,
    AssistantMessageItem,
    CustomSummary,
    CustomTask,
    InferenceOptions,
    Task,
    ThreadItem,
    UserMessageContent,
    UserMessageItem,
    UserMessageTagContent,
    UserMessageTextContent,
    Workflow,
    WorkflowItem,
)
from pydantic import TypeAdapter

from app.chatkit.ids import reply_item_id, tools_item_id
from app.models import Message, MessagePublic, MessageRole

THREAD_ITEM: TypeAdapter[ThreadItem] = TypeAdapter(ThreadItem)


@dataclass(frozen=True)
class LoggedMessage:
    """A message of the log, from its row or from a turn's event."""

    id: uuid.UUID
    thread_id: uuid.UUID
    role: str
    content: str
    created_at: datetime
    meta: dict[str, Any] = field(default_factory=dict)
    turn_id: uuid.UUID | None = None
    chatkit_item: dict[str, Any] | None = None

    @classmethod
    def of_row(cls, row: Message) -> LoggedMessage:
        return cls(
            id=row.id,
            thread_id=row.thread_id,
            role=row.role,
            content=row.content,
            created_at=row.created_at,
            meta=row.meta,
            turn_id=row.turn_id,
            chatkit_item=row.chatkit_item,
        )

    @classmethod
    def of_public(cls, public: MessagePublic) -> LoggedMessage:
        return cls(
            id=public.id,
            thread_id=public.thread_id,
            role=public.role,
            content=public.content,
            created_at=public.created_at,
            meta=public.metadata,
            turn_id=public.turn_id,
        )

    @property
    def anchor(self) -> uuid.UUID:
        """What a reply's item ids derive from: its turn (or itself, before turns)."""
        return self.turn_id or self.id


def message_items(message: LoggedMessage) -> list[ThreadItem]:
    """The ChatKit items of one logged message, in order (at least one)."""
    if message.role == MessageRole.USER:
        return [user_item(message)]
    workflow = tools_item(message)
    reply = reply_item(message.thread_id, message.anchor, message.created_at, message.content)
    return [workflow, reply] if workflow is not None else [reply]


def user_item(message: LoggedMessage) -> UserMessageItem:
    if message.chatkit_item is not None:
        stored = THREAD_ITEM.validate_python(message.chatkit_item)
        if isinstance(stored, UserMessageItem):
            return stored.model_copy(update={"thread_id": str(message.thread_id)})
    return UserMessageItem(
        id=str(message.id),
        thread_id=str(message.thread_id),
        created_at=message.created_at,
        content=[UserMessageTextContent(text=message.content)],
        inference_options=InferenceOptions(),
    )


def reply_item(
    thread_id: uuid.UUID, anchor: uuid.UUID, created_at: datetime, text: str
) -> AssistantMessageItem:
    return AssistantMessageItem(
        id=reply_item_id(anchor),
        thread_id=str(thread_id),
        created_at=created_at,
        content=[AssistantMessageContent(text=text)],
    )


def tools_item(message: LoggedMessage) -> WorkflowItem | None:
    """The reply's tool calls as a finished workflow, or None when it made none."""
    calls = [c for c in message.meta.get("tool_calls") or [] if isinstance(c, dict)]
    if not calls:
        return None
    tasks = [tool_task(c, done=c.get("output") is not None) for c in calls]
    return workflow_item(message.thread_id, message.anchor, message.created_at, tasks, done=True)


def workflow_item(
    thread_id: uuid.UUID,
    anchor: uuid.UUID,
    created_at: datetime,
    tasks: Sequence[Task],
    *,
    done: bool,
) -> WorkflowItem:
    count = len(tasks)
    summary = CustomSummary(title=f"Used {count} tool{'s' if count != 1 else ''}")
    return WorkflowItem(
        id=tools_item_id(anchor),
        thread_id=str(thread_id),
        created_at=created_at,
        workflow=Workflow(
            type="custom", tasks=list(tasks), summary=summary if done else None, expanded=False
        ),
    )


def tool_task(call: dict[str, Any], *, done: bool) -> CustomTask:
    """One tool call: its name, arguments and (once it returned) its output."""
    lines = [f"Arguments: {call.get('arguments', '')}"]
    if call.get("output") is not None:
        lines.append(f"Result: {call['output']}")
    return CustomTask(
        title=str(call.get("name", "")),
        content="\n\n".join(lines),
        status_indicator="complete" if done else "loading",
    )


def turn_text(item: UserMessageItem) -> str:
    """The text a turn takes for a ChatKit user message (see `input_text`)."""
    return input_text(item.content, item.quoted_text)


def input_text(content: list[UserMessageContent], quoted_text: str | None) -> str:
    """The parts as typed (a tag as its `@text`, as ChatKit's own converter does), after the
    quoted text as a quote. Both stores keep this text, so the agent's memory and any rebuild
    of it from the log agree."""
    text = typed(content)
    if quoted_text:
        quoted = "\n".join(f"> {line}" for line in quoted_text.splitlines())
        text = f"{quoted}\n\n{text}"
    return text


def typed_text(item: UserMessageItem) -> str:
    """What the user typed, without the quote."""
    return typed(item.content)


def typed(content: list[UserMessageContent]) -> str:
    return "".join(
        f"@{part.text}" if isinstance(part, UserMessageTagContent) else part.text
        for part in content
    )


def title_from(text: str, max_chars: int) -> str | None:
    """A new thread's title from its first message: the first line, shortened (as the chat
    page does: 60 characters at most)."""
    first = next((line.strip() for line in text.strip().splitlines() if line.strip()), "")
    limit = min(max_chars, 60)
    if not first:
        return None
    return first if len(first) <= limit else f"{first[: limit - 1]}\u2026"
