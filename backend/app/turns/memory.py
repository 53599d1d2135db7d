"""Memory made to match the PostgreSQL log exactly, before a turn (or a job) uses it.

PostgreSQL records, per thread, the memory *generation* (how many saved states memory has
had) and how many log messages that state reflects; the memory file stamps the generation in
itself. Before a turn:

- a file SQLite cannot use (not a database, malformed, rows that are not JSON) is moved to
  `<AGENT_SESSION_DIR>/_quarantine/` (never deleted) and memory is rebuilt from the log;
- memory that is gone (file missing, expired by retention) is rebuilt;
- a file whose stamp is not the thread's generation is behind (lost writes: a deleted WAL,
  an older copy restored, a stale copy on another node) or ahead (a crash between a memory
  write and its commit): either way it is rebuilt from the log;
- after the stamp, memory must hold exactly the user messages the log has after the saved
  state (turns that failed keep their user message in both stores); anything else there is
  a turn a crash or a lost lease cut off, and is replaced by exactly those messages.

Rebuilding loses nothing the user saw (the log has every message and tool call) but drops
what only memory had (reasoning items, provider item ids), so it is done only when needed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from agents.items import TResponseInputItem
from sqlmodel.ext.asyncio.session import AsyncSession

from app.memory import Memory, MemoryMark, MemoryStore, is_corruption
from app.memory.log_items import items_from_log, newest_whole_turns, user_item
from app.metrics import RECOVERIES
from app.models import MemoryState, Message, MessageRole, Thread
from app.services import memory_records, messages

logger = logging.getLogger(__name__)


@dataclass
class Repair:
    """What was wrong with memory and what was done about it."""

    reason: str | None = None  # why memory was rebuilt or its tail replaced; None: it was right
    generation: int = 0  # the generation memory holds now (PostgreSQL must record a new one)


async def reconcile_memory(
    db: AsyncSession,
    store: MemoryStore,
    memory: Memory,
    thread: Thread,
    *,
    max_items: int,
    dry_run: bool = False,
    node: str | None = None,
) -> Repair:
    """Make memory hold exactly what the log says it should; record a rebuild in PostgreSQL.

    `memory` must be open (its lock held) and the thread leased by the caller, before any
    statement touched the file (whether it existed is part of the diagnosis). With
    `dry_run`, only say what is wrong: nothing is written and no file is created. `node`:
    where a rebuilt memory lives (see `record_memory`).
    """
    had_file = await store.exists(thread.user_id, thread.id)
    if dry_run and not had_file:
        missing = thread.memory_state == MemoryState.ACTIVE
        return Repair(reason="missing" if missing else None, generation=thread.memory_generation)
    corrupt = await _corrupt(store, memory, thread, dry_run=dry_run)
    if corrupt and dry_run:
        return Repair(reason="corrupt", generation=thread.memory_generation)
    repair = await _repair(
        db,
        memory,
        thread,
        max_items=max_items,
        had_file=had_file,
        corrupt=corrupt,
        dry_run=dry_run,
    )
    if not dry_run and repair.generation != thread.memory_generation:
        await memory_records.record_memory(
            db,
            thread.id,
            stats=await memory.stats(),
            generation=repair.generation,
            message_count=thread.message_count,
            node=node,
        )
        thread.memory_generation = repair.generation
        thread.memory_message_count = thread.message_count
    return repair


async def _corrupt(store: MemoryStore, memory: Memory, thread: Thread, *, dry_run: bool) -> bool:
    """Check the file; when damaged, move it aside (unless `dry_run`). True when damaged.

    Raises:
        MemoryBusyError, MemoryUnavailableError: the file is fine but cannot be used now.
    """
    try:
        await memory.check()
        if not dry_run:
            await memory.ensure_writable()
    except Exception as e:
        if not is_corruption(e):
            raise
        if not dry_run:
            moved = await store.quarantine(memory)
            logger.warning(
                "Quarantined unusable memory of thread %s (%s) to %s",
                thread.id,
                type(e).__name__,
                moved,
            )
        return True
    return False


async def _repair(
    db: AsyncSession,
    memory: Memory,
    thread: Thread,
    *,
    max_items: int,
    had_file: bool,
    corrupt: bool,
    dry_run: bool,
) -> Repair:
    """Rebuild, replace the tail, or leave memory as it is (see the module docstring).

    A rebuild stamps the file with the next generation for the caller to record.
    """
    mark = await memory.read_mark()
    if thread.memory_state == MemoryState.EMPTY:
        return await _repair_empty(db, memory, thread, mark, dry_run=dry_run)
    reason = "corrupt" if corrupt else _rebuild_reason(thread, mark, had_file=had_file)
    if reason is not None:
        if dry_run:
            return Repair(reason=reason, generation=thread.memory_generation)
        generation = await memory_records.next_generation(db)
        written = await rebuild_memory(
            db, memory, thread=thread, max_items=max_items, generation=generation
        )
        RECOVERIES.labels(reason).inc()
        logger.info(
            "Rebuilt the memory of thread %s from the message log (%d items, reason: %s)",
            thread.id,
            written,
            reason,
        )
        return Repair(reason=reason, generation=generation)
    base = mark.stamped_last_id if mark.generation is not None else _legacy_base(thread)
    return await _repair_tail(db, memory, thread, base, dry_run=dry_run)


async def _repair_empty(
    db: AsyncSession,
    memory: Memory,
    thread: Thread,
    mark: MemoryMark,
    *,
    dry_run: bool,
) -> Repair:
    """Never saved, or cleared on purpose: memory holds only the log's unsaved user messages.

    A file stamped with another generation is a stale copy (the thread was cleared since):
    it is emptied, never rebuilt from the log, since the agent was told to forget.
    """
    if mark.generation is not None and mark.generation != thread.memory_generation:
        if not dry_run:
            await memory.replace_after(0, [])
            RECOVERIES.labels("stale").inc()
            logger.info("Emptied a stale copy of the memory of cleared thread %s", thread.id)
        return Repair(reason="stale", generation=thread.memory_generation)
    base = mark.stamped_last_id if mark.generation is not None else 0
    return await _repair_tail(db, memory, thread, base, dry_run=dry_run)


async def _repair_tail(
    db: AsyncSession,
    memory: Memory,
    thread: Thread,
    base: int,
    *,
    dry_run: bool,
) -> Repair:
    """After the saved point `base`, memory must hold exactly the unsaved user messages."""
    expected = await _unsaved_user_items(db, thread)
    if await memory.items_after(base) == expected:
        return Repair(generation=thread.memory_generation)
    if not dry_run:
        await memory.replace_after(base, expected)
        RECOVERIES.labels("interrupted turn").inc()
        logger.info(
            "Replaced what an interrupted turn left in the memory of thread %s "
            "with the log's %d unanswered messages",
            thread.id,
            len(expected),
        )
    return Repair(reason="interrupted turn", generation=thread.memory_generation)


def _rebuild_reason(thread: Thread, mark: MemoryMark, *, had_file: bool) -> str | None:
    """Why an active or expired thread's memory must be rebuilt from the log, or None."""
    generation = thread.memory_generation
    if thread.memory_state == MemoryState.EXPIRED:
        return "expired"
    if not had_file:
        return "missing"
    if mark.generation is None:
        # Written before generations existed: trust it unless it lost saved items.
        if generation == 0 and mark.last_id >= (thread.memory_last_item_id or 0):
            return None
        return "behind"
    if mark.generation < generation:
        return "behind"
    if mark.generation > generation:
        return "ahead"
    return None


async def rebuild_memory(
    db: AsyncSession,
    memory: Memory,
    *,
    thread: Thread,
    max_items: int,
    generation: int,
    before: Message | None = None,
) -> int:
    """Replace memory with the thread's summary (if any) and the newest whole turns of the
    PostgreSQL log after what it covers, tool calls included, stamped with `generation`
    (the caller records it in PostgreSQL). One transaction in memory.

    The summary is PostgreSQL's copy, so memory's head comes back exactly as it was.

    Args:
        before: rebuild from the log up to (not including) this message (a retry).

    Returns:
        The number of items written (the summary counts as one).
    """
    summary = memory_records.stored_summary(thread)
    logged = await messages.recent_messages(
        db, thread_id=thread.id, limit=max_items, skip=thread.memory_summary_covers, before=before
    )
    items = items_from_log([(m.role, m.content, m.meta) for m in logged])
    kept = newest_whole_turns(items, max_items)  # the cap leaves room for the summary
    await memory.rebuild(kept, summary=summary, generation=generation)
    return len(kept) + (0 if summary is None else 1)


def _legacy_base(thread: Thread) -> int:
    """The saved point of a file that has no stamp yet (the bookkeeping's newest item id)."""
    return thread.memory_last_item_id or 0


async def _unsaved_user_items(db: AsyncSession, thread: Thread) -> list[TResponseInputItem]:
    """The log's messages after the saved state, as the user items memory must hold."""
    if thread.message_count <= thread.memory_message_count:
        return []
    pending = await messages.messages_after(
        db, thread_id=thread.id, offset=thread.memory_message_count
    )
    return [user_item(m.content) for m in pending if m.role == MessageRole.USER]
