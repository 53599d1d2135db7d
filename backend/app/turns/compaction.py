"""Compaction: fold what prunes removed into one summary at the head of memory, off the
request path, without ever racing a turn or breaking the generation rules.

After a turn whose prune removed turns (and in the prune sweep), for one thread:

1. **Plan**: memory's stamp and head (its summary, how many user messages it holds, the
   oldest one), read under the file's in-process lock, then PostgreSQL's thread row (a turn
   saved in between shows as a new generation: plan again). Memory holds the log's newest
   user messages, so the log position of the oldest one it still holds is where the pruned
   part ends; its text must match, else nothing is done.
2. **Summarize** the pruned log messages not yet covered (they are in PostgreSQL, and the
   log only ever grows at its end) into the previous summary, holding nothing: no lock, no
   lease, no connection. A turn may run meanwhile; the user never waits for this.
3. **Apply**, in a short critical section: the file's in-process lock, then the thread's
   lease with a holder of our own, claimed by the statement that reads the thread (a turn
   elsewhere holds it: skip, a later prune retries). Check memory is in step (its stamp is
   PostgreSQL's generation), the summary was not changed meanwhile, and everything
   summarized is still out of memory. Then write the summary item at the head and stamp the
   next generation in one SQLite transaction, and record the summary, that generation and
   the lease release in one PostgreSQL statement. Two short transactions in all, so a turn
   of this worker that arrives meanwhile waits milliseconds for the file, never long enough
   to be refused.

Why it cannot race a turn: a turn holds the lease from before it reads memory until its reply
is committed, and its file lock until it is stamped; the apply step holds both, so the two
never interleave. Why generations stay exact: the summary is one more saved state. A crash
between the two commits leaves the file one generation ahead of PostgreSQL, which reconcile
finds and repairs by rebuilding from the log with PostgreSQL's (previous) summary, exactly as
for a turn. If summarizing fails or times out, nothing is written: the prune stands (the cap
held), the failure is logged and counted, and the next prune of the thread tries again.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta

from sqlmodel.ext.asyncio.session import AsyncSession

from app.assistant.summarizer import LoggedMessage, Summarizer, SummaryText
from app.config import Settings
from app.db import SessionMaker, session_scope
from app.errors import ConflictError, NotFoundError
from app.memory import (
    Memory,
    MemoryHead,
    MemoryInUseError,
    MemoryMark,
    MemoryStore,
    MemoryVersionError,
    StoredSummary,
)
from app.metrics import SUMMARIES, SUMMARY_SECONDS, SUMMARY_TOKENS
from app.models import MemoryState, Thread
from app.models.base import utc_now
from app.models.text import make_storable
from app.services import leases, memory_records, messages

logger = logging.getLogger(__name__)

# Pruned log messages one summary folds in at most (the newest); older ones are left out and
# the summarizer is told how many. Only a thread that had a long history before compaction
# was turned on ever has more.
GAP_MAX_MESSAGES = 400
# Plans made again when a turn is saved between reading memory and reading PostgreSQL.
PLAN_ATTEMPTS = 3


class Skip(Exception):
    """Nothing is written this time; `reason` says why (a later prune tries again)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Plan:
    """What one summary update folds in, and the state it was planned against."""

    generation: int  # memory's generation when planned
    base_covers: int  # log messages the current summary covers
    covers: int  # ... and the new one will: where the pruned part of the log ends
    previous: str | None
    gap: list[LoggedMessage]
    opening: str | None
    omitted: int


class Compactor:
    """Makes and applies summaries of pruned turns, one thread at a time, in the background."""

    def __init__(
        self,
        *,
        sessionmaker: SessionMaker,
        memory_store: MemoryStore,
        settings: Settings,
        summarizer: Summarizer,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._store = memory_store
        self._settings = settings
        self.summarizer = summarizer
        self._lease = timedelta(seconds=settings.TURN_LEASE_SECONDS)
        self._tasks: dict[uuid.UUID, asyncio.Task[None]] = {}
        self._again: set[uuid.UUID] = set()

    def schedule(self, user_id: uuid.UUID, thread_id: uuid.UUID) -> None:
        """Compact the thread soon, in a task of its own (returns at once).

        A thread already being compacted is compacted once more after that run, so what the
        latest prune removed is never left out.
        """
        if thread_id in self._tasks:
            self._again.add(thread_id)
            return
        task = asyncio.create_task(self._run(user_id, thread_id), name=f"compact-{thread_id}")
        self._tasks[thread_id] = task

    async def _run(self, user_id: uuid.UUID, thread_id: uuid.UUID) -> None:
        try:
            while True:
                self._again.discard(thread_id)
                await self.compact(user_id, thread_id)
                if thread_id not in self._again:
                    return
        finally:
            self._tasks.pop(thread_id, None)

    async def wait_idle(self) -> None:
        """Wait until no compaction is running (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    async def aclose(self) -> None:
        """Stop running compactions (at shutdown): a summary half-made is simply not made."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def compact(self, user_id: uuid.UUID, thread_id: uuid.UUID) -> str:
        """Bring the thread's summary up to what prunes removed. Never raises.

        Returns:
            "made", "failed", "skipped: <why>" or "up to date".
        """
        try:
            plan = await self._plan(user_id, thread_id)
            if plan is None:
                return "up to date"
            made = await self._summarize(thread_id, plan)
            await self._apply(user_id, thread_id, plan, made)
        except Skip as e:
            SUMMARIES.labels("skipped").inc()
            logger.info("Summary of thread %s skipped: %s", thread_id, e.reason)
            return f"skipped: {e.reason}"
        except Exception as e:
            SUMMARIES.labels("failed").inc()
            logger.warning(
                "Summary of thread %s failed (%s); the prune stands, the next one retries",
                thread_id,
                type(e).__name__,
                exc_info=not isinstance(e, TimeoutError),
            )
            return "failed"
        SUMMARIES.labels("made").inc()
        return "made"

    async def _plan(self, user_id: uuid.UUID, thread_id: uuid.UUID) -> Plan | None:
        """Step 1: what is pruned and not yet summarized (None: nothing).

        The file's lock is held for two reads of the file only (a turn holding it is waited
        for); PostgreSQL is read after, and a turn saved in between shows as a new
        generation, in which case the plan is made again.
        """
        for _ in range(PLAN_ATTEMPTS):
            async with self._open(user_id, thread_id) as memory:
                mark, head = await memory.read_mark(), await memory.head()
            async with self._sessionmaker() as db:
                thread = await db.get(Thread, thread_id)
                if thread is None:
                    raise Skip("thread deleted")
                if thread.memory_state == MemoryState.ACTIVE and (
                    mark.generation != thread.memory_generation
                ):
                    continue  # a turn was saved meanwhile: read both again
                _check_in_step(thread, mark, head)
                return await self._gap(db, thread, head)
        raise Skip("memory kept changing while the summary was planned")

    async def _gap(self, db: AsyncSession, thread: Thread, head: MemoryHead) -> Plan | None:
        end = await pruned_until(db, thread, head)
        start = thread.memory_summary_covers
        if end <= start:
            return None
        first = max(start, end - GAP_MAX_MESSAGES)
        gap = await messages.messages_between(db, thread_id=thread.id, start=first, end=end)
        opening = None
        if start == 0:
            found = await messages.nth_user_message(db, thread_id=thread.id, n=0)
            opening = None if found is None else found[1].content
        return Plan(
            generation=thread.memory_generation,
            base_covers=start,
            covers=end,
            previous=thread.memory_summary,
            gap=[LoggedMessage(m.role, m.content, m.meta) for m in gap],
            opening=opening,
            omitted=first - start,
        )

    async def _summarize(self, thread_id: uuid.UUID, plan: Plan) -> SummaryText:
        """Step 2, holding nothing, bounded by AGENT_SESSION_SUMMARY_TIMEOUT_SECONDS."""
        started = time.perf_counter()
        async with asyncio.timeout(self._settings.AGENT_SESSION_SUMMARY_TIMEOUT_SECONDS):
            made = await self.summarizer.summarize(
                plan.previous, plan.gap, opening=plan.opening, omitted=plan.omitted
            )
        elapsed = time.perf_counter() - started
        SUMMARY_SECONDS.observe(elapsed)
        SUMMARY_TOKENS.labels("input").inc(made.input_tokens)
        SUMMARY_TOKENS.labels("output").inc(made.output_tokens)
        logger.info(
            "Summarized %d pruned messages of thread %s into %d characters in %.3f s "
            "(%d input, %d output tokens)",
            len(plan.gap),
            thread_id,
            len(made.text),
            elapsed,
            made.input_tokens,
            made.output_tokens,
        )
        return made

    async def _apply(
        self, user_id: uuid.UUID, thread_id: uuid.UUID, plan: Plan, made: SummaryText
    ) -> None:
        """Step 3: the short critical section (see the module docstring).

        The file's lock is waited for (a turn of this worker holding it is finishing: we go
        before the next one, which waits these few milliseconds); the lease is not (another
        worker's turn or a job has the thread: skip). Inside, two PostgreSQL statements in
        the common case: the claim, which also reads the thread, and the record, which also
        releases the lease.
        """
        holder = uuid.uuid4()
        async with self._open(user_id, thread_id) as memory:
            try:
                thread = await leases.claim(
                    self._sessionmaker,
                    user_id=user_id,
                    thread_id=thread_id,
                    holder=holder,
                    lease=self._lease,
                )
            except ConflictError as e:
                raise Skip("a turn or a job holds the thread") from e
            except NotFoundError as e:
                raise Skip("thread deleted") from e
            recorded = False
            try:
                recorded = await self._write(memory, thread, holder, plan, made)
            finally:
                if not recorded:
                    async with session_scope(self._sessionmaker) as db:
                        await leases.release(db, [thread_id], holder)
        if not recorded:
            logger.warning(
                "Summary of thread %s written, but its lease was lost before it was recorded: "
                "memory is ahead of the log and is rebuilt on the next turn",
                thread_id,
            )

    async def _write(
        self, memory: Memory, thread: Thread, holder: uuid.UUID, plan: Plan, made: SummaryText
    ) -> bool:
        """Check the plan still holds, then both writes (memory first, see the docstring).

        Raises:
            Skip: memory moved on in a way the plan did not foresee (nothing is written).
        """
        mark, head = await memory.read_mark(), await memory.head()
        _check_in_step(thread, mark, head)
        if thread.memory_summary_covers != plan.base_covers:
            raise Skip("the summary changed meanwhile")
        if thread.memory_generation != plan.generation:
            # Turns were saved since the plan: what it summarized must still be out of memory.
            async with self._sessionmaker() as db:
                if await pruned_until(db, thread, head) < plan.covers:
                    raise Skip("memory holds part of what was summarized (rebuilt meanwhile)")
        summary = StoredSummary(
            text=make_storable(made.text), covers=plan.covers, made_at=utc_now()
        )
        async with self._sessionmaker() as db:  # nextval: not part of any transaction
            generation = await memory_records.next_generation(db)
        await memory.put_summary(summary, generation=generation)
        async with session_scope(self._sessionmaker) as db:
            return await memory_records.record_summary(
                db,
                thread.id,
                holder=holder,
                summary=summary,
                generation=generation,
                stats=await memory.stats(),
            )

    @asynccontextmanager
    async def _open(self, user_id: uuid.UUID, thread_id: uuid.UUID) -> AsyncIterator[Memory]:
        """The thread's memory for a block, waiting out a turn that holds it (never longer
        than a turn may run); what makes it unusable now is a `Skip`."""
        wait_s = self._settings.MAX_TURN_SECONDS
        try:
            async with self._store.open(user_id, thread_id, wait_s=wait_s) as memory:
                yield memory
        except MemoryInUseError as e:
            raise Skip("memory is in use") from e
        except MemoryVersionError as e:
            raise Skip("memory file is in a newer format") from e


def _check_in_step(thread: Thread, mark: MemoryMark, head: MemoryHead) -> None:
    """Raise `Skip` unless memory is exactly the saved state PostgreSQL records."""
    if thread.memory_state != MemoryState.ACTIVE:
        raise Skip(f"memory is {thread.memory_state}")
    if mark.generation != thread.memory_generation:
        raise Skip("memory is not in step with the log (reconcile repairs it first)")
    stored = memory_records.stored_summary(thread)
    if (head.summary is None) != (stored is None) or (
        head.summary is not None and stored is not None and head.summary.covers != stored.covers
    ):
        raise Skip("memory's summary is not PostgreSQL's")


async def pruned_until(db: AsyncSession, thread: Thread, head: MemoryHead) -> int:
    """How many log messages, from the first, memory no longer holds verbatim.

    Memory holds the log's newest user messages (saved turns, and those of failed turns), so
    the oldest one it holds is the user message numbered (log's user messages - memory's);
    its position in the log is where the pruned part ends. Its text must be the one memory
    starts with, else memory and log disagree and nothing is summarized.

    Raises:
        Skip: memory and the log disagree.
    """
    users = await messages.count_user_messages(db, thread_id=thread.id)
    pruned = users - head.turn_starts
    if pruned < 0 or (pruned > 0 and head.turn_starts == 0):
        raise Skip("memory holds user messages the log does not")
    if pruned == 0:
        return thread.memory_summary_covers
    found = await messages.nth_user_message(db, thread_id=thread.id, n=pruned)
    if found is None or found[1].content != head.first_turn_text:
        raise Skip("memory's oldest turn is not where the log says")
    return found[0]
