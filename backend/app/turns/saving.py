"""Step 3 of a turn: what it produced, saved in PostgreSQL in one transaction.

A completed turn saves its reply. A failed or stopped one saves what it did: the tool calls
that completed (with their outputs) and, for a stopped turn, the partial text the user saw
(a failed turn's half-said text is shown while it streams, but is not kept as a reply),
so neither the user nor the model is surprised by effects no store remembers (a retry once
re-ran a tool whose effect stayed). Either way the turn's status, its cost and the memory
bookkeeping (a new generation) commit with it, and the lease is released, only while the
lease is still the turn's.

Every statement here costs the worker's loop SQLAlchemy's and psycopg's CPU, once per turn:
a reply's save is two (its append, which checks the lease, takes the row's lock and carries
the message and the end of the turn's row; then the memory bookkeeping, its new generation
and the lease's release in one UPDATE), where it used to be eight.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from agents import Agent
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from app.errors import ConflictError
from app.memory import MemoryStats, PruneResult
from app.models import MessagePublic, MessageRole, Thread, TurnStatus, message_public
from app.models.text import make_storable_json
from app.services import leases, memory_records, messages, turn_records
from app.services.turn_records import TurnUsage
from app.turns.failures import LeaseLostError
from app.turns.stream import TurnRecorder
from app.turns.turn import RunningTurn


@dataclass(frozen=True)
class Saved:
    """What PostgreSQL now holds of the turn."""

    message: MessagePublic | None  # the reply (or what was kept of it), None: nothing kept
    generation: int | None  # the memory generation to stamp, None: memory was not saved
    pruned: bool = False  # the prune before saving removed turns (a summary may be due)


async def lock_lease(db: AsyncSession, turn: RunningTurn) -> None:
    """Lock the thread's row (bounded by lock_timeout) if the lease is still the turn's.

    Only the holder column is read: loading the whole row through the ORM cost more CPU
    than the lock itself, and nothing here uses the rest.

    Raises:
        LeaseLostError: another holder has the thread: nothing may be written.
    """
    holder = await db.scalar(
        sa.select(col(Thread.active_turn_id))
        .where(col(Thread.id) == turn.thread_id)
        .with_for_update()
    )
    if holder != turn.id:
        raise LeaseLostError()


async def save_reply(
    db: AsyncSession,
    turn: RunningTurn,
    *,
    text: str,
    recorder: TurnRecorder,
    usage: TurnUsage,
    pruned: PruneResult,
    stats: MemoryStats,
    agent: Agent[Any],
) -> Saved:
    """A completed turn: the reply, its status and cost, the bookkeeping, the lease back.

    The reply's append is the lease check: its UPDATE only matches while the lease is the
    turn's, and takes the row's lock for the rest of the transaction.
    """
    meta = {
        **_common_meta(turn, recorder, usage, agent, TurnStatus.COMPLETED),
        **({"oversized_turn": True} if pruned.oversized_turn else {}),
    }
    message = await _append_reply(db, turn, text, meta, TurnStatus.COMPLETED, None, usage)
    return await _finish(
        db, turn, message, TurnStatus.COMPLETED, None, usage, stats, pruned.removed > 0
    )


async def save_partial(
    db: AsyncSession,
    turn: RunningTurn,
    *,
    status: TurnStatus,
    error_code: str | None,
    recorder: TurnRecorder,
    usage: TurnUsage,
    stats: MemoryStats | None,
    agent: Agent[Any],
) -> Saved:
    """A failed or stopped turn: what it did (if anything), its status, the lease back.

    `stats` are those of memory once it holds what is kept (None when nothing is kept).
    When something is kept, its append checks the lease (and locks the row), as a reply's.
    """
    message = None
    # A stop keeps the text the user saw; a failure's half-said text is not a reply.
    text = recorder.text if status == TurnStatus.CANCELLED else ""
    if not (recorder.metadata_tool_calls(completed_only=True) or text):
        await lock_lease(db, turn)
    else:
        meta = _common_meta(turn, recorder, usage, agent, status, completed_only=True)
        meta.update({"status": str(status), **({"error": error_code} if error_code else {})})
        message = await _append_reply(db, turn, text, meta, status, error_code, usage)
    return await _finish(db, turn, message, status, error_code, usage, stats, False)


def _common_meta(
    turn: RunningTurn,
    recorder: TurnRecorder,
    usage: TurnUsage,
    agent: Agent[Any],
    status: TurnStatus,
    *,
    completed_only: bool = False,
) -> dict[str, Any]:
    return {
        "turn_id": str(turn.id),
        "tool_calls": recorder.metadata_tool_calls(completed_only=completed_only),
        "usage": {
            "requests": usage.requests,
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "total_tokens": usage.input_tokens + usage.output_tokens,
        },
        "model": _model_name(agent),
        "agent": agent.name,
        **({"status": str(status)} if status != TurnStatus.COMPLETED else {}),
    }


async def _append_reply(
    db: AsyncSession,
    turn: RunningTurn,
    text: str,
    meta: dict[str, Any],
    status: TurnStatus,
    error_code: str | None,
    usage: TurnUsage,
) -> tuple[Any, int]:
    """Append the turn's reply while the lease is the turn's (which locks the thread's row),
    with the end of the turn's own row in the same statement (the append records the
    thread's side: its newest turn and that turn's status).

    Raises:
        LeaseLostError: another holder has the thread: nothing was written.
    """
    try:
        return await messages.append_message(
            db,
            thread_id=turn.thread_id,
            holder=turn.id,
            role=MessageRole.ASSISTANT,
            content=text,
            meta=make_storable_json(meta),
            turn_id=turn.id,
            turn_status=status,
            also=[
                turn_records.finish_statement(
                    turn.id, status=status, error_code=error_code, usage=usage
                )
            ],
        )
    except ConflictError as e:
        raise LeaseLostError() from e


async def _finish(
    db: AsyncSession,
    turn: RunningTurn,
    appended: tuple[Any, int] | None,
    status: TurnStatus,
    error_code: str | None,
    usage: TurnUsage,
    stats: MemoryStats | None,
    pruned: bool,
) -> Saved:
    if appended is None:
        await turn_records.finish_turn(
            db,
            thread_id=turn.thread_id,
            turn_id=turn.id,
            status=status,
            error_code=error_code,
            usage=usage,
        )
    generation = None
    if appended is not None and stats is not None:
        generation = await memory_records.record_memory_and_release(
            db,
            turn.thread_id,
            holder=turn.id,
            stats=stats,
            message_count=appended[1],
            pruned=pruned,
            node=turn.memory_node,
        )
        if generation is None:  # cannot happen under the row's lock; never write blind
            raise LeaseLostError()
    else:
        await leases.release(db, [turn.thread_id], turn.id)
    public = None if appended is None else message_public(appended[0], status)
    return Saved(message=public, generation=generation)


def _model_name(agent: Agent[Any]) -> str:
    model = agent.model
    return str(getattr(model, "model", None) or getattr(model, "model_name", None) or model)
