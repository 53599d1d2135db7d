"""The export document: what a user saw (the PostgreSQL log), in a versioned JSON schema.

`format` and `version` open every document; the version changes only when a field changes
meaning or goes away (adding a field keeps it). These models are the schema: the account
export streams exactly this shape, and the OpenAPI docs show it. The agent's memory files are
not exported: they are a working copy derived from this log.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from app.models.message import MessageRole

EXPORT_FORMAT: Literal["threadkeeper.export"] = "threadkeeper.export"
EXPORT_VERSION: Literal[1] = 1


class ExportToolCall(BaseModel):
    """A tool the agent called while writing a reply, with what it returned."""

    call_id: str
    name: str
    arguments: str  # JSON text, as the model wrote it
    output: str | None = None


class ExportMessage(BaseModel):
    id: uuid.UUID
    role: MessageRole
    content: str
    created_at: datetime
    tool_calls: list[ExportToolCall] = Field(default_factory=list)
    # The rest of the message's metadata as the API serves it (turn_id, usage, model, ...).
    metadata: dict[str, Any] = Field(default_factory=dict)


class ExportThread(BaseModel):
    id: uuid.UUID
    title: str | None
    created_at: datetime
    updated_at: datetime
    last_activity_at: datetime
    message_count: int
    status: str  # active or archived
    agent: str  # the AGENTS name of the agent that served it
    metadata: dict[str, Any] = Field(default_factory=dict)  # the client's own keys
    messages: list[ExportMessage]  # oldest first


class ExportTask(BaseModel):
    id: uuid.UUID
    title: str
    notes: str
    done: bool
    created_at: datetime
    updated_at: datetime


class ExportUser(BaseModel):
    subject: str
    created_at: datetime | None


class ExportDocument(BaseModel):
    """One thread (`scope: thread`, no tasks) or a whole account (`scope: account`)."""

    format: Literal["threadkeeper.export"] = EXPORT_FORMAT
    version: Literal[1] = EXPORT_VERSION
    scope: Literal["thread", "account"]
    exported_at: datetime
    user: ExportUser
    threads: list[ExportThread]  # by creation, oldest first
    tasks: list[ExportTask]  # the account's tasks, oldest first; empty for a thread
