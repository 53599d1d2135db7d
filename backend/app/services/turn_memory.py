"""Opening a thread's memory for a turn, repaired first so it matches the PostgreSQL log.

Recovery happens here, inside the user's request, so the turn itself succeeds:

- a file SQLite cannot use (not a database, malformed, truncated) or with rows that are not
  JSON is moved to `<AGENT_SESSION_DIR>/_quarantine/` (never deleted) and rebuilt;
- a file that is gone while the thread says it has memory, or memory that expired, is rebuilt;
- a crash mid-turn leaves the log ending with a user message that memory does not end with:
  memory is rebuilt to the log (the log is the durable truth).
"""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.assistant.memory import AgentMemoryStore, MemorySession, is_corruption
from app.metrics import RECOVERIES
from app.models import Conversation, MemoryState, Message, MessageRole
from app.services import sessions

logger = logging.getLogger(__name__)


async def open_turn_memory(
    db: AsyncSession,
    store: AgentMemoryStore,
    conversation: Conversation,
    *,
    max_items: int,
    resources: AsyncExitStack,
) -> tuple[MemorySession, str | None]:
    """Open (into `resources`) and, when needed, repair the conversation's memory.

    Returns:
        The open memory, and why it was rebuilt (None when it was fine).

    Raises:
        MemoryBusyError: another process holds the file past the busy timeout.
    """
    user_id, conversation_id = conversation.user_id, conversation.id
    had_file = store.exists(user_id, conversation_id)
    reason: str | None = None
    try:
        memory = await resources.enter_async_context(store.open(user_id, conversation_id))
        await memory.check()
        await memory.ensure_writable()
    except Exception as e:
        if not is_corruption(e):
            raise
        await resources.aclose()
        moved = await store.quarantine(user_id, conversation_id)
        logger.warning(
            "Quarantined unusable memory of thread %s (%s) to %s",
            conversation_id,
            type(e).__name__,
            moved,
        )
        memory = await resources.enter_async_context(store.open(user_id, conversation_id))
        reason = "corrupt"
    if reason is None:
        reason = await rebuild_reason(db, memory, conversation, had_file=had_file)
    if reason is not None:
        written = await sessions.rebuild_memory(
            db, memory, conversation_id=conversation_id, max_items=max_items
        )
        RECOVERIES.labels(reason).inc()
        logger.info(
            "Rebuilt the memory of thread %s from the message log (%d items, reason: %s)",
            conversation_id,
            written,
            reason,
        )
    return memory, reason


async def rebuild_reason(
    db: AsyncSession, memory: MemorySession, conversation: Conversation, *, had_file: bool
) -> str | None:
    """Why memory must be rebuilt from the log before the next turn, or None."""
    if conversation.memory_state == MemoryState.EXPIRED:
        return "expired"
    if conversation.memory_state != MemoryState.ACTIVE:
        return None  # new, or cleared on purpose: memory starts empty
    if not had_file:
        return "missing"
    if await memory.last_id() == conversation.memory_last_item_id:
        return None  # nothing written since the last saved turn: nothing to reconcile
    last = (
        await db.exec(
            select(Message.role, Message.content)
            .where(Message.conversation_id == conversation.id)
            .order_by(col(Message.created_at).desc(), col(Message.id).desc())
            .limit(1)
        )
    ).first()
    if last is None:
        return None
    tail = await memory.last_item()
    if tail is None:
        return "empty"
    if last[0] == MessageRole.USER and tail != {"role": "user", "content": last[1]}:
        return "interrupted turn"
    return None
