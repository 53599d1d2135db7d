"""A user's fair-use row: the operator's overrides and the per-minute turn window.

One row per user (created by the user's first turn), so the check that admits a turn reads
the user's overrides and counts the turn with one locked upsert: concurrent turns of one user
on any worker or node queue on that row and each sees the others' counts.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from pydantic import BaseModel, Field as PydanticField
from sqlmodel import Field, SQLModel


class UserLimit(SQLModel, table=True):
    __tablename__ = "user_limits"

    user_id: uuid.UUID = Field(
        foreign_key="users.id", primary_key=True, ondelete="CASCADE", nullable=False
    )
    # Overrides of LIMIT_* for this user: None uses the setting, 0 is unlimited.
    turns_per_minute: int | None = Field(default=None)
    running_turns: int | None = Field(default=None)
    daily_tokens: int | None = Field(default=None, sa_type=sa.BigInteger)
    open_streams: int | None = Field(default=None)
    # The current per-minute window: when its first turn started, and how many it holds.
    window_started_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    window_turns: int = Field(default=0, nullable=False, sa_column_kwargs={"server_default": "0"})


class OpenStream(SQLModel, table=True):
    """A stream that follows a turn (a resume) while it is open: it counts against its
    user's LIMIT_OPEN_STREAMS until it closes or, if its worker died, until it expires (the
    worker renews its streams' rows while they are open)."""

    __tablename__ = "open_streams"
    __table_args__ = (sa.Index("ix_open_streams_user_expires", "user_id", "expires_at"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: uuid.UUID = Field(foreign_key="users.id", nullable=False, ondelete="CASCADE")
    expires_at: datetime = Field(sa_type=sa.DateTime(timezone=True), nullable=False)


class LimitsPublic(BaseModel):
    """The limits that apply to a user (0: unlimited), overrides and admin claim included."""

    turns_per_minute: int
    running_turns: int
    daily_tokens: int
    open_streams: int
    exempt: bool = False  # an admin token: nothing is enforced


class UsagePublic(BaseModel):
    """What a user has used: today (UTC) and in the current per-minute window."""

    turns_today: int
    tokens_today: int
    running_turns: int
    open_streams: int
    turns_this_minute: int
    minute_resets_at: datetime | None
    day_resets_at: datetime
    limits: LimitsPublic


class UserLimitsUpdate(BaseModel):
    """A user's overrides: a number replaces the setting (0: unlimited), null restores it."""

    turns_per_minute: int | None = PydanticField(default=None, ge=0, le=100_000)
    running_turns: int | None = PydanticField(default=None, ge=0, le=10_000)
    daily_tokens: int | None = PydanticField(default=None, ge=0)
    open_streams: int | None = PydanticField(default=None, ge=0, le=10_000)
