"""Tasks of the example todo agent; always scoped to one user."""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.models.base import timestamp_field


class Task(SQLModel, table=True):
    __tablename__ = "tasks"
    __table_args__ = (sa.Index("ix_tasks_user_created", "user_id", "created_at"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: uuid.UUID = Field(foreign_key="users.id", nullable=False, ondelete="CASCADE")
    title: str = Field(max_length=500, nullable=False)
    notes: str = Field(default="", sa_type=sa.Text, nullable=False)
    done: bool = Field(default=False, nullable=False)
    created_at: datetime = timestamp_field()
    updated_at: datetime = timestamp_field()
