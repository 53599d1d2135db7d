"""Writes the events of a worker's turns to PostgreSQL in batches, for resuming anywhere.

Not a row per event, nor a transaction per turn: every `flush_s` one transaction inserts each
running turn's new events as one row (deltas coalesced) and notifies their followers. At many
turns in flight that is still a handful of transactions per second per worker; a turn shorter
than the interval costs one row. A turn stays in the process only until its last event (`done`)
is written; then `on_written` lets the runner forget it.

While PostgreSQL is down the events wait in the turn's log (bounded by the turn's own life)
and are written when it is back; a finished turn whose events still cannot be written after
`GIVE_UP_SECONDS` is dropped (its messages are in the log, its stream can no longer resume).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from app.db import SessionMaker, session_scope
from app.metrics import TURN_EVENT_BATCHES
from app.services import turn_events
from app.services.turn_events import EventBatch
from app.turns.log import TurnLog

logger = logging.getLogger(__name__)

GIVE_UP_SECONDS = 60.0
WRITE_TIMEOUT_SECONDS = 10.0


@dataclass
class _Tracked:
    log: TurnLog
    on_written: Callable[[], None]
    written: int = 0  # the last event id in PostgreSQL
    finished_at: float | None = None  # monotonic: when `done` was first seen unwritten


class EventWriter:
    """One per worker: the batching writer of every turn's events."""

    def __init__(self, sessionmaker: SessionMaker, *, flush_s: float) -> None:
        self._sessionmaker = sessionmaker
        self._flush_s = flush_s
        self._turns: dict[uuid.UUID, _Tracked] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._failing = False
        # One write at a time: two writes of the same turn's events from the same point would
        # collide on (turn, first id), and the shorter one could win.
        self._writing = asyncio.Lock()

    def track(self, turn_id: uuid.UUID, log: TurnLog, on_written: Callable[[], None]) -> None:
        """Write `log`'s events until its `done` is written; then call `on_written`."""
        self._turns[turn_id] = _Tracked(log, on_written)
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="turn-event-writer")

    def __len__(self) -> int:
        return len(self._turns)

    async def flush(self) -> None:
        """Write everything pending now (tests, shutdown)."""
        await self._write_pending()

    async def aclose(self) -> None:
        """Write what is pending (bounded), then stop."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(WRITE_TIMEOUT_SECONDS):
                await self._write_pending()

    async def _run(self) -> None:
        while True:
            if not self._turns:
                self._wake.clear()
                await self._wake.wait()
            await asyncio.sleep(self._flush_s)
            await self._write_pending()

    async def _write_pending(self) -> None:
        async with self._writing:
            await self._write_pending_locked()

    async def _write_pending_locked(self) -> None:
        batches = []
        for turn_id, tracked in self._turns.items():
            encoded = tracked.log.encode_after(tracked.written)
            if encoded is not None:
                first_id, text = encoded
                batches.append(EventBatch(turn_id, first_id, tracked.log.last_id, text))
        if batches and not await self._write(batches):
            self._give_up_stale()
            return
        for batch in batches:
            tracked_batch = self._turns.get(batch.turn_id)
            if tracked_batch is not None:
                tracked_batch.written = batch.last_id
        self._forget_finished()

    async def _write(self, batches: list[EventBatch]) -> bool:
        try:
            async with asyncio.timeout(WRITE_TIMEOUT_SECONDS):
                try:
                    async with session_scope(self._sessionmaker) as db:
                        await turn_events.write_batches(db, batches)
                except IntegrityError:
                    # A thread deleted between the check and the insert: write one by one.
                    for batch in batches:
                        with contextlib.suppress(IntegrityError):
                            async with session_scope(self._sessionmaker) as db:
                                await turn_events.write_batches(db, [batch])
        except (SQLAlchemyError, OSError, TimeoutError) as e:
            if not self._failing:
                logger.warning(
                    "Could not write the events of %d turns (%s); retrying",
                    len(batches),
                    type(e).__name__,
                )
            self._failing = True
            return False
        if self._failing:
            logger.info("Turn events are written again")
        self._failing = False
        TURN_EVENT_BATCHES.inc(len(batches))
        return True

    def _forget_finished(self) -> None:
        for turn_id, tracked in list(self._turns.items()):
            if tracked.log.finished and tracked.written == tracked.log.last_id:
                del self._turns[turn_id]
                tracked.on_written()

    def _give_up_stale(self) -> None:
        now = time.monotonic()
        for turn_id, tracked in list(self._turns.items()):
            if not tracked.log.finished:
                continue
            if tracked.finished_at is None:
                tracked.finished_at = now
            elif now - tracked.finished_at > GIVE_UP_SECONDS:
                logger.warning("Dropping the unwritten events of finished turn %s", turn_id)
                del self._turns[turn_id]
                tracked.on_written()
