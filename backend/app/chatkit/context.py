"""What one ChatKit request carries through the server, its store and `respond()`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass, field

from chatkit.types import ThreadMetadata

from app.assistant.registry import AgentRegistry
from app.config import Settings
from app.db import SessionMaker, session_scope
from app.errors import AppError
from app.memory import MemoryStore
from app.models import Thread
from app.turns.runner import TurnRunner
from app.turns.turn import RunningTurn

logger = logging.getLogger(__name__)

# Tasks that must outlive the request that started them (asyncio keeps only weak references).
_BACKGROUND: set[asyncio.Task[None]] = set()


@dataclass
class ChatKitContext:
    """The caller, the services, and what this request started."""

    user_id: uuid.UUID
    settings: Settings
    sessionmaker: SessionMaker
    runner: TurnRunner
    memory_store: MemoryStore
    agents: AgentRegistry
    is_admin: bool = False  # the token's admin claim: no fair-use limit applies
    # The thread `threads.create` is making (its row is written by the first `save_thread`).
    new_thread_id: str | None = None
    created_thread: bool = False  # this request is `threads.create`
    # The agent serving the thread `threads.create` makes: the request's `metadata.agent`, or
    # the default (as `POST /api/threads` without `agent`).
    new_thread_agent: str | None = None
    # `threads.retry_after_item`: the user item answered again. The library deletes the later
    # items one by one before `respond()`; the turn service rewinds both stores in one step
    # instead (so a refused retry leaves everything as it was), and those deletes are no-ops.
    retry_item_id: str | None = None
    # The turn this request started, while it is being opened, and once it runs.
    opening: asyncio.Task[RunningTurn] | None = None
    turn: RunningTurn | None = None
    owned_thread: Thread | None = None
    stopped: bool = False
    # Threads this request read (id -> metadata, and the row): read once, whoever asks.
    threads: dict[str, ThreadMetadata] = field(default_factory=dict)
    thread_rows: dict[str, Thread] = field(default_factory=dict)

    def stop_turn(self) -> None:
        """Stop the turn this request started (ChatKit's stop: the client aborted the stream).

        Safe to call from a cancelled task: it only schedules the work. The turn keeps its
        partial reply in both stores, exactly as after `POST .../turns/{id}/cancel`.
        """
        if self.stopped or (self.opening is None and self.turn is None):
            return
        self.stopped = True
        task = asyncio.get_running_loop().create_task(self._stop(), name="chatkit-stop")
        _BACKGROUND.add(task)
        task.add_done_callback(_BACKGROUND.discard)

    async def _stop(self) -> None:
        turn = self.turn
        if turn is None and self.opening is not None:
            try:
                turn = await self.opening
            except (asyncio.CancelledError, Exception):
                return  # no turn was started: nothing to stop
        if turn is None or self.owned_thread is None or turn.result.done():
            return
        with contextlib.suppress(AppError):  # it ended meanwhile: nothing left to stop
            async with session_scope(self.sessionmaker) as db:
                await self.runner.cancel(db, self.owned_thread, turn.id)
