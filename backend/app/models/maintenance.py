"""The outcome of every maintenance job run, for operators and alerting."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from app.models.base import timestamp_field


class RunStatus(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"  # another scheduler held the job's lock


class MaintenanceRun(SQLModel, table=True):
    __tablename__ = "maintenance_runs"
    __table_args__ = (sa.Index("ix_maintenance_runs_job_started", "job", "started_at"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    job: str = Field(max_length=64, nullable=False)
    trigger: str = Field(default="scheduler", max_length=16, nullable=False)
    status: str = Field(default=RunStatus.RUNNING, max_length=16, nullable=False)
    started_at: datetime = timestamp_field()
    finished_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    counts: dict[str, Any] = Field(
        default_factory=dict,
        sa_column=sa.Column(JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    )
    error: str | None = Field(default=None, sa_type=sa.Text)
    node: str | None = Field(default=None, max_length=255)  # the node that ran it


class MaintenanceRunPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    job: str
    trigger: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    counts: dict[str, Any]
    error: str | None
    node: str | None = None


class MaintenanceRunsPublic(BaseModel):
    data: list[MaintenanceRunPublic]
