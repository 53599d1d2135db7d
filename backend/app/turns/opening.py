"""Step 1 of a turn: take the thread, make memory match the log, log the user's message.

A new message and a retry open a turn the same way: the memory file's in-process lock first
(a turn running here: 409 at once), then the lease in a transaction of its own (so a claim
never waits on anything while holding a row lock), then memory reconciled against the log.
A new message is appended; a retry removes everything after the message it retries from the
log, and rewinds memory to just before it (the run adds the user item again, as it does for
a new message). The caller commits the request's transaction, then starts the turn.
"""

from __future__ import annotations

import time
import uuid
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol, cast

from agents.items import TResponseInputItem
from sqlmodel.ext.asyncio.session import AsyncSession

from app.config import Settings
from app.db import SessionMaker
from app.errors import UnprocessableError
from app.memory import Memory, MemoryStore, MemoryUnavailableError
from app.memory.log_items import items_from_log
from app.models import Message, MessageRole, Thread, TurnStatus, message_public
from app.services import memory_records, messages, turn_records
from app.services.lease_keeper import LeaseKeeper
from app.services.limits import TurnLimiter
from app.turns.memory import rebuild_memory, reconcile_memory
from app.turns.turn import RunningTurn

MEBIBYTE = 1024 * 1024


class _LogWrite(Protocol):
    """What opening writes to the log, once the thread is claimed and memory reconciled."""

    async def __call__(self, thread: Thread, turn_id: uuid.UUID, memory: Memory) -> Message: ...


@dataclass
class TurnOpener:
    """What opening a turn needs (the runner builds one)."""

    sessionmaker: SessionMaker
    memory_store: MemoryStore
    settings: Settings
    keeper: LeaseKeeper
    lease: timedelta
    limiter: TurnLimiter
    incarnation: uuid.UUID | None = None  # this node's, recorded with every lease it claims
    memory_node: str | None = None  # where memory lives (the node, for node-local files)

    async def open_new(
        self, db: AsyncSession, owned: Thread, *, text: str, exempt: bool = False
    ) -> RunningTurn:
        """A turn for a new user message `text` in the caller's thread `owned`.

        `exempt`: the caller has the admin claim (no fair-use limit applies).

        Raises:
            LimitExceededError: over a fair-use limit (429; nothing written).
            NotFoundError: not the caller's thread.
            ConflictError: a turn is already running in this thread.
            MemoryBusyError, MemoryUnavailableError: memory cannot be used now (503).
        """

        async def log_message(thread: Thread, turn_id: uuid.UUID, memory: Memory) -> Message:
            del memory
            await turn_records.end_interrupted(db, thread)
            # The turn's row rides in the message's statement: one round trip, not two.
            message, _ = await messages.append_message(
                db,
                thread_id=thread.id,
                holder=turn_id,
                role=MessageRole.USER,
                content=text,
                meta={"turn_id": str(turn_id)},
                turn_id=turn_id,
                turn_status=TurnStatus.RUNNING,
                also=[turn_records.insert_turn(thread, turn_id)],
            )
            return message

        return await self._open(db, owned, log_message, exempt=exempt)

    async def open_retry(
        self, db: AsyncSession, owned: Thread, *, message_id: uuid.UUID, exempt: bool = False
    ) -> RunningTurn:
        """A turn that answers an earlier user message again, after forgetting what followed.

        Raises:
            NotFoundError: no such user message in the caller's thread.
            ConflictError: a turn is already running in this thread.
        """

        marks: list[int] = []

        async def rewind(thread: Thread, turn_id: uuid.UUID, memory: Memory) -> Message:
            message = await messages.get_message(db, thread, message_id)
            if message.role != MessageRole.USER:
                raise _not_a_user_message(message_id)
            marks.append(await self._rewind(db, thread, message, memory))
            await turn_records.start_turn(db, thread, turn_id)
            await turn_records.attach_message(db, message, turn_id)
            await messages.touch_thread(db, thread.id, turn_id=turn_id)
            return message

        turn = await self._open(db, owned, rewind, exempt=exempt)
        # Memory already holds the user's item (and what a failed attempt did): the run
        # continues from there, adding nothing before the model answers.
        turn.mark, turn.run_input = marks[0], []
        return turn

    async def _open(
        self, db: AsyncSession, owned: Thread, write: _LogWrite, *, exempt: bool
    ) -> RunningTurn:
        self._check_free_space()
        # Read before anything can fail: after a failed flush (the database went away) the
        # request's objects cannot be read, and the cleanup below still needs these.
        user_id, thread_id, agent = owned.user_id, owned.id, owned.agent
        # End the request's transaction (user lookup) so that no pooled connection is held
        # while this request waits for the memory file below.
        await db.commit()
        turn_id, resources = uuid.uuid4(), AsyncExitStack()
        try:
            memory = await resources.enter_async_context(
                self.memory_store.open(
                    user_id,
                    thread_id,
                    wait_s=self.settings.AGENT_SESSION_BUSY_TIMEOUT_MS / 1000,
                    for_turn=True,
                )
            )
            claimed_at = time.monotonic()
            # The fair-use check rides on the lease claim's transaction: a refusal rolls
            # both back, before the log or memory is written.
            thread = await self.limiter.claim_turn(
                self.sessionmaker,
                user_id=user_id,
                thread_id=thread_id,
                holder=turn_id,
                lease=self.lease,
                incarnation=self.incarnation,
                exempt=exempt,
            )
        except BaseException:
            await resources.aclose()
            raise
        # Kept alive from the claim on: reconciling memory can take a while on a busy worker
        # (its file work queues for the store's threads), longer than a short lease.
        self.keeper.hold(turn_id, thread_id, claimed_at=claimed_at)
        try:
            await reconcile_memory(
                db,
                self.memory_store,
                memory,
                thread,
                max_items=self.settings.memory_max_items,
                node=self.memory_node,
            )
            message = await write(thread, turn_id, memory)
        except BaseException:
            await resources.aclose()
            await self.keeper.release(thread_id, turn_id)
            raise
        return RunningTurn(
            id=turn_id,
            user_id=user_id,
            thread_id=thread_id,
            agent=agent,
            text=message.content,
            user_message=message_public(message, TurnStatus.RUNNING),
            memory=memory,
            generation=thread.memory_generation,
            memory_node=self.memory_node,
            _resources=resources,
        )

    async def _rewind(
        self, db: AsyncSession, thread: Thread, message: Message, memory: Memory
    ) -> int:
        """Forget, in both stores, everything after `message`, except what its own turn did
        if that turn failed: tool calls that completed happened, and forgetting them would
        run them again. A completed or stopped turn's reply is discarded whole (regenerate).

        Memory loses the same turns as the log, counted back from its newest (each turn
        starts with a user item), then gets `message`'s item (and a failed attempt's calls)
        back; when it no longer holds those turns (pruned), it is rebuilt from the log
        before `message`. A new generation is recorded.

        Returns:
            Memory's newest item id before `message`'s item: where the new turn begins.
        """
        kept = await messages.failed_reply_of(db, message)
        later_turns = 1 + await messages.count_users_after(db, message)
        removed = await messages.delete_after(db, message, keep=kept)
        before = await messages.count_before(db, message)
        generation = await memory_records.next_generation(db)
        if before < thread.memory_summary_covers:
            # The summary at memory's head stands for messages from `message` on (a retry
            # far back): it no longer describes the log, so it goes, and memory is rebuilt
            # from the log alone.
            await memory_records.forget_summary(db, thread.id, covers=0)
            thread.memory_summary, thread.memory_summary_at = None, None  # as just written
            thread.memory_summary_covers = 0
            dropped = False
        else:
            dropped = await memory.drop_turns(later_turns)
        if not dropped:
            await rebuild_memory(
                db,
                memory,
                thread=thread,
                max_items=self.settings.memory_max_items,
                generation=generation,
                before=message,
            )
        mark = (await memory.read_mark()).last_id
        logged = [(message.role, message.content, message.meta)]
        if kept is not None:
            logged.append((kept.role, kept.content, kept.meta))
        await memory.add_items(cast(list[TResponseInputItem], items_from_log(logged)))
        await memory.stamp(generation)
        await memory_records.record_memory(
            db,
            thread.id,
            stats=await memory.stats(),
            generation=generation,
            message_count=before + len(logged),
            node=self.memory_node,
        )
        await messages.forget_count(db, thread.id, removed)
        return mark

    def _check_free_space(self) -> None:
        """Refuse a turn before anything is written when the memory disk is nearly full."""
        needed = self.settings.AGENT_SESSION_MIN_FREE_MB * MEBIBYTE
        try:
            free = self.memory_store.free_bytes()
        except OSError as e:
            raise MemoryUnavailableError(
                "Agent memory storage cannot be reached; retry shortly"
            ) from e
        if free < needed:
            raise MemoryUnavailableError(
                "Agent memory storage is low on disk space; retry when an operator frees some"
            )


def _not_a_user_message(message_id: uuid.UUID) -> Exception:
    return UnprocessableError(f"Message {message_id} is not a user message; retry one of those")
