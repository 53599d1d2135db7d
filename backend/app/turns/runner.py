"""A chat turn: the user's message in, the agent's reply out, both stores kept in step.

Order of writes (the crash-consistency contract):

1. In the request (`turns.opening`): take the memory file's in-process lock (bounded wait),
   claim the thread's lease in a transaction of its own, make memory match the log, record
   the turn and the user message, then commit. Nothing here waits on anything while holding
   a row lock, so a claim can never deadlock with a running turn, and a busy thread answers
   409 at once.
2. In a background task that outlives the request (`turns.steps`): the SDK runner appends
   the user item and the turn's items to memory as it goes, while events stream to the
   client. The worker's lease keeper renews every running turn's lease in one statement per
   interval, and stops a turn whose lease it can no longer vouch for (it writes nothing more).
3. The reply (or, for a failed or stopped turn, what it did), the turn's status, the
   bookkeeping (a new memory generation) and the lease release commit in one PostgreSQL
   transaction, only while the lease is still the turn's; then memory is stamped with that
   generation. Memory never holds what the log lacks.

A client that disconnects only stops listening: the task finishes the turn and saves it in
both stores. A stop (`cancel`) ends the run and keeps the partial reply in both stores.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from datetime import timedelta

from sqlmodel.ext.asyncio.session import AsyncSession

from app.assistant.registry import AgentRegistry
from app.config import Settings
from app.db import SessionMaker
from app.errors import NotFoundError
from app.memory import MemoryStore
from app.metrics import TURN_LATENCY, TURNS
from app.models import MessagePublic, Thread, TurnStatus
from app.services import turn_records
from app.services.lease_keeper import LeaseKeeper
from app.services.limits import TurnLimiter
from app.services.stream_slots import StreamSlots
from app.turns.event_feed import EventFeed
from app.turns.event_writer import EventWriter
from app.turns.events import TurnDone, TurnError, TurnEvent
from app.turns.failures import LeaseLostError, describe_failure, failure_log_context
from app.turns.log import FollowableLog
from app.turns.opening import TurnOpener
from app.turns.steps import StepContext, run_and_save
from app.turns.stored_events import StoredTurnEvents
from app.turns.turn import RunningTurn, TurnResult

logger = logging.getLogger(__name__)


class TurnRunner:
    """Opens turns, runs them to the end in tasks of their own, and stops them on request."""

    def __init__(
        self,
        *,
        sessionmaker: SessionMaker,
        memory_store: MemoryStore,
        agents: AgentRegistry,
        settings: Settings,
        incarnation: uuid.UUID | None = None,
        memory_node: str | None = None,
        listen_url: str | None = None,
        on_pruned: Callable[[uuid.UUID, uuid.UUID], None] | None = None,
    ) -> None:
        """See `TurnOpener` for `incarnation` and `memory_node`; `listen_url`: where to
        LISTEN for the events of turns run elsewhere (None: poll for them); `on_pruned`:
        called with (user id, thread id) after a saved turn's prune removed turns."""
        self._settings = settings
        self._agents = agents
        self._sessionmaker = sessionmaker
        lease = timedelta(seconds=settings.TURN_LEASE_SECONDS)
        # Fair use; its `clock` is what tests replace to cross a limit's window.
        self.limiter = TurnLimiter(settings)
        self.stream_slots = StreamSlots(sessionmaker, settings)
        self._keeper = LeaseKeeper(
            sessionmaker,
            lease=lease,
            on_lost=self._on_lease_lost,
            on_cancel_requested=self._on_cancel_requested,
        )
        self._opener = TurnOpener(
            sessionmaker=sessionmaker,
            memory_store=memory_store,
            settings=settings,
            keeper=self._keeper,
            lease=lease,
            limiter=self.limiter,
            incarnation=incarnation,
            memory_node=memory_node,
        )
        self._steps = StepContext(
            sessionmaker=sessionmaker,
            settings=settings,
            still_held=self._keeper.still_held,
            saving=self._keeper.saving,
            on_pruned=on_pruned,
        )
        self._running: dict[uuid.UUID, tuple[RunningTurn, asyncio.Task[None]]] = {}
        # Turns whose events this worker holds: running, or ended but not yet all written.
        self._live: dict[uuid.UUID, RunningTurn] = {}
        flush_ms = settings.TURN_EVENTS_FLUSH_MS
        self._writer = EventWriter(sessionmaker, flush_s=flush_ms / 1000) if flush_ms else None
        self._feed = EventFeed(sessionmaker, listen_url, poll_s=settings.TURN_EVENTS_POLL_MS / 1000)

    async def startup(self) -> None:
        """Start following other workers' turn events (LISTEN), without waiting for it, and
        renewing this worker's open stream slots."""
        if self._writer is not None:
            self._feed.start()
        self.stream_slots.start()

    async def prepare(
        self, db: AsyncSession, owned: Thread, *, text: str, exempt: bool = False
    ) -> RunningTurn:
        """Step 1 for a new message; the caller commits, then calls `start` (see `opening`).

        `exempt`: the caller has the admin claim (no fair-use limit applies).

        Raises:
            ConflictError: also when the thread's agent is no longer in AGENTS (refused
                before anything is taken or written).
        """
        self._agents.for_thread(owned.agent)
        return await self._opener.open_new(db, owned, text=text, exempt=exempt)

    async def prepare_retry(
        self, db: AsyncSession, owned: Thread, *, message_id: uuid.UUID, exempt: bool = False
    ) -> RunningTurn:
        """Step 1 for answering user message `message_id` again (see `opening`)."""
        self._agents.for_thread(owned.agent)
        return await self._opener.open_retry(db, owned, message_id=message_id, exempt=exempt)

    def start(self, turn: RunningTurn) -> None:
        """Step 2: run the turn in a task of its own."""
        turn.emit(TurnEvent.USER_MESSAGE, turn.user_message)
        self._live[turn.id] = turn
        if self._writer is not None:
            self._writer.track(turn.id, turn.log, lambda: self._forget(turn.id))
        if self._settings.LOG_CONTENT:  # off by default: logs must not hold what users wrote
            logger.debug("Turn %s in thread %s: %r", turn.id, turn.thread_id, turn.text)
        task = asyncio.create_task(self._execute(turn), name=f"turn-{turn.id}")
        self._running[turn.id] = (turn, task)
        task.add_done_callback(lambda _: self._running.pop(turn.id, None))

    async def cancel(self, db: AsyncSession, owned: Thread, turn_id: uuid.UUID) -> None:
        """Stop a running turn of the caller's thread; it keeps its partial reply.

        On this worker the run stops at once; a turn running on another worker finds the
        request in PostgreSQL at its next lease-keeper tick.

        Raises:
            NotFoundError: no such turn in this thread.
            ConflictError: the turn already ended.
        """
        running = self._running.get(turn_id)
        if running is not None and running[0].thread_id == owned.id:
            turn, task = running
            if not turn.cancel_requested:
                turn.cancel_requested = True
                task.cancel()
            return
        await turn_records.request_cancel(db, owned, turn_id)

    async def events(self, thread_id: uuid.UUID, turn_id: uuid.UUID) -> FollowableLog:
        """A turn's events to resume its stream: this worker's own while it holds them,
        else PostgreSQL's (any worker or node ran it).

        Raises:
            NotFoundError: no such turn in this thread, or its events are no longer kept.
        """
        turn = self._live.get(turn_id)
        if turn is not None and turn.thread_id == thread_id:
            return turn.log
        if self._writer is None:
            raise NotFoundError(
                f"Turn {turn_id} cannot be resumed here; list the thread's messages instead"
            )
        stored = StoredTurnEvents(self._sessionmaker, self._feed, thread_id, turn_id)
        await stored.check()
        return stored

    @property
    def event_writer(self) -> EventWriter | None:
        return self._writer

    @property
    def event_feed(self) -> EventFeed:
        return self._feed

    @property
    def held_turns(self) -> int:
        """Turns whose events this worker keeps in memory (running, or being written)."""
        return len(self._live)

    async def abandon(self, turn: RunningTurn) -> None:
        """Release what `prepare` took when the request failed before `start`."""
        await turn._resources.aclose()
        await self._keeper.release(turn.thread_id, turn.id)

    async def wait_idle(self) -> None:
        """Wait for every running turn (tests, shutdown)."""
        while self._running:
            await asyncio.gather(
                *(task for _, task in self._running.values()), return_exceptions=True
            )

    async def aclose(self) -> None:
        """On shutdown: let turns finish for the second half of the grace, then cut them off.

        (The HTTP server spent the first half letting open streams finish; see `cli.serve`.)
        """
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._settings.SHUTDOWN_GRACE_SECONDS / 2):
                await self.wait_idle()
        pending = [task for _, task in self._running.values()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        await self._keeper.aclose()
        if self._writer is not None:
            await self._writer.aclose()
        await self._feed.aclose()
        await self.stream_slots.aclose()

    def _forget(self, turn_id: uuid.UUID) -> None:
        """The turn's events are all in PostgreSQL: this worker need not keep them."""
        self._live.pop(turn_id, None)

    def _on_lease_lost(self, turn_id: uuid.UUID) -> None:
        running = self._running.get(turn_id)
        if running is not None:
            turn, task = running
            turn.lease_lost = True
            task.cancel()

    def _on_cancel_requested(self, turn_id: uuid.UUID) -> None:
        running = self._running.get(turn_id)
        if running is not None and not running[0].cancel_requested:
            running[0].cancel_requested = True
            running[1].cancel()

    async def _execute(self, turn: RunningTurn) -> None:
        started, status = time.perf_counter(), TurnStatus.FAILED
        try:
            status, assistant, error = await self._run(turn)
        finally:
            self._keeper.drop(turn.id)
            TURNS.labels(str(status)).inc()
            TURN_LATENCY.observe(time.perf_counter() - started)
        await self._finish(turn, status, assistant, error)

    async def _run(
        self, turn: RunningTurn
    ) -> tuple[TurnStatus, MessagePublic | None, TurnError | None]:
        try:
            async with turn._resources:
                reply = await run_and_save(turn, self._agents.for_thread(turn.agent), self._steps)
            return TurnStatus.COMPLETED, reply, None
        except asyncio.CancelledError:
            if turn.cancel_requested and not turn.lease_lost:
                _uncancel()  # the user's stop: the turn ends normally, with what it kept
                return TurnStatus.CANCELLED, turn.kept, None
            if not turn.lease_lost:
                error = TurnError(
                    code="cancelled", message="The server stopped this turn", retryable=True
                )
                await self._finish(turn, TurnStatus.FAILED, None, error)
                raise
            _uncancel()  # our own cancellation: the turn ends with an error event
            return TurnStatus.FAILED, None, describe_failure(LeaseLostError())
        except Exception as e:
            error = describe_failure(e)
            if error.code == "internal_error":
                logger.exception("Turn %s in thread %s failed", turn.id, turn.thread_id)
            else:
                logger.warning(
                    "Turn %s in thread %s failed: %s%s",
                    turn.id,
                    turn.thread_id,
                    error.code,
                    failure_log_context(e),
                )
            return TurnStatus.FAILED, None, error

    async def _finish(
        self,
        turn: RunningTurn,
        status: TurnStatus,
        assistant: MessagePublic | None,
        error: TurnError | None,
    ) -> None:
        if status != TurnStatus.COMPLETED and not turn.lease_lost and not turn.released:
            await self._keeper.release(turn.thread_id, turn.id)  # the save could not do it
        if error is not None:
            turn.emit(TurnEvent.ERROR, error)
        elif assistant is not None:
            turn.emit(TurnEvent.ASSISTANT_MESSAGE, assistant)
        turn.emit(TurnEvent.DONE, TurnDone(turn_id=turn.id, status=status))
        if self._writer is None:
            self._live.pop(turn.id, None)
        if not turn.result.done():
            turn.result.set_result(
                TurnResult(
                    turn_id=turn.id,
                    status=status,
                    user_message=turn.user_message,
                    assistant_message=assistant,
                    error=error,
                )
            )
        turn.memory = None


def _uncancel() -> None:
    current = asyncio.current_task()
    if current is not None:
        current.uncancel()
