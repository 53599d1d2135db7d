"""ChatKit items that are not messages of the log: widgets, workflows, client tool calls,
hidden context, end of turn, ... stored whole, as the ChatKit client or server made them.

They live beside `messages`, not in it: the log's messages (their count and order) are what
the agent's memory is reconciled against, and these items are not part of the agent's
memory. The REST API does not show them; ChatKit lists them among the thread's messages.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from app.models.base import timestamp_field

MAX_CHATKIT_ITEM_ID_CHARS = 200


class ChatKitItem(SQLModel, table=True):
    __tablename__ = "chatkit_items"
    __table_args__ = (
        sa.UniqueConstraint("thread_id", "item_id"),
        sa.Index("ix_chatkit_items_thread_time", "thread_id", "created_at", "id"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    thread_id: uuid.UUID = Field(foreign_key="threads.id", nullable=False, ondelete="CASCADE")
    item_id: str = Field(max_length=MAX_CHATKIT_ITEM_ID_CHARS, nullable=False)
    item_type: str = Field(max_length=32, nullable=False)
    # When it was stored: its place among the thread's messages (the item keeps its own).
    created_at: datetime = timestamp_field()
    item: dict[str, Any] = Field(sa_type=JSONB, nullable=False)
