"""Shared pieces of every table: a constraint naming convention and UTC timestamps."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

# Stable constraint names make Alembic migrations reproducible across databases.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utc_now() -> datetime:
    """The current time, timezone-aware, so it compares with `timestamptz` columns."""
    return datetime.now(UTC)


def timestamp_field(**kwargs: object) -> datetime:
    """A non-null `timestamptz` column defaulting to now."""
    return Field(  # type: ignore[no-any-return]  # Field() is typed as Any by SQLModel
        default_factory=utc_now,
        sa_type=sa.DateTime(timezone=True),  # type: ignore[call-overload]  # SQLModel lacks a precise overload for sa_type
        nullable=False,
        **kwargs,
    )
