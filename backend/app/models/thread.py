"""Threads and their public schemas.

Besides what users see, a row mirrors facts about the thread's agent memory file
(state, item count, bytes, last prune) so jobs and stats never have to open every file, and
holds the lease of the turn in progress so one turn runs at a time across workers.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field as PydanticField
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from app.models.base import timestamp_field
from app.models.text import StorableText
from app.models.turn import TurnStatus


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
        sa.Index(
            "ix_threads_active_turn_incarnation",
            "active_turn_incarnation",
            postgresql_where=sa.text("active_turn_incarnation IS NOT NULL"),
        ),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: uuid.UUID = Field(foreign_key="users.id", nullable=False, ondelete="CASCADE")
    title: str | None = Field(default=None, max_length=1000)
    # The AGENTS name of the agent serving this thread, chosen when it was created.
    agent: str = Field(max_length=32, nullable=False)
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
    # The node whose local file holds that state (None: memory is not node-local, or it
    # was saved before nodes were recorded); another node's file for the thread is stale.
    memory_node: str | None = Field(default=None, max_length=255)
    # AGENT_MEMORY_BACKEND=openai_conversations: who holds the memory ("openai") and its id
    # there (`conv_...`), set once, by whichever first turn binds it first.
    provider: str | None = Field(default=None, max_length=32)
    provider_conversation_id: str | None = Field(default=None, max_length=255)

    status: str = Field(
        default="active",
        max_length=16,
        nullable=False,
        sa_column_kwargs={"server_default": "active"},
    )
    meta: dict[str, Any] = Field(
        default_factory=dict,
        sa_column=sa.Column(
            "metadata", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")
        ),
    )
    # The newest turn and how it went (a client that reloads sees a turn still running).
    last_turn_id: uuid.UUID | None = Field(default=None)
    last_turn_status: str | None = Field(default=None, max_length=16)

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
    # The node incarnation of the lease's holder: a restarted node frees its previous
    # incarnation's leases at once instead of waiting for them to expire.
    active_turn_incarnation: uuid.UUID | None = Field(default=None)
    # The lease is a user's turn (not a job's, nor compaction's): it counts against the
    # owner's LIMIT_RUNNING_TURNS while it is live.
    active_turn_counted: bool = Field(
        default=False, nullable=False, sa_column_kwargs={"server_default": sa.false()}
    )


class ThreadStatus(StrEnum):
    ACTIVE = "active"
    ARCHIVED = "archived"


# A small map a client keeps with its thread (ChatKit's thread metadata); bounded in bytes.
ThreadMetadata = dict[str, Any]


class ThreadCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: StorableText | None = None
    metadata: ThreadMetadata | None = None
    # An agent named in AGENTS (GET /api/agents lists them); default: the first.
    agent: str | None = Field(default=None, max_length=32)


class ThreadUpdate(BaseModel):
    """Only the fields sent are changed (`title: null` clears the title)."""

    model_config = ConfigDict(extra="forbid")

    title: StorableText | None = None
    status: ThreadStatus | None = None
    metadata: ThreadMetadata | None = None


class ThreadPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    title: str | None
    agent: str
    status: ThreadStatus
    metadata: dict[str, Any] = PydanticField(validation_alias="meta")
    created_at: datetime
    updated_at: datetime
    last_activity_at: datetime
    message_count: int
    last_turn_id: uuid.UUID | None
    last_turn_status: TurnStatus | None


class ThreadsPublic(BaseModel):
    data: list[ThreadPublic]
    has_more: bool
    after: uuid.UUID | None
