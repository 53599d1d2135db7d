"""A turn in flight and its result: the numbered event log clients follow and resume."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field

from pydantic import BaseModel

from app.assistant.events import StreamEvent, TurnError
from app.assistant.memory import MemorySession
from app.models import MessagePublic


class TurnResult(BaseModel):
    """The finished turn, as the JSON variant of the endpoint returns it."""

    turn_id: uuid.UUID
    user_message: MessagePublic
    assistant_message: MessagePublic | None
    error: TurnError | None


@dataclass
class Turn:
    """One turn in flight. Its events are numbered from 1 and kept, so a client that lost
    the stream can resume after the last id it saw (`Last-Event-ID`)."""

    id: uuid.UUID
    user_id: uuid.UUID
    conversation_id: uuid.UUID
    text: str
    user_message: MessagePublic
    log: list[tuple[StreamEvent, BaseModel]] = field(default_factory=list)
    _listeners: set[asyncio.Queue[None]] = field(default_factory=set)
    result: asyncio.Future[TurnResult] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    _resources: AsyncExitStack = field(default_factory=AsyncExitStack)
    memory: MemorySession | None = None

    def emit(self, kind: StreamEvent, payload: BaseModel) -> None:
        self.log.append((kind, payload))
        for wake in self._listeners:
            wake.put_nowait(None)

    async def follow(
        self, after: int = 0, *, idle_timeout_s: float | None = None
    ) -> AsyncIterator[tuple[int, StreamEvent, BaseModel] | None]:
        """Events numbered after `after`, live until `done`; None after `idle_timeout_s` quiet."""
        wake: asyncio.Queue[None] = asyncio.Queue()
        self._listeners.add(wake)
        try:
            sent = after
            while True:
                while sent < len(self.log):
                    kind, payload = self.log[sent]
                    sent += 1
                    yield sent, kind, payload
                    if kind == StreamEvent.DONE:
                        return
                try:
                    async with asyncio.timeout(idle_timeout_s):
                        await wake.get()
                except TimeoutError:
                    yield None
        finally:
            self._listeners.discard(wake)
