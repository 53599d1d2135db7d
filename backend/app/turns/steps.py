"""Steps 2 and 3 of a turn: run the agent on memory, then save what it did in both stores.

Kept apart from `TurnRunner` (which owns starting, leases, stopping and shutdown) so that the
order of writes, the part that keeps the two stores in step, reads top to bottom here:

- completed: prune memory, commit the reply (PostgreSQL), stamp memory's new generation;
- failed or stopped: commit what the turn did (completed tool calls; a stopped turn's
  partial text), then make memory hold exactly that after the user's message, and stamp it;
  when PostgreSQL cannot take it, memory is cut back to the user's message, which is what
  the log holds;
- lease lost: write nothing (another worker may own the thread; the next turn repairs).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import sqlite3
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agents import Agent, RunConfig, Runner
from agents.result import RunResultStreaming
from sqlalchemy.exc import SQLAlchemyError

from app.assistant.context import TurnContext
from app.config import Settings
from app.db import SessionMaker, session_scope
from app.memory import Memory, MemoryUnavailableError
from app.memory.log_items import assistant_item, completed_tool_pairs, user_item
from app.metrics import PRUNES
from app.models import MessagePublic, TurnStatus
from app.services.turn_records import TurnUsage
from app.turns.events import TextDelta, TurnEvent
from app.turns.failures import LeaseLostError, describe_failure
from app.turns.saving import Saved, save_partial, save_reply
from app.turns.stream import TurnRecorder
from app.turns.turn import RunningTurn

logger = logging.getLogger(__name__)

MAX_AGENT_STEPS = 10
# After a stop, how long the SDK's own run task may take to wind down (it writes memory).
SDK_SETTLE_SECONDS = 5.0


@dataclass
class StepContext:
    """What the steps need besides the turn and its agent: the database, the settings."""

    sessionmaker: SessionMaker
    settings: Settings
    still_held: Callable[[uuid.UUID], bool]
    # Called with the turn's id just before the save that releases its lease.
    saving: Callable[[uuid.UUID], None]
    # Called with (user id, thread id) when a saved turn's prune removed turns (compaction).
    on_pruned: Callable[[uuid.UUID, uuid.UUID], None] | None = None


async def run_and_save(
    turn: RunningTurn, agent: Agent[TurnContext], ctx: StepContext
) -> MessagePublic:
    """Run the agent and save the reply; on failure or stop, save what the turn did.

    Returns:
        The saved reply.

    Raises:
        Whatever stopped the turn, after what it did was saved (`turn.kept` holds the kept
        message, if any); `LeaseLostError` when nothing may be written any more.
    """
    memory = turn.memory
    assert memory is not None
    mark = turn.mark if turn.mark is not None else (await memory.read_mark()).last_id
    recorder = TurnRecorder()
    usage = TurnUsage()
    try:
        async with asyncio.timeout(ctx.settings.MAX_TURN_SECONDS):
            text, usage, answered = await _run_agent(turn, agent, memory, recorder, ctx)
        saved = await _save_completed(turn, memory, ctx, text, recorder, usage, answered)
    except BaseException as e:
        if not turn.lease_lost and not isinstance(e, LeaseLostError):
            cancelled = isinstance(e, asyncio.CancelledError)
            stopped = turn.cancel_requested and cancelled
            status = TurnStatus.CANCELLED if stopped else TurnStatus.FAILED
            error_code = _error_code(e, stopped=stopped)
            await asyncio.shield(
                _keep_what_it_did(
                    turn, memory, mark, recorder, usage, ctx, agent, status, error_code
                )
            )
        raise
    await _stamp(memory, saved.generation, turn)
    assert saved.message is not None
    if saved.pruned and ctx.on_pruned is not None:
        ctx.on_pruned(turn.user_id, turn.thread_id)  # compaction, in the background
    return saved.message


async def _save_completed(
    turn: RunningTurn,
    memory: Memory,
    ctx: StepContext,
    text: str,
    recorder: TurnRecorder,
    usage: TurnUsage,
    answered: Agent[Any],
) -> Saved:
    pruned = await memory.prune(ctx.settings.memory_max_items, down_to=ctx.settings.memory_prune_to)
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
    if not ctx.still_held(turn.id):
        raise LeaseLostError()
    ctx.saving(turn.id)
    async with session_scope(ctx.sessionmaker) as db:
        saved = await save_reply(
            db,
            turn,
            text=text,
            recorder=recorder,
            usage=usage,
            pruned=pruned,
            stats=stats,
            agent=answered,
        )
    return dataclasses.replace(saved, pruned=pruned.removed > 0)


async def _run_agent(
    turn: RunningTurn,
    agent: Agent[TurnContext],
    memory: Memory,
    recorder: TurnRecorder,
    ctx: StepContext,
) -> tuple[str, TurnUsage, Agent[Any]]:
    """Run the turn; returns the reply, its cost, and the agent that gave it (another one
    after a handoff)."""
    result = Runner.run_streamed(
        agent,
        turn.text if turn.run_input is None else turn.run_input,
        session=memory,
        context=TurnContext(
            user_id=turn.user_id, thread_id=turn.thread_id, sessionmaker=ctx.sessionmaker
        ),
        max_turns=MAX_AGENT_STEPS,
        run_config=RunConfig(
            workflow_name="threadkeeper-turn",
            group_id=str(turn.thread_id),
            # Opt-in: a trace holds the conversation unless content is excluded.
            tracing_disabled=not ctx.settings.TRACING_ENABLED,
            trace_include_sensitive_data=ctx.settings.TRACING_INCLUDE_CONTENT,
        ),
    )
    try:
        async for event in result.stream_events():
            translated = recorder.translate(event)
            if translated is None:
                continue
            kind, payload = translated
            if kind == TurnEvent.TEXT_DELTA and isinstance(payload, TextDelta):
                turn.emit_delta(payload.delta)
            else:
                turn.emit(kind, payload)
    except BaseException:
        # Stop the SDK's own task too, and let it wind down: it writes memory, and what the
        # turn keeps is decided once nothing else writes.
        result.cancel()
        await _settled(result)
        raise
    final = result.final_output if isinstance(result.final_output, str) else recorder.text
    return final, _usage(result), result.last_agent


async def _settled(result: RunResultStreaming) -> None:
    task = result.run_loop_task
    if task is not None and not task.done():
        await asyncio.wait({task}, timeout=SDK_SETTLE_SECONDS)


def _usage(result: RunResultStreaming) -> TurnUsage:
    usage = result.context_wrapper.usage
    return TurnUsage(
        requests=usage.requests,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
    )


async def _keep_what_it_did(
    turn: RunningTurn,
    memory: Memory,
    mark: int,
    recorder: TurnRecorder,
    usage: TurnUsage,
    ctx: StepContext,
    agent: Agent[Any],
    status: TurnStatus,
    error_code: str | None,
) -> None:
    """Save a failed or stopped turn's completed tool calls (and a stop's partial text) in
    PostgreSQL, then make memory hold exactly that after the user's message.

    If PostgreSQL cannot take it, memory is cut back to the user's message alone: what the
    log holds. Memory never holds what the log lacks.
    """
    done = completed_tool_pairs(await memory.items_after(mark))
    kept = [user_item(turn.text), *done]
    if status == TurnStatus.CANCELLED and recorder.text:
        kept.append(assistant_item(recorder.text))
    try:
        await memory.replace_after(mark, kept)
        stats = await memory.stats()
        ctx.saving(turn.id)
        async with session_scope(ctx.sessionmaker) as db:
            saved = await save_partial(
                db,
                turn,
                status=status,
                error_code=error_code,
                recorder=recorder,
                usage=usage,
                stats=stats,
                agent=agent,
            )
    except (SQLAlchemyError, OSError, LeaseLostError, MemoryUnavailableError, sqlite3.Error) as e:
        logger.warning("Turn %s: what it did could not be saved (%s)", turn.id, type(e).__name__)
        await memory.replace_after(mark, [user_item(turn.text)])
        return
    turn.released = True
    turn.kept = saved.message
    await _stamp(memory, saved.generation, turn)


async def _stamp(memory: Memory, generation: int | None, turn: RunningTurn) -> None:
    """Stamp memory with the generation just committed; failing only costs a rebuild later."""
    if generation is None:
        return
    try:
        await memory.stamp(generation)
    except (MemoryUnavailableError, sqlite3.Error) as e:
        logger.warning(
            "Turn %s saved, but its memory could not be stamped (%s): it is rebuilt next turn",
            turn.id,
            type(e).__name__,
        )


def _error_code(e: BaseException, *, stopped: bool) -> str | None:
    if stopped:
        return None
    if isinstance(e, asyncio.CancelledError):
        return "cancelled"  # the server stopped it (shutdown)
    return describe_failure(e).code if isinstance(e, Exception) else "internal_error"
