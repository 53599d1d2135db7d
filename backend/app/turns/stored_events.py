"""Following a turn that runs on another worker or node, from its events in PostgreSQL.

The events are copied into a local `TurnLog` as their batches arrive, so a resumed stream has
exactly the ids and payloads (and the same treatment of a partly sent run of deltas) as on the
worker running the turn. New batches are fetched when the event feed says so, or after its
waiting interval. A turn that stopped adding events because its worker died (its lease gone,
or its status final, for longer than `ORPHAN_GRACE_SECONDS`, with no `done`) is ended for the
follower with an `error` (`interrupted`, retryable) and a `done`: the thread's messages hold
whatever it saved.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

from app.db import SessionMaker
from app.errors import NotFoundError
from app.models import TurnStatus
from app.services import turn_events
from app.services.turn_events import EventBatch, TurnState
from app.turns.event_feed import EventFeed
from app.turns.events import TurnDone, TurnError, TurnEvent
from app.turns.log import SentEvent, TurnLog

# Longer than a flush interval and a lease keeper tick: the final batch of a turn that ended
# normally is written well within it.
ORPHAN_GRACE_SECONDS = 5.0
INTERRUPTED = TurnError(
    code="interrupted",
    message="The server running this turn stopped; the thread's messages hold what it saved",
    retryable=True,
)


class StoredTurnEvents:
    """A turn's events as PostgreSQL has them, followed live (a `FollowableLog`)."""

    def __init__(
        self, sessionmaker: SessionMaker, feed: EventFeed, thread_id: uuid.UUID, turn_id: uuid.UUID
    ) -> None:
        self._sessionmaker = sessionmaker
        self._feed = feed
        self.thread_id = thread_id
        self.turn_id = turn_id

    async def check(self) -> None:
        """Raise `NotFoundError` unless the turn can be resumed from PostgreSQL.

        A running turn can (its first batch may still be on its way); a finished one only
        while its events are kept (TURN_REPLAY_SECONDS).
        """
        async with self._sessionmaker() as db:
            state = await turn_events.turn_state(db, self.turn_id, self.thread_id)
            if state is not None and (
                state.status == TurnStatus.RUNNING or await turn_events.has_events(db, self.turn_id)
            ):
                return
        raise NotFoundError(
            f"Turn {self.turn_id} cannot be resumed; list the thread's messages instead"
        )

    async def follow(
        self, after: int = 0, *, idle_timeout_s: float | None = None
    ) -> AsyncIterator[SentEvent | None]:
        """Events after `after`, live until `done`; None after `idle_timeout_s` of quiet."""
        log: TurnLog | None = None
        sent, quiet_since, gone_since = after, time.monotonic(), None
        with self._feed.subscribe(self.turn_id) as woken:
            while True:
                woken.clear()
                log = await self._fetch(log, after)
                progressed = False
                for event in list(log.events_after(sent)) if log is not None else ():
                    sent, progressed = event[0], True
                    yield event
                    if event[1] == TurnEvent.DONE:
                        return
                if log is not None and log.finished and sent >= log.last_id:
                    return  # resumed at or after the end
                now = time.monotonic()
                if progressed:
                    quiet_since, gone_since = now, None
                elif now - quiet_since >= self._feed.wait_s:
                    state = await self._state()
                    if state is None or not state.alive:
                        gone_since = gone_since or now
                        if now - gone_since >= ORPHAN_GRACE_SECONDS:
                            for event in _ending(self.turn_id, sent, state):
                                yield event
                            return
                    else:
                        gone_since = None
                if idle_timeout_s is not None and now - quiet_since >= idle_timeout_s:
                    quiet_since = now
                    yield None
                wait = self._feed.wait_s
                if idle_timeout_s is not None:
                    wait = min(wait, idle_timeout_s)
                try:
                    async with asyncio.timeout(wait):
                        await woken.wait()
                except TimeoutError:
                    pass

    async def _fetch(self, log: TurnLog | None, after: int) -> TurnLog | None:
        # The first read includes the batch holding `after` itself: a resume at the last
        # event of a finished turn must see that the turn is done.
        known = max(after - 1, 0) if log is None else log.last_id
        async with self._sessionmaker() as db:
            batches = await turn_events.read_batches(db, self.turn_id, after=known)
            if log is None and not batches:
                # Resumed past every stored event: the newest batch says whether the turn
                # is done there (nothing more to send) or still running (more will come).
                last = await turn_events.read_last_batch(db, self.turn_id)
                batches = [] if last is None else [last]
        for batch in batches:
            if log is None:
                log = TurnLog(start_after=batch.first_id - 1)
            if batch.first_id > log.last_id:
                log.ingest(batch.events)
            elif batch.last_id > log.last_id:
                # A retried write replaced a batch this follower had read with a longer one
                # (see `turn_events`): take only what is new in it.
                log.ingest(_tail(batch, after=log.last_id))
        return log

    async def _state(self) -> TurnState | None:
        async with self._sessionmaker() as db:
            return await turn_events.turn_state(db, self.turn_id, self.thread_id)


def _tail(batch: EventBatch, *, after: int) -> str:
    """The events of `batch` after id `after`, encoded as a batch of their own."""
    whole = TurnLog(start_after=batch.first_id - 1)
    whole.ingest(batch.events)
    encoded = whole.encode_after(after)
    assert encoded is not None  # the caller checked that the batch goes past `after`
    return encoded[1]


def _ending(turn_id: uuid.UUID, sent: int, state: TurnState | None) -> list[SentEvent]:
    """What ends the stream of a turn whose worker died before writing its `done`."""
    status = state.status if state is not None else TurnStatus.FAILED
    events: list[SentEvent] = []
    if status in (TurnStatus.RUNNING, TurnStatus.FAILED):
        events.append((sent + 1, TurnEvent.ERROR, INTERRUPTED.model_dump_json()))
        status = TurnStatus.FAILED
    done = TurnDone(turn_id=turn_id, status=status)
    events.append((sent + len(events) + 1, TurnEvent.DONE, done.model_dump_json()))
    return events
