"""Nodes and the events of turns: what lets several nodes share one PostgreSQL.

A *node* is the set of server processes that share one DATA_DIR (one host or pod); each start
of a node is an *incarnation*. Leases record the incarnation of their holder, so a node that
comes back after a crash frees what its previous incarnation held.

A turn's stream events are kept in batches (`TurnEventBatch`), so a client can resume a stream
on any node or worker; see `app.turns.event_store`.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.models.base import timestamp_field


class NodeIncarnation(SQLModel, table=True):
    __tablename__ = "node_incarnations"
    __table_args__ = (sa.Index("ix_node_incarnations_node", "node_id", "started_at"),)

    id: uuid.UUID = Field(primary_key=True)
    node_id: str = Field(max_length=255, nullable=False)
    started_at: datetime = timestamp_field()


class TurnEventBatch(SQLModel, table=True):
    """Consecutive events of one turn (ids `first_id`..`last_id`), encoded as one JSON text."""

    __tablename__ = "turn_events"
    __table_args__ = (sa.Index("ix_turn_events_created", "created_at"),)

    turn_id: uuid.UUID = Field(
        foreign_key="turns.id", primary_key=True, nullable=False, ondelete="CASCADE"
    )
    first_id: int = Field(primary_key=True)
    last_id: int = Field(nullable=False)
    events: str = Field(sa_type=sa.Text, nullable=False)
    created_at: datetime = timestamp_field(sa_column_kwargs={"server_default": sa.func.now()})
