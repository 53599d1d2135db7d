"""A turn in flight and its result; its events live in a compact `TurnLog`."""

from __future__ import annotations

import asyncio
import uuid
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from app.memory import Memory
from app.models import MessagePublic, TurnStatus
from app.models.text import make_storable, make_storable_json_text
from app.turns.events import TurnError, TurnEvent
from app.turns.log import TurnLog


class TurnResult(BaseModel):
    """The finished turn, as the JSON variant of the endpoint returns it."""

    turn_id: uuid.UUID
    status: TurnStatus
    user_message: MessagePublic
    assistant_message: MessagePublic | None  # the reply, or what a stopped turn kept
    error: TurnError | None


@dataclass
class RunningTurn:
    """One turn in flight. Its events are numbered from 1 and kept, so a client that lost
    the stream can resume after the last id it saw (`Last-Event-ID`)."""

    id: uuid.UUID
    user_id: uuid.UUID
    thread_id: uuid.UUID
    agent: str  # the AGENTS name of the thread's agent
    text: str
    user_message: MessagePublic
    log: TurnLog = field(default_factory=TurnLog)
    result: asyncio.Future[TurnResult] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    _resources: AsyncExitStack = field(default_factory=AsyncExitStack)
    memory: Memory | None = None
    generation: int = 0  # the memory generation PostgreSQL recorded when the turn began
    memory_node: str | None = None  # where memory lives (the node, for node-local files)
    lease_lost: bool = False  # set by the lease keeper: write nothing more
    cancel_requested: bool = False  # the user pressed stop: keep the partial reply
    # Where the turn's own memory begins, when opening already wrote it (a retry holds the
    # user's item, and what a failed attempt did, before the run); None: memory's end.
    mark: int | None = None
    run_input: str | list[Any] | None = None  # what the run adds to memory; None: `text`
    kept: MessagePublic | None = None  # what a failed or stopped turn saved of its reply
    released: bool = False  # the lease went back with the turn's last write

    def emit(self, kind: TurnEvent, payload: BaseModel) -> None:
        # Model and tool text may hold a lone surrogate, which JSON over UTF-8 cannot carry:
        # clients get U+FFFD in its place, as the saved message does.
        self.log.append(kind, make_storable_json_text(payload))

    def emit_delta(self, delta: str) -> None:
        self.log.append_delta(make_storable(delta))
