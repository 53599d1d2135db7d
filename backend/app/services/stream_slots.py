"""Open streams per user (LIMIT_OPEN_STREAMS), counted in PostgreSQL across workers and nodes.

Counted here are the streams that follow a turn without starting one (a resume:
`GET .../turns/{id}/events`), which a client can open any number of times per turn. A stream
that starts a turn (a send, a retry, ChatKit's) lives as long as its turn and is already
bounded by LIMIT_RUNNING_TURNS.

Each counted stream holds a row in `open_streams` that expires STREAM_SLOT after it was last
renewed; this process renews the rows of all its open streams in one statement every
RENEW_EVERY_SECONDS and deletes a row when its stream ends. So a worker or node that dies
(kill -9, OOM) stops counting within STREAM_SLOT, with no cleanup step and no dependence on
the node ever coming back. Opening takes the user's `user_limits` row lock first, so
concurrent opens anywhere see each other's rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlmodel import col

from app.config import Settings
from app.db import SessionMaker, session_scope
from app.errors import LimitExceededError
from app.metrics import LIMIT_REFUSALS
from app.models import OpenStream, UserLimit
from app.services.limits import Clock, database_clock, sql_now

logger = logging.getLogger(__name__)

STREAM_SLOT = timedelta(seconds=60)
RENEW_EVERY_SECONDS = 20.0
RETRY_AFTER_SECONDS = 5


class StreamSlots:
    """This process's open counted streams: admitted, renewed while open, released."""

    def __init__(
        self, sessionmaker: SessionMaker, settings: Settings, clock: Clock = database_clock
    ) -> None:
        """`clock`: as `TurnLimiter`'s (tests move it past a dead worker's slots' expiry)."""
        self._sessionmaker = sessionmaker
        self._limit = settings.LIMIT_OPEN_STREAMS
        self.clock = clock
        self._held: set[uuid.UUID] = set()
        self._releases: set[asyncio.Task[None]] = set()
        self._renewer: asyncio.Task[None] | None = None

    async def acquire(self, user_id: uuid.UUID, *, exempt: bool) -> uuid.UUID | None:
        """A slot for one more open stream of the user (None: nothing is counted).

        Raises:
            LimitExceededError: the user has as many open streams as allowed.
        """
        if exempt or not self._limit:
            return None
        slot, now = uuid.uuid4(), sql_now(self.clock)
        async with session_scope(self._sessionmaker) as db:
            override = (
                await db.exec(
                    pg_insert(UserLimit)
                    .values(user_id=user_id)
                    .on_conflict_do_update(
                        index_elements=[col(UserLimit.user_id)],
                        set_={"user_id": pg_insert(UserLimit).excluded.user_id},
                    )
                    .returning(col(UserLimit.open_streams))
                )
            ).scalar_one()
            limit = self._limit if override is None else override
            if not limit:
                return None
            live = (
                sa.select(sa.func.count())
                .where(
                    col(OpenStream.user_id) == user_id,
                    col(OpenStream.expires_at) > now,
                )
                .scalar_subquery()
            )
            admitted = await db.exec(
                pg_insert(OpenStream)
                .from_select(
                    ["id", "user_id", "expires_at"],
                    sa.select(
                        sa.literal(slot, sa.Uuid()),
                        sa.literal(user_id, sa.Uuid()),
                        now + STREAM_SLOT,
                    ).where(live < limit),
                )
                .returning(col(OpenStream.id))
            )
            if admitted.first() is None:
                raise _refused(limit)
        return slot

    @contextlib.asynccontextmanager
    async def holding(self, slot: uuid.UUID | None) -> AsyncIterator[None]:
        """Hold `slot` while the stream runs: renewed until the block ends, then released.

        Entered by the stream's generator once it runs, so a response that never started
        holds its slot only until it expires.
        """
        if slot is None:
            yield
            return
        self._held.add(slot)
        try:
            yield
        finally:
            self._held.discard(slot)
            # A stream that ends waits for its slot to be free (a client's next stream
            # counts right); a cancelled one does not, and the release completes anyway.
            release = self.release(slot)
            if release is not None:
                await asyncio.shield(release)

    def release(self, slot: uuid.UUID | None) -> asyncio.Task[None] | None:
        """Give a slot back, in a task of its own (which survives the caller's cancellation)."""
        if slot is None:
            return None
        task = asyncio.get_running_loop().create_task(self._delete(slot))
        self._releases.add(task)
        task.add_done_callback(self._releases.discard)
        return task

    def start(self) -> None:
        """Start renewing the slots of this process's open streams."""
        if self._limit and self._renewer is None:
            self._renewer = asyncio.get_running_loop().create_task(
                self._renew_forever(), name="stream-slots-renewer"
            )

    async def aclose(self) -> None:
        """Stop renewing and finish the releases under way (open slots then expire)."""
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
            self._renewer = None
        if self._releases:
            await asyncio.gather(*self._releases, return_exceptions=True)

    async def _renew_forever(self) -> None:
        """Every RENEW_EVERY_SECONDS: extend this process's open slots, drop long-expired ones."""
        while True:
            await asyncio.sleep(RENEW_EVERY_SECONDS)
            held = list(self._held)
            try:
                async with session_scope(self._sessionmaker) as db:
                    if held:
                        await db.exec(
                            sa.update(OpenStream)
                            .where(col(OpenStream.id).in_(held))
                            .values(expires_at=sa.func.now() + STREAM_SLOT)
                        )
                    # What dead workers left: no longer counted, now gone (a tiny table).
                    await db.exec(
                        sa.delete(OpenStream).where(
                            col(OpenStream.expires_at) < sa.func.now() - STREAM_SLOT
                        )
                    )
            except Exception:  # the next round retries; slots expire only after 3 misses
                logger.exception("Renewing %d open stream slots failed", len(held))

    async def _delete(self, slot: uuid.UUID) -> None:
        try:
            async with session_scope(self._sessionmaker) as db:
                await db.exec(sa.delete(OpenStream).where(col(OpenStream.id) == slot))
        except Exception:  # it expires on its own
            logger.warning("Releasing an open stream slot failed; it expires in %s", STREAM_SLOT)


def _refused(limit: int) -> LimitExceededError:
    LIMIT_REFUSALS.labels("open_streams").inc()
    return LimitExceededError(
        f"You may have {limit} streams open at once; close one and retry",
        limit="open_streams",
        value=limit,
        resets_at=None,
        retry_after_seconds=RETRY_AFTER_SECONDS,
    )
