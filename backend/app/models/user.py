"""Users are created on first sight of a token's `sub`; the subject is the external identity."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlmodel import Field, SQLModel

from app.models.base import timestamp_field


class User(SQLModel, table=True):
    __tablename__ = "users"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    subject: str = Field(max_length=255, unique=True, nullable=False)
    created_at: datetime = timestamp_field()
