"""Tasks of the example todo agent and their public schemas; always scoped to one user."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

import sqlalchemy as sa
from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints
from sqlmodel import Field, SQLModel

from app.models.base import timestamp_field
from app.models.text import check_storable


class Task(SQLModel, table=True):
    __tablename__ = "tasks"
    __table_args__ = (sa.Index("ix_tasks_user_created", "user_id", "created_at"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: uuid.UUID = Field(foreign_key="users.id", nullable=False, ondelete="CASCADE")
    title: str = Field(max_length=500, nullable=False)  # MAX_TASK_TITLE_CHARS
    notes: str = Field(default="", sa_type=sa.Text, nullable=False)
    done: bool = Field(default=False, nullable=False)
    created_at: datetime = timestamp_field()
    updated_at: datetime = timestamp_field()


# The column's limit; the agent's tools enforce the same one.
MAX_TASK_TITLE_CHARS = 500
# Notes are free text, but a task panel is no place for a novel.
MAX_TASK_NOTES_CHARS = 10_000

TaskTitle = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_TASK_TITLE_CHARS),
    AfterValidator(check_storable),
]
TaskNotes = Annotated[
    str, StringConstraints(max_length=MAX_TASK_NOTES_CHARS), AfterValidator(check_storable)
]


class TaskCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: TaskTitle
    notes: TaskNotes = ""


class TaskUpdate(BaseModel):
    """A partial update: a field that is omitted (or null) keeps its value."""

    model_config = ConfigDict(extra="forbid")

    title: TaskTitle | None = None
    notes: TaskNotes | None = None
    done: bool | None = None


class TaskPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    title: str
    notes: str
    done: bool
    created_at: datetime
    updated_at: datetime


class TasksPublic(BaseModel):
    data: list[TaskPublic]
    has_more: bool
    after: uuid.UUID | None
