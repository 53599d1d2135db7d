"""Keeps the leases of a worker's running turns alive, stops a turn that lost its own, and
gives leases back even through an outage.

One renewal statement per interval covers every turn the worker runs (not one transaction
per turn: at hundreds of turns in flight those alone exhausted the pool). Each turn also has
a local deadline, pushed forward by every successful renewal and set safely before the lease
expires on the database's clock. A turn past its deadline (the database was unreachable for
longer than the lease) or whose lease another holder took is stopped: it must not write
anything more, since another worker may already be serving the thread.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.exc import SQLAlchemyError

from app.db import SessionMaker, session_scope
from app.services import leases, turn_records

logger = logging.getLogger(__name__)

# A deadline leaves this much of the lease unused, on top of one tick: clocks and a busy loop.
SAFETY_SECONDS = 1.0


@dataclass
class _Held:
    thread_id: uuid.UUID
    deadline: float  # monotonic time after which the turn must stop
    saving: bool = False  # its save (which releases the lease) has begun


class LeaseKeeper:
    """The heartbeat of one worker's turn leases."""

    def __init__(
        self,
        sessionmaker: SessionMaker,
        *,
        lease: timedelta,
        on_lost: Callable[[uuid.UUID], None],
        on_cancel_requested: Callable[[uuid.UUID], None] | None = None,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._lease = lease
        self._on_lost = on_lost
        self._on_cancel_requested = on_cancel_requested
        self._held: dict[uuid.UUID, _Held] = {}
        lease_s = lease.total_seconds()
        self.tick_seconds = lease_s / 6  # how often deadlines are checked
        self._renew_every = lease_s / 3
        self._margin = self.tick_seconds + SAFETY_SECONDS
        self._task: asyncio.Task[None] | None = None
        self._failing = False
        self._releases: set[asyncio.Task[None]] = set()  # retried through an outage

    def hold(self, turn_id: uuid.UUID, thread_id: uuid.UUID, *, claimed_at: float) -> None:
        """Start keeping the lease `turn_id` claimed at monotonic time `claimed_at`."""
        deadline = claimed_at + self._lease.total_seconds() - self._margin
        self._held[turn_id] = _Held(thread_id, deadline)
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="lease-keeper")

    def saving(self, turn_id: uuid.UUID) -> None:
        """The turn is about to save, and its save releases the lease.

        From here until the turn is dropped, a renewal that no longer finds the lease is the
        save's own release, not a loss: the turn must not be stopped for it (that turned a
        saved reply into a `lease_lost` error whenever a renewal ran between the save and the
        turn's last steps). The save itself checks that the lease is still the turn's.
        """
        held = self._held.get(turn_id)
        if held is not None:
            held.saving = True

    def drop(self, turn_id: uuid.UUID) -> None:
        self._held.pop(turn_id, None)

    def still_held(self, turn_id: uuid.UUID) -> bool:
        """Whether `turn_id` may still write: held, and before its deadline."""
        held = self._held.get(turn_id)
        return held is not None and time.monotonic() < held.deadline

    async def release(self, thread_id: uuid.UUID, holder: uuid.UUID) -> None:
        """Give `holder`'s lease back now, or keep trying while PostgreSQL is down.

        Without the retries, a thread whose turn failed in an outage would stay blocked for
        the rest of its lease after the database came back.
        """
        self.drop(holder)
        if await self._try_release(thread_id, holder):
            return
        task = asyncio.create_task(self._retry_release(thread_id, holder), name=f"release-{holder}")
        self._releases.add(task)
        task.add_done_callback(self._releases.discard)

    async def aclose(self) -> None:
        """Stop renewing and retrying (at shutdown: unrenewed leases simply expire)."""
        pending = [*self._releases, *([self._task] if self._task else [])]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        self._task = None

    async def _retry_release(self, thread_id: uuid.UUID, holder: uuid.UUID) -> None:
        deadline = time.monotonic() + self._lease.total_seconds()
        delay = 0.25
        while time.monotonic() + delay < deadline:
            await asyncio.sleep(delay)
            if await self._try_release(thread_id, holder):
                return
            delay = min(delay * 2, 2.0)
        logger.warning("Could not release the lease of turn %s; it expires by itself", holder)

    async def _try_release(self, thread_id: uuid.UUID, holder: uuid.UUID) -> bool:
        try:
            async with session_scope(self._sessionmaker) as db:
                await leases.release(db, [thread_id], holder)
        except (SQLAlchemyError, OSError):
            return False
        return True

    async def _run(self) -> None:
        last_renewal = time.monotonic()
        while True:
            await asyncio.sleep(self.tick_seconds)
            if time.monotonic() - last_renewal >= self._renew_every - 0.01:
                last_renewal = time.monotonic()
                await self._renew(started=last_renewal)
            self._stop_overdue()
            await self._poll_cancel_requests()

    async def _renew(self, *, started: float) -> None:
        holders = {turn: held.thread_id for turn, held in self._held.items()}
        if not holders:
            return
        # A renewal may take as long as the earliest deadline allows (at least a tick): on an
        # overloaded worker a slow statement that still lands in time keeps every turn alive,
        # and no turn runs past its deadline while it waits.
        earliest = min(held.deadline for held in self._held.values())
        wait_s = max(self.tick_seconds, earliest - time.monotonic())
        try:
            async with asyncio.timeout(wait_s), session_scope(self._sessionmaker) as db:
                renewed = await leases.renew(db, [(c, t) for t, c in holders.items()], self._lease)
        except (SQLAlchemyError, OSError, TimeoutError) as e:
            if not self._failing:
                logger.warning(
                    "Could not renew the leases of %d turns (%s); each stops at its deadline",
                    len(holders),
                    type(e).__name__,
                )
            self._failing = True
            return
        if self._failing:
            logger.info("Lease renewals work again")
        self._failing = False
        for turn_id, thread_id in holders.items():
            held = self._held.get(turn_id)
            if held is None:
                continue  # finished meanwhile
            if thread_id in renewed:
                held.deadline = started + self._lease.total_seconds() - self._margin
            elif held.saving:
                self._held.pop(turn_id, None)  # released by its own save
            else:
                self._lose(turn_id, "another holder took the thread's lease")

    async def _poll_cancel_requests(self) -> None:
        """Stop requests left in PostgreSQL by another worker (one query per tick, or none)."""
        if self._on_cancel_requested is None or not self._held:
            return
        # A renewal may take as long as the earliest deadline allows (at least a tick): on an
        # overloaded worker a slow statement that still lands in time keeps every turn alive,
        # and no turn runs past its deadline while it waits.
        earliest = min(held.deadline for held in self._held.values())
        wait_s = max(self.tick_seconds, earliest - time.monotonic())
        try:
            async with asyncio.timeout(wait_s), session_scope(self._sessionmaker) as db:
                requested = await turn_records.cancel_requested(db, list(self._held))
        except (SQLAlchemyError, OSError, TimeoutError):
            return  # the renewal reports the outage; a stop waits for the next tick
        for turn_id in requested:
            self._on_cancel_requested(turn_id)

    def _stop_overdue(self) -> None:
        now = time.monotonic()
        for turn_id, held in list(self._held.items()):
            if now >= held.deadline:
                self._lose(turn_id, "its lease could not be renewed in time")

    def _lose(self, turn_id: uuid.UUID, why: str) -> None:
        held = self._held.pop(turn_id, None)
        if held is None:
            return
        logger.warning("Stopping turn %s in thread %s: %s", turn_id, held.thread_id, why)
        self._on_lost(turn_id)
