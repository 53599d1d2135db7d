"""Full-text search: the vectors PostgreSQL keeps for titles and messages, and their config.

`threads.search_vector` and `messages.search_vector` are `tsvector` columns that a trigger
fills on every insert (and on every change of the title or the content) with
`to_tsvector(<search_config.config>, text)`. They are columns of the tables, so Alembic and
the migration test see them, but no ORM attribute maps them: inserts never send them (the
trigger writes them) and reading a message never fetches them.

Why a trigger rather than a generated column: a generated column needs its configuration
fixed in its DDL, so changing `SEARCH_TEXT_CONFIG` (or adding the column to a table of two
million messages) would rewrite the whole table under an exclusive lock. With the trigger the
configuration lives in one row (`search_config`), and a rebuild re-computes vectors in short
batches while the service runs (`python -m app search reindex`).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal, cast

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.dialects.postgresql import TSVECTOR
from sqlmodel import Field, SQLModel

from app.models.base import timestamp_field
from app.models.message import Message, MessageRole
from app.models.thread import Thread

DEFAULT_TEXT_CONFIG = "simple"


class SearchConfig(SQLModel, table=True):
    """The one row that says which text-search configuration the vectors are built with."""

    __tablename__ = "search_config"
    __table_args__ = (sa.CheckConstraint("id = 1", name="single_row"),)

    id: int = Field(default=1, primary_key=True)
    # A PostgreSQL text search configuration name (`simple`, `english`, ...).
    config: str = Field(max_length=63, nullable=False)
    # True while vectors are being (re)built: rows written before may use another config.
    building: bool = Field(default=False, nullable=False)
    updated_at: datetime = timestamp_field()


def _add_vector(table: sa.Table, index_name: str) -> sa.Column[object]:
    column: sa.Column[object] = sa.Column("search_vector", TSVECTOR, nullable=True)
    table.append_column(column)
    # Partial: a row whose vector is not built yet costs the index nothing. A query's
    # `search_vector @@ q` implies `IS NOT NULL`, so the planner still uses it.
    sa.Index(
        index_name,
        column,
        postgresql_using="gin",
        postgresql_where=column.isnot(None),
    )
    return column


THREAD_VECTOR = _add_vector(cast(sa.Table, Thread.__table__), "ix_threads_search")  # type: ignore[attr-defined]  # set by SQLModel at class creation
MESSAGE_VECTOR = _add_vector(cast(sa.Table, Message.__table__), "ix_messages_search")  # type: ignore[attr-defined]  # set by SQLModel at class creation


# The longest query accepted: search terms, not documents (longer is a 422 naming it).
MAX_SEARCH_QUERY_CHARS = 200


class SearchHit(BaseModel):
    """One match: a message, or a thread whose title matched."""

    kind: Literal["message", "thread"]
    thread_id: uuid.UUID
    thread_title: str | None
    message_id: uuid.UUID | None  # None for a title match
    role: MessageRole | None  # None for a title match
    created_at: datetime
    rank: float
    snippet: str  # plain text around the matches (never HTML)
    # [start, end) of each highlighted match in `snippet`, counted in Unicode code points.
    highlights: list[tuple[int, int]]


class SearchResults(BaseModel):
    data: list[SearchHit]
    has_more: bool
    # Opaque: pass it back as `after` (with the same `q`) for the next page.
    after: str | None
