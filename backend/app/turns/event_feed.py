"""Wakes the followers of turns run elsewhere when their new events are in PostgreSQL.

One LISTEN connection per worker, on DATABASE_LISTEN_URL (default DATABASE_URL): LISTEN needs
a session of its own, which transaction-mode poolers (PgBouncer, Neon's pooled endpoint) do
not keep, so there the direct URL is needed. On connecting, the feed checks that a
notification sent through the app's own pool arrives; when it does not (a pooler that
accepts LISTEN but never delivers) or the connection fails, the feed says so in the log and
followers poll every TURN_EVENTS_POLL_MS instead, while the feed keeps trying to listen.
With LISTEN working, followers still look every `SAFETY_POLL_SECONDS`, in case a
notification was lost while the connection was being re-established.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from app.db import SessionMaker, libpq_url, redact_url, session_scope
from app.services.turn_events import CHANNEL

logger = logging.getLogger(__name__)

SAFETY_POLL_SECONDS = 2.0
PROBE_TIMEOUT_SECONDS = 3.0
RECONNECT_SECONDS = (1.0, 30.0)  # first and longest pause between attempts
CONNECT_TIMEOUT_SECONDS = 5


class EventFeed:
    """Per-turn wake-ups from LISTEN, or a polling interval when LISTEN is unavailable."""

    def __init__(
        self, sessionmaker: SessionMaker, listen_url: str | None, *, poll_s: float
    ) -> None:
        self._sessionmaker = sessionmaker
        self._url = listen_url
        self._poll_s = poll_s
        self._subscribers: dict[uuid.UUID, set[asyncio.Event]] = {}
        self._task: asyncio.Task[None] | None = None
        self.listening = False
        self._ready = asyncio.Event()  # set once the first attempt to listen has finished
        self._subscribed = asyncio.Event()  # set at every new subscription (tests wait on it)

    @property
    def wait_s(self) -> float:
        """How long a follower waits for a wake-up before it looks anyway."""
        return SAFETY_POLL_SECONDS if self.listening else self._poll_s

    def start(self) -> None:
        if self._url is None:
            self._ready.set()  # nowhere to listen: followers poll
        elif self._task is None:
            self._task = asyncio.create_task(self._run(), name="turn-event-feed")

    async def wait_ready(self) -> None:
        """Until the first attempt to listen has succeeded or failed (tests)."""
        await self._ready.wait()

    async def wait_followed(self, turn_id: uuid.UUID) -> None:
        """Until a stream on this worker follows `turn_id` (tests)."""
        while turn_id not in self._subscribers:
            self._subscribed.clear()
            await self._subscribed.wait()

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.listening = False

    @contextmanager
    def subscribe(self, turn_id: uuid.UUID) -> Iterator[asyncio.Event]:
        """An event set whenever new events of `turn_id` may be in PostgreSQL."""
        event = asyncio.Event()
        self._subscribers.setdefault(turn_id, set()).add(event)
        self._subscribed.set()
        try:
            yield event
        finally:
            waiting = self._subscribers.get(turn_id)
            if waiting is not None:
                waiting.discard(event)
                if not waiting:
                    del self._subscribers[turn_id]

    async def _run(self) -> None:
        url = self._url
        assert url is not None
        pause, warned = RECONNECT_SECONDS[0], False
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    libpq_url(url), autocommit=True, connect_timeout=CONNECT_TIMEOUT_SECONDS
                ) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    if await self._probe(conn):
                        pause = RECONNECT_SECONDS[0]
                        await self._listen(conn, url)  # returns only when the connection fails
                    elif not warned:
                        warned = True
                        logger.warning(
                            "LISTEN on %s receives no notifications (a transaction-mode "
                            "pooler?): streams resumed on another node poll every %d ms; set "
                            "DATABASE_LISTEN_URL to a direct (session-mode) URL",
                            redact_url(url),
                            round(self._poll_s * 1000),
                        )
            except (psycopg.Error, OSError) as e:
                if not warned:
                    warned = True
                    logger.warning(
                        "Cannot LISTEN on %s (%s): streams resumed on another node poll every "
                        "%d ms until it works",
                        redact_url(url),
                        type(e).__name__,
                        round(self._poll_s * 1000),
                    )
            self._set_listening(False)
            self._ready.set()
            await asyncio.sleep(pause)
            pause = min(pause * 2, RECONNECT_SECONDS[1])

    async def _probe(self, conn: psycopg.AsyncConnection[tuple[object, ...]]) -> bool:
        """Send a notification through the app's pool and wait for it on `conn`."""
        token = f"probe:{uuid.uuid4().hex}"
        try:
            async with session_scope(self._sessionmaker) as db:
                await (await db.connection()).execute(
                    sa.text("SELECT pg_notify(:c, :p)"), {"c": CHANNEL, "p": token}
                )
        except (SQLAlchemyError, OSError):
            return False
        async for notify in conn.notifies(timeout=PROBE_TIMEOUT_SECONDS):
            if notify.payload == token:
                return True
            self._dispatch(notify.payload)
        return False

    async def _listen(self, conn: psycopg.AsyncConnection[tuple[object, ...]], url: str) -> None:
        self._set_listening(True)
        self._ready.set()
        logger.info("Listening for turn events on %s", redact_url(url))
        try:
            async for notify in conn.notifies():
                self._dispatch(notify.payload)
        except (psycopg.Error, OSError) as e:
            logger.warning("The LISTEN connection failed (%s); reconnecting", type(e).__name__)

    def _dispatch(self, payload: str) -> None:
        turn, _, _ = payload.partition(":")
        try:
            turn_id = uuid.UUID(turn)
        except ValueError:
            return  # a probe, or not ours
        for event in self._subscribers.get(turn_id, ()):
            event.set()

    def _set_listening(self, listening: bool) -> None:
        if self.listening != listening:
            self.listening = listening
            for waiting in self._subscribers.values():  # look now: something may be missed
                for event in waiting:
                    event.set()
