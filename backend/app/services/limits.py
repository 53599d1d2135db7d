"""Fair use: per-user limits on turns per minute, running turns and daily model tokens.

The counters live in PostgreSQL, so every worker and node enforces one limit. A user's turn
is admitted in the transaction that claims its thread's lease (`claim_turn`), in two
statements and no further round trip on the way:

1. an upsert of the user's `user_limits` row counts the turn in the per-minute window and
   returns the user's overrides and the tokens their turns recorded today. The row lock it
   takes queues concurrent turns of one user (any node) behind each other;
2. the lease claim itself, with "fewer than N of this user's turns hold a live lease" in its
   WHERE. It runs after the lock, with a fresh snapshot, so it sees every turn admitted
   before it; a crashed worker's turns stop counting when their leases expire.

A refusal raises inside the transaction, which rolls it back: a refused turn writes nothing
(no window count, no lease, no message, no memory).

Token usage is what finished turns recorded on their rows (`turns.input_tokens +
output_tokens`), summed over the UTC day of their start; a turn is refused once that sum
reaches the budget (running turns' usage is known when they end).
"""

from __future__ import annotations

import asyncio
import math
import uuid
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.config import Settings
from app.db import SessionMaker, session_scope
from app.errors import LimitExceededError, NotFoundError
from app.metrics import LIMIT_REFUSALS
from app.models import (
    LimitsPublic,
    OpenStream,
    Thread,
    Turn,
    UsagePublic,
    User,
    UserLimit,
    UserLimitsUpdate,
)
from app.services import leases

WINDOW = timedelta(minutes=1)
DAY = timedelta(days=1)
# How soon to retry after the running-turns limit (it resets when a turn ends, not at a time).
RUNNING_RETRY_AFTER_SECONDS = 5

# The current time, or None for the database's clock (production: nodes with skewed clocks
# agree, as for leases). Tests inject a clock to cross windows without sleeping.
Clock = Callable[[], datetime | None]


def database_clock() -> datetime | None:
    return None


def sql_now(clock: Clock) -> sa.ColumnElement[datetime]:
    """The clock's time as SQL: the database's `now()` unless a clock says otherwise."""
    now = clock()
    if now is None:
        return sa.func.now()
    return sa.cast(sa.literal(now), sa.DateTime(timezone=True))


@dataclass(frozen=True)
class Limits:
    """The limits of one user (0: unlimited)."""

    turns_per_minute: int
    running_turns: int
    daily_tokens: int

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            turns_per_minute=settings.LIMIT_TURNS_PER_MINUTE,
            running_turns=settings.LIMIT_RUNNING_TURNS,
            daily_tokens=settings.LIMIT_DAILY_TOKENS,
        )

    def overridden(self, row: Any) -> Limits:
        """These limits with a user's overrides (a `user_limits` row or None) applied."""
        if row is None:
            return self
        return Limits(
            turns_per_minute=_pick(row.turns_per_minute, self.turns_per_minute),
            running_turns=_pick(row.running_turns, self.running_turns),
            daily_tokens=_pick(row.daily_tokens, self.daily_tokens),
        )

    @property
    def unlimited(self) -> bool:
        return not (self.turns_per_minute or self.running_turns or self.daily_tokens)


def _pick(override: int | None, default: int) -> int:
    return default if override is None else override


class TurnLimiter:
    """Admits a user's turns under the LIMIT_* settings and their overrides."""

    def __init__(self, settings: Settings, clock: Clock = database_clock) -> None:
        self.defaults = Limits.from_settings(settings)
        self.open_streams = settings.LIMIT_OPEN_STREAMS  # enforced by `StreamSlots`
        self.clock = clock
        # One user's turns queue here, per process, before taking a pooled connection: a
        # burst of one user's sends would otherwise hold the pool while waiting on their row
        # lock in PostgreSQL, and starve everyone else on the worker.
        self._queues: weakref.WeakValueDictionary[uuid.UUID, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

    async def claim_turn(
        self,
        sessionmaker: SessionMaker,
        *,
        user_id: uuid.UUID,
        thread_id: uuid.UUID,
        holder: uuid.UUID,
        lease: timedelta,
        incarnation: uuid.UUID | None = None,
        exempt: bool = False,
    ) -> Thread:
        """Admit a turn and claim its thread's lease, in one transaction committed at once.

        Args:
            exempt: the caller has the admin claim: nothing is checked nor counted.

        Raises:
            LimitExceededError: over a limit (nothing was written).
            NotFoundError, ConflictError: as `leases.claim`.
        """
        claim = leases.Claim(
            user_id=user_id,
            thread_id=thread_id,
            holder=holder,
            lease=lease,
            incarnation=incarnation,
            counted=True,
        )
        if exempt or self.defaults.unlimited:
            async with session_scope(sessionmaker) as db:
                return await leases.claim_in(db, claim)
        queue = self._queues.get(user_id)
        if queue is None:
            queue = self._queues[user_id] = asyncio.Lock()
        async with queue, session_scope(sessionmaker) as db:
            running = await self._count_turn(db, user_id)
            if not running:
                return await leases.claim_in(db, claim)
            admit = (_running_below(user_id, running), lambda: _running_refused(running))
            return await leases.claim_in(db, claim, admit=admit)

    async def _count_turn(self, db: AsyncSession, user_id: uuid.UUID) -> int:
        """Count a turn in the user's window (locking their row) and check the window and
        the day's tokens; returns the user's running-turns limit."""
        # Built once, run on the connection (Core): building it per turn and the ORM's
        # bulk-insert path cost more CPU than PostgreSQL spends on it (W14).
        connection = await db.connection()
        params = {"user_id": user_id, "now": self.clock()}
        row = (await connection.execute(_COUNT_TURN, params)).one()
        limits = self.defaults.overridden(row)
        if limits.turns_per_minute and row.window_turns > limits.turns_per_minute:
            raise _refused(
                "turns_per_minute",
                limits.turns_per_minute,
                f"You may start {limits.turns_per_minute} turns per minute",
                resets_at=row.window_started_at + WINDOW,
                now=row.now,
            )
        if limits.daily_tokens and row.tokens_today >= limits.daily_tokens:
            raise _refused(
                "daily_tokens",
                limits.daily_tokens,
                f"You have used your {limits.daily_tokens} model tokens for today (UTC)",
                resets_at=_next_day(row.now),
                now=row.now,
            )
        return limits.running_turns

    async def usage(self, db: AsyncSession, user_id: uuid.UUID, *, exempt: bool) -> UsagePublic:
        """What the user used today and in the current window, and the limits that apply."""
        now = self._now()
        day = _day_start(now)
        turns_today = (
            sa.select(sa.func.count())
            .where(col(Turn.user_id) == user_id, col(Turn.started_at) >= day)
            .scalar_subquery()
        )
        statement = sa.select(
            turns_today.label("turns_today"),
            _tokens_since(user_id, day).label("tokens_today"),
            _running_count(user_id).label("running"),
            _open_streams(user_id, now).label("streams"),
            now.label("now"),
        )
        # Five columns: past what sqlmodel's `exec` types; the connection runs it as it is.
        connection = await db.connection()
        turns_count, tokens, running, streams, now_value = (
            await connection.execute(statement)
        ).one()
        overrides = await db.get(UserLimit, user_id)
        limits = self.defaults.overridden(overrides)
        window_open = (
            overrides is not None
            and overrides.window_started_at is not None
            and overrides.window_started_at > now_value - WINDOW
        )
        return UsagePublic(
            turns_today=turns_count,
            tokens_today=tokens,
            running_turns=running,
            open_streams=streams,
            turns_this_minute=overrides.window_turns if window_open and overrides else 0,
            minute_resets_at=(
                overrides.window_started_at + WINDOW
                if window_open and overrides and overrides.window_started_at
                else None
            ),
            day_resets_at=_next_day(now_value),
            limits=LimitsPublic(
                turns_per_minute=limits.turns_per_minute,
                running_turns=limits.running_turns,
                daily_tokens=limits.daily_tokens,
                open_streams=_pick(
                    overrides.open_streams if overrides else None, self.open_streams
                ),
                exempt=exempt,
            ),
        )

    def _now(self) -> sa.ColumnElement[datetime]:
        return sql_now(self.clock)


def _count_turn_statement() -> sa.Insert:
    """Upsert the user's row: count a turn in the window (a new one if it ended); return the
    overrides, the window, today's recorded tokens and the time it used. Parameters:
    `user_id`, and `now` (None: the database's clock)."""
    user_id = sa.bindparam("user_id", type_=sa.Uuid())
    now = sa.func.coalesce(sa.bindparam("now", type_=sa.DateTime(timezone=True)), sa.func.now())
    fresh = sa.or_(
        col(UserLimit.window_started_at).is_(None),
        col(UserLimit.window_started_at) <= now - WINDOW,
    )
    return (
        pg_insert(UserLimit)
        .values(user_id=user_id, window_started_at=now, window_turns=1)
        .on_conflict_do_update(
            index_elements=[col(UserLimit.user_id)],
            set_={
                "window_started_at": sa.case((fresh, now), else_=col(UserLimit.window_started_at)),
                "window_turns": sa.case((fresh, 1), else_=col(UserLimit.window_turns) + 1),
            },
        )
        .returning(
            col(UserLimit.turns_per_minute),
            col(UserLimit.running_turns),
            col(UserLimit.daily_tokens),
            col(UserLimit.window_started_at),
            col(UserLimit.window_turns),
            _tokens_since(user_id, _day_start(now)).label("tokens_today"),
            now.label("now"),
        )
    )


async def set_overrides(db: AsyncSession, user_id: uuid.UUID, update: UserLimitsUpdate) -> None:
    """Replace a user's overrides (None restores a setting), keeping their window."""
    values = update.model_dump()
    await db.exec(
        pg_insert(UserLimit)
        .values(user_id=user_id, **values)
        .on_conflict_do_update(index_elements=[col(UserLimit.user_id)], set_=values)
    )


async def user_id_for(db: AsyncSession, subject: str) -> uuid.UUID:
    """The id of the user with token subject `subject`.

    Raises:
        NotFoundError: no such user.
    """
    user_id = (await db.exec(select(User.id).where(User.subject == subject))).first()
    if user_id is None:
        raise NotFoundError(f"No user with subject {subject!r}")
    return user_id


def _running_count(user_id: uuid.UUID) -> sa.ScalarSelect[int]:
    """How many of the user's turns hold a live lease (an expired one no longer counts)."""
    return (
        sa.select(sa.func.count())
        .where(
            col(Thread.user_id) == user_id,
            col(Thread.active_turn_counted),
            col(Thread.active_turn_expires_at) > sa.func.now(),
        )
        .scalar_subquery()
    )


def _open_streams(user_id: uuid.UUID, now: sa.ColumnElement[datetime]) -> sa.ScalarSelect[int]:
    """How many of the user's stream slots are live (see `stream_slots`)."""
    return (
        sa.select(sa.func.count())
        .where(col(OpenStream.user_id) == user_id, col(OpenStream.expires_at) > now)
        .scalar_subquery()
    )


def _running_below(user_id: uuid.UUID, limit: int) -> sa.ColumnElement[bool]:
    return _running_count(user_id) < limit


def _running_refused(limit: int) -> LimitExceededError:
    LIMIT_REFUSALS.labels("running_turns").inc()
    return LimitExceededError(
        f"You may have {limit} turns running at once; retry when one of them ends",
        limit="running_turns",
        value=limit,
        resets_at=None,
        retry_after_seconds=RUNNING_RETRY_AFTER_SECONDS,
    )


def _refused(
    limit: str, value: int, what: str, *, resets_at: datetime, now: datetime
) -> LimitExceededError:
    LIMIT_REFUSALS.labels(limit).inc()
    return LimitExceededError(
        f"{what}; the limit resets at {resets_at.astimezone(UTC).isoformat()}",
        limit=limit,
        value=value,
        resets_at=resets_at,
        retry_after_seconds=math.ceil((resets_at - now).total_seconds()),
    )


def _tokens_since(
    user_id: uuid.UUID | sa.ColumnElement[uuid.UUID], since: sa.ColumnElement[datetime]
) -> sa.ScalarSelect[int]:
    return (
        sa.select(sa.func.coalesce(sa.func.sum(Turn.input_tokens + Turn.output_tokens), 0))
        .where(col(Turn.user_id) == user_id, col(Turn.started_at) >= since)
        .scalar_subquery()
    )


def _day_start(now: sa.ColumnElement[datetime]) -> sa.ColumnElement[datetime]:
    """Midnight UTC of `now`'s day, as a timestamptz (whatever the session's time zone)."""
    return sa.func.timezone("UTC", sa.func.date_trunc("day", sa.func.timezone("UTC", now)))


def _next_day(now: datetime) -> datetime:
    start = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return start + DAY


_COUNT_TURN = _count_turn_statement()
