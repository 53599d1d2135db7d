"""Threads and their public schemas.

Besides what users see, a row mirrors facts about the thread's agent memory file
(state, item count, bytes, last prune) so jobs and stats never have to open every file, and
holds the lease of the turn in progress so one turn runs at a time across workers.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict
from sqlmodel import Field, SQLModel

from app.models.base import timestamp_field
from app.models.text import StorableText


class MemoryState(StrEnum):
    """What the thread's SQLite memory file holds."""

    EMPTY = "empty"  # no turn has written memory yet
    ACTIVE = "active"  # the file exists and mirrors the log
    EXPIRED = "expired"  # retention removed the file; the next turn rebuilds it from the log


class Thread(SQLModel, table=True):
    __tablename__ = "threads"
    __table_args__ = (
        sa.Index("ix_threads_user_recency", "user_id", "last_activity_at", "id"),
        sa.Index("ix_threads_memory_activity", "memory_state", "last_activity_at"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: uuid.UUID = Field(foreign_key="users.id", nullable=False, ondelete="CASCADE")
    title: str | None = Field(default=None, max_length=1000)
    created_at: datetime = timestamp_field()
    updated_at: datetime = timestamp_field()
    last_activity_at: datetime = timestamp_field()
    message_count: int = Field(default=0, nullable=False)

    memory_state: str = Field(default=MemoryState.EMPTY, max_length=16, nullable=False)
    memory_item_count: int = Field(default=0, nullable=False)
    memory_bytes: int = Field(default=0, sa_type=sa.BigInteger, nullable=False)
    # The file's newest row id when the last turn was saved: any later write changes it.
    memory_last_item_id: int | None = Field(default=None, sa_type=sa.BigInteger)
    memory_pruned_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    # Saved states of memory so far; the file stamps the same number (see turn_memory).
    memory_generation: int = Field(
        default=0, sa_type=sa.BigInteger, nullable=False, sa_column_kwargs={"server_default": "0"}
    )
    # Log messages that state reflects; later ones are user messages of failed turns.
    memory_message_count: int = Field(
        default=0, nullable=False, sa_column_kwargs={"server_default": "0"}
    )

    # The summary of pruned turns at the head of memory (compaction), kept here so a rebuild
    # from the log reproduces it: its text, when it was made, and how many log messages from
    # the first memory holds only through it (or not at all, after a clear).
    memory_summary: str | None = Field(default=None, sa_type=sa.Text)
    memory_summary_covers: int = Field(
        default=0, nullable=False, sa_column_kwargs={"server_default": "0"}
    )
    memory_summary_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))

    active_turn_id: uuid.UUID | None = Field(default=None)
    active_turn_expires_at: datetime | None = Field(
        default=None, sa_type=sa.DateTime(timezone=True)
    )


class ThreadCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: StorableText | None = None


class ThreadUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: StorableText | None


class ThreadPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    title: str | None
    created_at: datetime
    updated_at: datetime
    last_activity_at: datetime
    message_count: int


class ThreadsPublic(BaseModel):
    data: list[ThreadPublic]
    has_more: bool
    after: uuid.UUID | None
