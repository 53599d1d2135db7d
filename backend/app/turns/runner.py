"""A chat turn: the user's message in, the agent's reply out, both stores kept in step.

Order of writes (the crash-consistency contract):

1. In the request: take the memory file's in-process lock (bounded wait), claim the thread's
   lease in a transaction of its own, make memory match the log, insert the user message,
   then commit. Nothing here waits on anything while holding a row lock, so a claim can never
   deadlock with a running turn, and a busy thread answers 409 at once.
2. In a background task that outlives the request: the SDK runner appends the user item and
   the turn's items to memory as it goes, while events stream to the client. The worker's
   lease keeper renews every running turn's lease in one statement per interval, and stops a
   turn whose lease it can no longer vouch for (it writes nothing more).
3. The assistant message, the bookkeeping (a new memory generation) and the lease release
   commit in one PostgreSQL transaction, only while the lease is still the turn's; then the
   memory file is stamped with that generation. If the run or the commit fails, memory is
   cut back to "history + the user's message": the same point the PostgreSQL log is at.

A client that disconnects only stops listening: the task finishes the turn and saves it in
both stores.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from contextlib import AsyncExitStack
from datetime import timedelta

from agents import Agent
from sqlmodel.ext.asyncio.session import AsyncSession

from app.assistant.tools import TurnContext
from app.config import Settings
from app.db import SessionMaker
from app.memory import Memory, MemoryStore, MemoryUnavailableError
from app.metrics import TURN_LATENCY, TURNS
from app.models import MessagePublic, MessageRole, Thread
from app.services import leases, messages
from app.services.lease_keeper import LeaseKeeper
from app.turns.events import TurnDone, TurnError, TurnEvent
from app.turns.failures import LeaseLostError, describe_failure
from app.turns.memory import reconcile_memory
from app.turns.replay import RecentTurns, Replay
from app.turns.steps import run_and_save
from app.turns.turn import Turn, TurnResult

logger = logging.getLogger(__name__)

MEBIBYTE = 1024 * 1024


class TurnRunner:
    """Starts turns and runs them to the end in tasks that do not depend on the client."""

    def __init__(
        self,
        *,
        sessionmaker: SessionMaker,
        memory_store: MemoryStore,
        agent: Agent[TurnContext],
        settings: Settings,
        on_pruned: Callable[[uuid.UUID, uuid.UUID], None] | None = None,
    ) -> None:
        self._on_pruned = on_pruned  # (user id, thread id) after a saved turn's prune removed turns
        self._sessionmaker = sessionmaker
        self._memory_store = memory_store
        self._agent = agent
        self._settings = settings
        self._lease = timedelta(seconds=settings.TURN_LEASE_SECONDS)
        self._keeper = LeaseKeeper(sessionmaker, lease=self._lease, on_lost=self._on_lease_lost)
        self._running: dict[uuid.UUID, tuple[Turn, asyncio.Task[None]]] = {}
        self._recent = RecentTurns(
            max_turns=settings.TURN_REPLAY_MAX_TURNS,
            max_bytes=settings.TURN_REPLAY_MAX_MB * MEBIBYTE,
            max_age_s=settings.TURN_REPLAY_SECONDS,
        )

    async def prepare(self, db: AsyncSession, owned: Thread, *, text: str) -> Turn:
        """Step 1: lock, lease, repair memory, user message. The caller commits, then `start`s.

        `owned` is the caller's thread (from `OwnedThreadDep`); the lease is claimed from a
        fresh read of its row.

        Raises:
            NotFoundError: not the caller's thread.
            ConflictError: a turn is already running in this thread.
            MemoryBusyError, MemoryUnavailableError: memory cannot be used now (503).
        """
        self._check_free_space()
        # End the request's transaction (user lookup) so that no pooled connection is held
        # while this request waits for the memory file below.
        await db.commit()
        turn_id, user_id, thread_id = uuid.uuid4(), owned.user_id, owned.id
        resources = AsyncExitStack()
        try:
            memory = await resources.enter_async_context(
                self._memory_store.open(
                    user_id,
                    thread_id,
                    wait_s=self._settings.AGENT_SESSION_BUSY_TIMEOUT_MS / 1000,
                    for_turn=True,
                )
            )
            claimed_at = time.monotonic()
            thread = await leases.claim(
                self._sessionmaker,
                user_id=user_id,
                thread_id=thread_id,
                holder=turn_id,
                lease=self._lease,
            )
        except BaseException:
            await resources.aclose()
            raise
        try:
            message = await self._open_turn(db, memory, thread, turn_id, text)
        except BaseException:
            await resources.aclose()
            await self._keeper.release(thread_id, turn_id)
            raise
        self._keeper.hold(turn_id, thread_id, claimed_at=claimed_at)
        return Turn(
            id=turn_id,
            user_id=user_id,
            thread_id=thread_id,
            text=text,
            user_message=MessagePublic.model_validate(message),
            memory=memory,
            generation=thread.memory_generation,
            _resources=resources,
        )

    async def _open_turn(
        self,
        db: AsyncSession,
        memory: Memory,
        thread: Thread,
        turn_id: uuid.UUID,
        text: str,
    ) -> object:
        """Make memory match the log, then log the user's message (in the request's txn)."""
        await reconcile_memory(
            db,
            self._memory_store,
            memory,
            thread,
            max_items=self._settings.memory_max_items,
        )
        message, _ = await messages.append_message(
            db,
            thread_id=thread.id,
            holder=turn_id,
            role=MessageRole.USER,
            content=text,
            meta={"turn_id": str(turn_id)},
        )
        return message

    def start(self, turn: Turn) -> None:
        """Step 2: run the turn in a task of its own."""
        turn.emit(TurnEvent.USER_MESSAGE, turn.user_message)
        self._recent.add(turn.id, Replay(thread_id=turn.thread_id, log=turn.log))
        if self._settings.LOG_CONTENT:  # off by default: logs must not hold what users wrote
            logger.debug("Turn %s in thread %s: %r", turn.id, turn.thread_id, turn.text)
        task = asyncio.create_task(self._execute(turn), name=f"turn-{turn.id}")
        self._running[turn.id] = (turn, task)
        task.add_done_callback(lambda _: self._running.pop(turn.id, None))

    def find(self, turn_id: uuid.UUID) -> Replay | None:
        """A turn this worker runs or ran recently (for resuming its stream), or None."""
        return self._recent.get(turn_id)

    async def abandon(self, turn: Turn) -> None:
        """Release what `prepare` took when the request failed before `start`."""
        self._keeper.drop(turn.id)
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

    def _on_lease_lost(self, turn_id: uuid.UUID) -> None:
        running = self._running.get(turn_id)
        if running is not None:
            turn, task = running
            turn.lease_lost = True
            task.cancel()

    async def _execute(self, turn: Turn) -> None:
        assistant: MessagePublic | None = None
        error: TurnError | None = None
        started = time.perf_counter()
        try:
            async with turn._resources:
                assistant = await run_and_save(
                    turn,
                    agent=self._agent,
                    sessionmaker=self._sessionmaker,
                    settings=self._settings,
                    still_held=self._keeper.still_held,
                    on_pruned=self._on_pruned,
                )
        except asyncio.CancelledError:
            if not turn.lease_lost:
                error = TurnError(
                    code="cancelled", message="The server stopped this turn", retryable=True
                )
                await self._finish(turn, assistant, error)
                raise
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()  # our own cancellation: the turn ends with an error event
            error = describe_failure(LeaseLostError())
        except Exception as e:
            error = describe_failure(e)
            if error.code == "internal_error":
                logger.exception("Turn %s in thread %s failed", turn.id, turn.thread_id)
            else:
                logger.warning(
                    "Turn %s in thread %s failed: %s", turn.id, turn.thread_id, error.code
                )
        finally:
            self._keeper.drop(turn.id)
            TURNS.labels("failed" if error else "completed").inc()
            TURN_LATENCY.observe(time.perf_counter() - started)
        await self._finish(turn, assistant, error)

    async def _finish(
        self, turn: Turn, assistant: MessagePublic | None, error: TurnError | None
    ) -> None:
        if error is not None:
            if not turn.lease_lost:  # a lost lease is not ours to give back
                await self._keeper.release(turn.thread_id, turn.id)
            turn.emit(TurnEvent.ERROR, error)
        else:
            assert assistant is not None
            turn.emit(TurnEvent.ASSISTANT_MESSAGE, assistant)
        turn.emit(
            TurnEvent.DONE, TurnDone(turn_id=turn.id, status="failed" if error else "completed")
        )
        self._recent.finish(turn.id)
        if not turn.result.done():
            turn.result.set_result(
                TurnResult(
                    turn_id=turn.id,
                    user_message=turn.user_message,
                    assistant_message=assistant,
                    error=error,
                )
            )
        turn.memory = None

    def _check_free_space(self) -> None:
        """Refuse a turn before anything is written when the memory disk is nearly full."""
        needed = self._settings.AGENT_SESSION_MIN_FREE_MB * MEBIBYTE
        try:
            free = self._memory_store.free_bytes()
        except OSError as e:
            raise MemoryUnavailableError(
                "Agent memory storage cannot be reached; retry shortly"
            ) from e
        if free < needed:
            raise MemoryUnavailableError(
                "Agent memory storage is low on disk space; retry when an operator frees some"
            )
