"""A chat turn: the user's message in, the agent's reply out, both stores kept in step.

Order of writes (the crash-consistency contract):

1. In the request: take the thread's turn lease, insert the user message and open the
   thread's memory file, then commit. A busy memory file fails the request (503) before
   anything is committed.
2. In a background task that outlives the request: the SDK runner appends the user item and
   the turn's items to memory as it goes, while events stream to the client.
3. The assistant message, the bookkeeping and the lease release commit in one PostgreSQL
   transaction while the memory file is still open. If the run or that commit fails, memory
   is cut back to "history + the user's message": the same point the PostgreSQL log is at.

A client that disconnects only stops listening: the task finishes the turn and saves it in
both stores.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import OrderedDict
from contextlib import AsyncExitStack
from datetime import timedelta
from typing import Any

from agents import Agent, RunConfig, Runner
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel.ext.asyncio.session import AsyncSession

from app.assistant.events import StreamEvent, TurnDone, TurnError
from app.assistant.memory import (
    AgentMemoryStore,
    MemorySession,
    MemoryStats,
    PruneResult,
)
from app.assistant.streaming import TurnRecorder
from app.assistant.tools import TurnContext
from app.config import Settings
from app.db import SessionMaker, session_scope
from app.metrics import PRUNES, TURN_LATENCY, TURNS
from app.models import Conversation, Message, MessagePublic, MessageRole
from app.services import conversations, messages, sessions
from app.services.turn import Turn, TurnResult
from app.services.turn_failures import describe_failure
from app.services.turn_memory import open_turn_memory

logger = logging.getLogger(__name__)

# A turn's lease is short and renewed while the turn runs, so a crashed worker's lease
# frees the thread within TURN_LEASE instead of blocking it for a whole turn's time limit.
TURN_LEASE = timedelta(seconds=30)
LEASE_RENEW_SECONDS = 10.0
# Turns kept per worker for clients that resume a stream with Last-Event-ID.
RECENT_TURNS = 1_000
MAX_AGENT_STEPS = 10
SHUTDOWN_GRACE_SECONDS = 10.0


class TurnRunner:
    """Starts turns and runs them to the end in tasks that do not depend on the client."""

    def __init__(
        self,
        *,
        sessionmaker: SessionMaker,
        memory_store: AgentMemoryStore,
        agent: Agent[TurnContext],
        settings: Settings,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._memory_store = memory_store
        self._agent = agent
        self._settings = settings
        self._tasks: set[asyncio.Task[None]] = set()
        # Recent turns by id, for clients resuming a stream; bounded, oldest dropped first.
        self._recent: OrderedDict[uuid.UUID, Turn] = OrderedDict()
        self._background: set[asyncio.Task[None]] = set()  # lease releases retried in outages

    async def prepare(
        self, db: AsyncSession, *, user_id: uuid.UUID, conversation_id: uuid.UUID, text: str
    ) -> Turn:
        """Step 1: lease, user message, open memory. The caller commits, then calls `start`.

        Raises:
            NotFoundError: not the caller's thread.
            ConflictError: a turn is already running in this thread.
            MemoryBusyError: the memory file is locked past the busy timeout.
        """
        turn_id = uuid.uuid4()
        conversation = await conversations.claim_turn(
            db, user_id=user_id, conversation_id=conversation_id, turn_id=turn_id, lease=TURN_LEASE
        )
        resources = AsyncExitStack()
        try:
            memory, _ = await open_turn_memory(
                db,
                self._memory_store,
                conversation,
                max_items=self._settings.AGENT_SESSION_MAX_MESSAGES,
                resources=resources,
            )
            message = await messages.add_message(
                db,
                conversation=conversation,
                role=MessageRole.USER,
                content=text,
                meta={"turn_id": str(turn_id)},
            )
        except BaseException:
            await resources.aclose()
            raise
        return Turn(
            id=turn_id,
            user_id=user_id,
            conversation_id=conversation_id,
            text=text,
            user_message=MessagePublic.model_validate(message),
            memory=memory,
            _resources=resources,
        )

    def start(self, turn: Turn) -> None:
        """Step 2: run the turn in a task of its own."""
        turn.emit(StreamEvent.USER_MESSAGE, turn.user_message)
        self._recent[turn.id] = turn
        while len(self._recent) > RECENT_TURNS:
            self._recent.popitem(last=False)
        if self._settings.LOG_CONTENT:  # off by default: logs must not hold what users wrote
            logger.debug("Turn %s in thread %s: %r", turn.id, turn.conversation_id, turn.text)
        task = asyncio.create_task(self._execute(turn), name=f"turn-{turn.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def find(self, turn_id: uuid.UUID) -> Turn | None:
        """A turn this worker ran recently (for resuming its stream), or None."""
        return self._recent.get(turn_id)

    async def abandon(self, turn: Turn) -> None:
        """Release what `prepare` opened when the request failed before `start`."""
        await turn._resources.aclose()

    async def wait_idle(self) -> None:
        """Wait for every running turn (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def aclose(self) -> None:
        """On shutdown: let turns finish for a grace period, then cut them off."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(SHUTDOWN_GRACE_SECONDS):
                await self.wait_idle()
        pending = [*self._tasks, *self._background]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _execute(self, turn: Turn) -> None:
        assistant: MessagePublic | None = None
        error: TurnError | None = None
        started = time.perf_counter()
        heartbeat = asyncio.create_task(self._renew_lease(turn))
        try:
            async with turn._resources:
                assistant = await self._run_and_save(turn)
        except asyncio.CancelledError:
            error = TurnError(
                code="cancelled", message="The server stopped this turn", retryable=True
            )
            await self._finish(turn, assistant, error)
            raise
        except Exception as e:
            error = describe_failure(e)
            if error.code == "internal_error":
                logger.exception("Turn %s in thread %s failed", turn.id, turn.conversation_id)
            else:
                logger.warning(
                    "Turn %s in thread %s failed: %s", turn.id, turn.conversation_id, error.code
                )
        finally:
            heartbeat.cancel()
            TURNS.labels("failed" if error else "completed").inc()
            TURN_LATENCY.observe(time.perf_counter() - started)
        await self._finish(turn, assistant, error)

    async def _renew_lease(self, turn: Turn) -> None:
        """Keep the turn's lease alive while it runs; a crashed worker stops renewing."""
        while True:
            await asyncio.sleep(LEASE_RENEW_SECONDS)
            try:
                async with session_scope(self._sessionmaker) as db:
                    await conversations.renew_turn(
                        db, conversation_id=turn.conversation_id, turn_id=turn.id, lease=TURN_LEASE
                    )
            except (SQLAlchemyError, OSError):
                logger.warning("Could not renew the lease of turn %s", turn.id)

    async def _run_and_save(self, turn: Turn) -> MessagePublic:
        memory = turn.memory
        assert memory is not None
        mark = await memory.last_id()
        try:
            async with asyncio.timeout(self._settings.MAX_TURN_SECONDS):
                final, recorder, usage = await self._run_agent(turn, memory)
            pruned = await memory.prune(self._settings.AGENT_SESSION_MAX_MESSAGES)
            if pruned.removed:
                PRUNES.inc()
                await memory.checkpoint()
            if pruned.oversized_turn:
                logger.warning(
                    "Turn %s alone exceeds AGENT_SESSION_MAX_MESSAGES (%d items kept whole)",
                    turn.id,
                    pruned.kept,
                )
            stats = await memory.stats()
            async with session_scope(self._sessionmaker) as db:
                message = await self._save_reply(db, turn, final, recorder, usage, pruned, stats)
            return message
        except BaseException:
            # Cut memory back to the point PostgreSQL holds: history + the user's message.
            await asyncio.shield(
                memory.replace_after(mark, [{"role": "user", "content": turn.text}])
            )
            raise

    async def _run_agent(
        self, turn: Turn, memory: MemorySession
    ) -> tuple[str, TurnRecorder, dict[str, Any]]:
        recorder = TurnRecorder()
        result = Runner.run_streamed(
            self._agent,
            turn.text,
            session=memory,
            context=TurnContext(user_id=turn.user_id, sessionmaker=self._sessionmaker),
            max_turns=MAX_AGENT_STEPS,
            run_config=RunConfig(
                workflow_name="threadkeeper-turn",
                group_id=str(turn.conversation_id),
                tracing_disabled=not self._settings.OPENAI_API_KEY,
            ),
        )
        async for event in result.stream_events():
            translated = recorder.translate(event)
            if translated is not None:
                turn.emit(*translated)
        usage = result.context_wrapper.usage
        final = (
            result.final_output
            if isinstance(result.final_output, str)
            else "".join(recorder.text_parts)
        )
        return (
            final,
            recorder,
            {
                "requests": usage.requests,
                "input_tokens": usage.input_tokens,
                "output_tokens": usage.output_tokens,
                "total_tokens": usage.total_tokens,
            },
        )

    async def _save_reply(
        self,
        db: AsyncSession,
        turn: Turn,
        final: str,
        recorder: TurnRecorder,
        usage: dict[str, Any],
        pruned: PruneResult,
        stats: MemoryStats,
    ) -> MessagePublic:
        """Step 3: assistant message, bookkeeping and lease release in one transaction."""
        conversation = await db.get_one(Conversation, turn.conversation_id, with_for_update=True)
        message: Message = await messages.add_message(
            db,
            conversation=conversation,
            role=MessageRole.ASSISTANT,
            content=final,
            meta={
                "turn_id": str(turn.id),
                "tool_calls": recorder.metadata_tool_calls(),
                "usage": usage,
                "model": _model_name(self._agent),
                **({"oversized_turn": True} if pruned.oversized_turn else {}),
            },
        )
        if conversation.active_turn_id == turn.id:  # the row is locked FOR UPDATE: ours to free
            conversation.active_turn_id = conversation.active_turn_expires_at = None
        await sessions.record_memory(
            db,
            conversation,
            items=stats.items,
            size=stats.bytes,
            last_id=stats.last_id,
            pruned=pruned.removed > 0,
        )
        return MessagePublic.model_validate(message)

    async def _finish(
        self, turn: Turn, assistant: MessagePublic | None, error: TurnError | None
    ) -> None:
        if error is not None:
            await self._release_or_retry(turn)
            turn.emit(StreamEvent.ERROR, error)
        else:
            assert assistant is not None
            turn.emit(StreamEvent.ASSISTANT_MESSAGE, assistant)
        turn.emit(
            StreamEvent.DONE, TurnDone(turn_id=turn.id, status="failed" if error else "completed")
        )
        if not turn.result.done():
            turn.result.set_result(
                TurnResult(
                    turn_id=turn.id,
                    user_message=turn.user_message,
                    assistant_message=assistant,
                    error=error,
                )
            )

    async def _release_or_retry(self, turn: Turn) -> None:
        """Give the lease back now, or keep trying in the background while PostgreSQL is down.

        Without the retries, a thread whose turn failed in an outage would stay blocked for
        the rest of its lease after the database came back.
        """
        if await self._try_release(turn):
            return
        task = asyncio.create_task(self._retry_release(turn), name=f"release-{turn.id}")
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _retry_release(self, turn: Turn) -> None:
        deadline = time.monotonic() + TURN_LEASE.total_seconds()
        delay = 0.25
        while time.monotonic() + delay < deadline:
            await asyncio.sleep(delay)
            if await self._try_release(turn):
                return
            delay = min(delay * 2, 2.0)
        logger.warning("Could not release the lease of turn %s; it expires by itself", turn.id)

    async def _try_release(self, turn: Turn) -> bool:
        try:
            async with session_scope(self._sessionmaker) as db:
                await conversations.release_turn(
                    db, conversation_id=turn.conversation_id, turn_id=turn.id
                )
        except (SQLAlchemyError, OSError):
            return False
        return True


def _model_name(agent: Agent[Any]) -> str:
    model = agent.model
    return str(getattr(model, "model", None) or getattr(model, "model_name", None) or model)
