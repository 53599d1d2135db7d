"""Steps 2 and 3 of a turn: run the agent on memory, then save the reply in both stores.

Kept apart from `TurnRunner` (which owns starting, leases and shutdown) so that the order of
writes, the part that keeps the two stores in step, reads top to bottom in one place.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agents import Agent, RunConfig, Runner
from sqlmodel.ext.asyncio.session import AsyncSession

from app.assistant.tools import TurnContext
from app.config import Settings
from app.db import SessionMaker, session_scope
from app.memory import Memory, MemoryStats, MemoryUnavailableError, PruneResult
from app.metrics import PRUNES
from app.models import MessagePublic, MessageRole, Thread
from app.models.text import make_storable_json
from app.services import leases, memory_records, messages
from app.turns.events import TextDelta, TurnEvent
from app.turns.failures import LeaseLostError
from app.turns.stream import TurnRecorder
from app.turns.turn import Turn

logger = logging.getLogger(__name__)

MAX_AGENT_STEPS = 10


@dataclass
class _Reply:
    text: str
    recorder: TurnRecorder
    usage: dict[str, Any]


async def run_and_save(
    turn: Turn,
    *,
    agent: Agent[TurnContext],
    sessionmaker: SessionMaker,
    settings: Settings,
    still_held: Callable[[uuid.UUID], bool],
    on_pruned: Callable[[uuid.UUID, uuid.UUID], None] | None = None,
) -> MessagePublic:
    """Run the agent, prune memory, and save the reply; on failure cut memory back.

    Raises:
        LeaseLostError: the lease ran out or was taken; nothing more was written anywhere
            (memory is left for the next turn to repair: another worker may own it now).
    """
    memory = turn.memory
    assert memory is not None
    mark = (await memory.read_mark()).last_id
    try:
        async with asyncio.timeout(settings.MAX_TURN_SECONDS):
            reply = await _run_agent(
                turn, memory, agent=agent, sessionmaker=sessionmaker, settings=settings
            )
        pruned = await memory.prune(settings.memory_max_items, down_to=settings.memory_prune_to)
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
        if not still_held(turn.id):
            raise LeaseLostError()
        async with session_scope(sessionmaker) as db:
            message, generation = await _save_reply(db, turn, reply, pruned, stats, agent)
    except BaseException:
        if not turn.lease_lost:
            # Cut memory back to the point PostgreSQL holds: history + the user's message.
            await asyncio.shield(
                memory.replace_after(mark, [{"role": "user", "content": turn.text}])
            )
        raise
    await _stamp(memory, generation, turn)
    if pruned.removed and on_pruned is not None:
        on_pruned(turn.user_id, turn.thread_id)  # compaction, in the background
    return message


async def _run_agent(
    turn: Turn,
    memory: Memory,
    *,
    agent: Agent[TurnContext],
    sessionmaker: SessionMaker,
    settings: Settings,
) -> _Reply:
    recorder = TurnRecorder()
    result = Runner.run_streamed(
        agent,
        turn.text,
        session=memory,
        context=TurnContext(user_id=turn.user_id, sessionmaker=sessionmaker),
        max_turns=MAX_AGENT_STEPS,
        run_config=RunConfig(
            workflow_name="threadkeeper-turn",
            group_id=str(turn.thread_id),
            tracing_disabled=not settings.OPENAI_API_KEY,
        ),
    )
    async for event in result.stream_events():
        translated = recorder.translate(event)
        if translated is None:
            continue
        kind, payload = translated
        if kind == TurnEvent.TEXT_DELTA and isinstance(payload, TextDelta):
            turn.emit_delta(payload.delta)
        else:
            turn.emit(kind, payload)
    usage = result.context_wrapper.usage
    final = result.final_output if isinstance(result.final_output, str) else recorder.text
    return _Reply(
        text=final,
        recorder=recorder,
        usage={
            "requests": usage.requests,
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "total_tokens": usage.total_tokens,
        },
    )


async def _save_reply(
    db: AsyncSession,
    turn: Turn,
    reply: _Reply,
    pruned: PruneResult,
    stats: MemoryStats,
    agent: Agent[Any],
) -> tuple[MessagePublic, int]:
    """Step 3: assistant message, bookkeeping and lease release in one transaction.

    Returns:
        The saved message, and the memory generation PostgreSQL now expects.

    Raises:
        LeaseLostError: the lease is no longer the turn's (nothing is written).
    """
    # Bounded by the connection's lock_timeout; a lease we no longer hold is not ours to use.
    thread = await db.get_one(Thread, turn.thread_id, with_for_update=True)
    if thread.active_turn_id != turn.id:
        raise LeaseLostError()
    message, count = await messages.append_message(
        db,
        thread_id=turn.thread_id,
        holder=turn.id,
        role=MessageRole.ASSISTANT,
        content=reply.text,
        meta=make_storable_json(
            {
                "turn_id": str(turn.id),
                "tool_calls": reply.recorder.metadata_tool_calls(),
                "usage": reply.usage,
                "model": _model_name(agent),
                **({"oversized_turn": True} if pruned.oversized_turn else {}),
            }
        ),
    )
    generation = thread.memory_generation + 1
    await memory_records.record_memory(
        db,
        turn.thread_id,
        stats=stats,
        generation=generation,
        message_count=count,
        pruned=pruned.removed > 0,
    )
    await leases.release(db, [turn.thread_id], turn.id)
    return MessagePublic.model_validate(message), generation


async def _stamp(memory: Memory, generation: int, turn: Turn) -> None:
    """Stamp memory with the generation just committed; failing only costs a rebuild later."""
    try:
        await memory.stamp(generation)
    except (MemoryUnavailableError, sqlite3.Error) as e:
        logger.warning(
            "Turn %s saved, but its memory could not be stamped (%s): it is rebuilt next turn",
            turn.id,
            type(e).__name__,
        )


def _model_name(agent: Agent[Any]) -> str:
    model = agent.model
    return str(getattr(model, "model", None) or getattr(model, "model_name", None) or model)
