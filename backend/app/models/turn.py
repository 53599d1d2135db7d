"""Turns: one user message in, one run of the agent, and how it ended.

A row per turn makes its outcome visible after the fact (a client that reloads tells a failed
turn from one still running), carries what the turn cost (tokens, for accounting and limits),
and is where a request to stop a turn running on another worker is left for it.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.models.base import timestamp_field


class TurnStatus(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"  # the error code says why; completed tool calls were kept
    CANCELLED = "cancelled"  # stopped by the user; the partial reply was kept


class Turn(SQLModel, table=True):
    __tablename__ = "turns"
    __table_args__ = (
        sa.Index("ix_turns_thread_started", "thread_id", "started_at"),
        sa.Index("ix_turns_user_started", "user_id", "started_at"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    thread_id: uuid.UUID = Field(foreign_key="threads.id", nullable=False, ondelete="CASCADE")
    user_id: uuid.UUID = Field(foreign_key="users.id", nullable=False, ondelete="CASCADE")
    status: str = Field(default=TurnStatus.RUNNING, max_length=16, nullable=False)
    error_code: str | None = Field(default=None, max_length=32)
    started_at: datetime = timestamp_field()
    finished_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    input_tokens: int = Field(default=0, sa_type=sa.BigInteger, nullable=False)
    output_tokens: int = Field(default=0, sa_type=sa.BigInteger, nullable=False)
    # Set by a stop request that reached another worker; the running worker polls it.
    cancel_requested_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
