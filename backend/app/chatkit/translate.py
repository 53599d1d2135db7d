"""A turn's events (the same log a REST stream follows) as ChatKit's own stream events.

The turn runs in the turn service's task, whatever the client does; `follow_turn` only
reads its event log, so ChatKit and REST clients see one and the same run. Mapping:

| turn event | ChatKit events |
|---|---|
| `text_delta` | the reply item added (`reply_<turn>`), then its text deltas |
| `tool_call`, `tool_result` | one workflow item (`tools_<turn>`): a task per call, complete when it returned |
| `assistant_message` | the workflow and the reply done, rendered from the saved message exactly as `items.list` renders it |
| `error` | what a failed turn kept, done (its other items removed), then ChatKit's `ErrorEvent` |
| `done` | items never saved are removed; the stream ends |

`chatkit.agents.stream_agent_response` is not used: it consumes the SDK run's event queue
itself (a run has one consumer), and that run belongs to the turn service, so that a turn
outlives its client and the REST API can follow or resume the same run.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

from chatkit.types import (
    AssistantMessageContent,
    AssistantMessageContentPartAdded,
    AssistantMessageContentPartDone,
    AssistantMessageContentPartTextDelta,
    AssistantMessageItem,
    ErrorEvent,
    ThreadItemAddedEvent,
    ThreadItemDoneEvent,
    ThreadItemRemovedEvent,
    ThreadItemReplacedEvent,
    ThreadItemUpdatedEvent,
    ThreadStreamEvent,
    WorkflowItem,
    WorkflowTaskAdded,
    WorkflowTaskUpdated,
)

from app.chatkit.ids import reply_item_id
from app.chatkit.items import LoggedMessage, message_items, tool_task, workflow_item
from app.models import MessagePublic
from app.models.base import utc_now
from app.turns.events import TurnError, TurnEvent
from app.turns.turn import RunningTurn


async def follow_turn(turn: RunningTurn) -> AsyncIterator[ThreadStreamEvent]:
    """ChatKit events for a started turn, from its first event to its end."""
    translator = TurnTranslator(turn.thread_id, turn.id)
    async for entry in turn.log.follow(0):
        if entry is None:
            continue
        _, kind, data = entry
        if kind == TurnEvent.DONE:
            for event in translator.ended():
                yield event
            return
        if kind == TurnEvent.ERROR:
            events = translator.failed(turn.kept, TurnError.model_validate_json(data))
        elif kind == TurnEvent.ASSISTANT_MESSAGE:
            events = translator.finished(MessagePublic.model_validate_json(data))
        else:
            events = translator.translate(kind, json.loads(data))
        for event in events:
            yield event


class TurnTranslator:
    """The ChatKit items of one turn while its events stream by."""

    def __init__(self, thread_id: uuid.UUID, turn_id: uuid.UUID) -> None:
        self.thread_id, self.turn_id = thread_id, turn_id
        self.reply: AssistantMessageItem | None = None
        self.workflow: WorkflowItem | None = None
        self.workflow_done = False
        self.calls: dict[str, tuple[int, dict[str, Any]]] = {}
        self.saved = False  # the turn's reply (or what it kept) was saved and sent

    def translate(self, kind: TurnEvent, payload: dict[str, Any]) -> list[ThreadStreamEvent]:
        if kind == TurnEvent.TEXT_DELTA:
            return self._text(str(payload["delta"]))
        if kind == TurnEvent.TOOL_CALL:
            return self._tool_called(payload)
        if kind == TurnEvent.TOOL_RESULT:
            return self._tool_returned(payload)
        return []  # user_message: the user item is already done (or, for a retry, known)

    def finished(self, message: MessagePublic) -> list[ThreadStreamEvent]:
        """The saved reply: its items done, rendered as a later read renders them."""
        self.saved = True
        events: list[ThreadStreamEvent] = []
        for item in message_items(LoggedMessage.of_public(message)):
            if isinstance(item, WorkflowItem):
                shown = self.workflow.workflow if self.workflow_done and self.workflow else None
                self.workflow, self.workflow_done = item, True
                if shown is None:
                    events.append(ThreadItemDoneEvent(item=item))
                elif shown != item.workflow:  # done when the reply began; changed since
                    events.append(ThreadItemReplacedEvent(item=item))
            elif isinstance(item, AssistantMessageItem):
                if self.reply is not None:
                    done = AssistantMessageContentPartDone(content_index=0, content=item.content[0])
                    events.append(ThreadItemUpdatedEvent(item_id=item.id, update=done))
                self.reply = item
                events.append(ThreadItemDoneEvent(item=item))
        if self.workflow is not None and not self.workflow_done:
            events.append(ThreadItemRemovedEvent(item_id=self.workflow.id))  # nothing kept
            self.workflow = None
        return events

    def failed(self, kept: MessagePublic | None, error: TurnError) -> list[ThreadStreamEvent]:
        """A failed turn: what it kept (completed tool calls, shown text), then the error."""
        events = self.finished(kept) if kept is not None else self._unsaved()
        events.append(ErrorEvent(code="custom", message=error.message, allow_retry=error.retryable))
        return events

    def ended(self) -> list[ThreadStreamEvent]:
        """The turn is over: items it streamed but never saved go (a stop before any text)."""
        return [] if self.saved else self._unsaved()

    def _unsaved(self) -> list[ThreadStreamEvent]:
        opened = [item.id for item in (self.workflow, self.reply) if item is not None]
        self.workflow = self.reply = None
        self.saved = True
        return [ThreadItemRemovedEvent(item_id=item_id) for item_id in opened]

    def _text(self, delta: str) -> list[ThreadStreamEvent]:
        events: list[ThreadStreamEvent] = []
        if self.reply is None:
            if self.workflow is not None and not self.workflow_done:
                events.append(self._close_workflow())
            self.reply = AssistantMessageItem(
                id=reply_item_id(self.turn_id),
                thread_id=str(self.thread_id),
                created_at=utc_now(),
                content=[],
            )
            started = AssistantMessageContentPartAdded(
                content_index=0, content=AssistantMessageContent(text="")
            )
            events += [
                ThreadItemAddedEvent(item=self.reply),
                ThreadItemUpdatedEvent(item_id=self.reply.id, update=started),
            ]
        text = AssistantMessageContentPartTextDelta(content_index=0, delta=delta)
        events.append(ThreadItemUpdatedEvent(item_id=self.reply.id, update=text))
        return events

    def _tool_called(self, call: dict[str, Any]) -> list[ThreadStreamEvent]:
        task = tool_task(call, done=False)
        if self.workflow is None:
            self.workflow = workflow_item(
                self.thread_id, self.turn_id, utc_now(), [task], done=False
            )
            self.calls[str(call["call_id"])] = (0, call)
            return [ThreadItemAddedEvent(item=self.workflow)]
        index = len(self.workflow.workflow.tasks)
        self.workflow.workflow.tasks.append(task)
        self.calls[str(call["call_id"])] = (index, call)
        if self.workflow_done:  # the reply had begun: the finished workflow is replaced
            return [ThreadItemReplacedEvent(item=self.workflow.model_copy(deep=True))]
        update = WorkflowTaskAdded(task_index=index, task=task)
        return [ThreadItemUpdatedEvent(item_id=self.workflow.id, update=update)]

    def _tool_returned(self, result: dict[str, Any]) -> list[ThreadStreamEvent]:
        known = self.calls.get(str(result["call_id"]))
        if known is None or self.workflow is None:
            return []
        index, call = known
        task = tool_task({**call, "output": result["output"]}, done=True)
        self.workflow.workflow.tasks[index] = task
        if self.workflow_done:
            return [ThreadItemReplacedEvent(item=self.workflow.model_copy(deep=True))]
        update = WorkflowTaskUpdated(task_index=index, task=task)
        return [ThreadItemUpdatedEvent(item_id=self.workflow.id, update=update)]

    def _close_workflow(self) -> ThreadStreamEvent:
        """The reply begins: the tool calls so far are shown done (as ChatKit's own helper
        does); a later call replaces the item."""
        assert self.workflow is not None
        self.workflow = workflow_item(
            self.thread_id,
            self.turn_id,
            self.workflow.created_at,
            self.workflow.workflow.tasks,
            done=True,
        )
        self.workflow_done = True
        return ThreadItemDoneEvent(item=self.workflow.model_copy(deep=True))
