"""Messages: the durable, rendered log of a thread that the API serves."""

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
from app.models.turn import TurnStatus


class MessageRole(StrEnum):
    USER = "user"
    ASSISTANT = "assistant"


class Message(SQLModel, table=True):
    __tablename__ = "messages"
    __table_args__ = (
        sa.Index("ix_messages_thread_time", "thread_id", "created_at", "id"),
        # ChatKit addresses a message by the item id its client was given (see app.chatkit).
        sa.Index(
            "ix_messages_chatkit_item_id",
            "thread_id",
            sa.text("(chatkit_item ->> 'id')"),
            postgresql_where=sa.text("chatkit_item IS NOT NULL"),
        ),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    thread_id: uuid.UUID = Field(foreign_key="threads.id", nullable=False, ondelete="CASCADE")
    role: str = Field(max_length=16, nullable=False)
    content: str = Field(sa_type=sa.Text, nullable=False)
    # The turn that wrote it (none for messages from before turns were recorded).
    turn_id: uuid.UUID | None = Field(default=None, foreign_key="turns.id", ondelete="SET NULL")
    created_at: datetime = timestamp_field()
    # `metadata` is reserved on declarative classes, so the attribute is `meta`.
    meta: dict[str, Any] = Field(
        default_factory=dict,
        sa_column=sa.Column(
            "metadata", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")
        ),
    )
    # The ChatKit item of a message that came through ChatKit, as its client sent it (tags,
    # quoted text, inference options); None for messages written through REST, which ChatKit
    # renders from role, content and metadata. Never shown by the REST API.
    # (none_as_null: None is SQL NULL, not JSON null, so `IS NULL` finds REST messages.)
    chatkit_item: dict[str, Any] | None = Field(
        default=None, sa_column=sa.Column("chatkit_item", JSONB(none_as_null=True), nullable=True)
    )


class MessagePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True, populate_by_name=True)

    id: uuid.UUID
    thread_id: uuid.UUID
    role: MessageRole
    content: str
    created_at: datetime
    metadata: dict[str, Any] = PydanticField(validation_alias="meta")
    turn_id: uuid.UUID | None = None
    # How the turn went: running, completed, failed or cancelled (None: not recorded).
    turn_status: TurnStatus | None = None


def message_public(message: Message, turn_status: str | None) -> MessagePublic:
    """The public view of a message with its turn's status (read with a join, or known)."""
    public = MessagePublic.model_validate(message)
    public.turn_status = TurnStatus(turn_status) if turn_status else None
    return public


class MessagesPublic(BaseModel):
    data: list[MessagePublic]
    has_more: bool
    after: uuid.UUID | None
