"""Turns get a row of their own; threads get a status, metadata and their newest turn.

- `turns`: one row per turn (status running/completed/failed/cancelled, error code, tokens,
  a stop request left for the worker running it). Existing turns are recovered from the
  `turn_id` their messages carry: completed when a reply was saved, failed otherwise.
- `messages.turn_id`: the turn that wrote a message, so its status shows with it.
- `threads.status` (active/archived), `threads.metadata` (a small map clients keep), and
  `threads.last_turn_id` / `last_turn_status`.

Revision ID: 0006_turns
Revises: 0005_threads
Create Date: 2026-11-30 22:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0006_turns"
down_revision: str | None = "0005_threads"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "turns",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("thread_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error_code", sa.String(length=32), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cancel_requested_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["thread_id"], ["threads.id"], name=op.f("fk_turns_thread_id_threads"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_turns_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_turns")),
    )
    op.create_index("ix_turns_thread_started", "turns", ["thread_id", "started_at"])
    op.create_index("ix_turns_user_started", "turns", ["user_id", "started_at"])
    op.add_column("messages", sa.Column("turn_id", sa.Uuid(), nullable=True))
    op.add_column(
        "threads", sa.Column("status", sa.String(length=16), server_default="active", nullable=False)
    )
    op.add_column(
        "threads",
        sa.Column("metadata", JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False),
    )
    op.add_column("threads", sa.Column("last_turn_id", sa.Uuid(), nullable=True))
    op.add_column("threads", sa.Column("last_turn_status", sa.String(length=16), nullable=True))
    _recover_existing_turns()
    op.create_foreign_key(
        op.f("fk_messages_turn_id_turns"), "messages", "turns", ["turn_id"], ["id"], ondelete="SET NULL"
    )


def _recover_existing_turns() -> None:
    op.execute(
        """
        INSERT INTO turns (id, thread_id, user_id, status, started_at, finished_at,
                           input_tokens, output_tokens)
        SELECT t.turn_id, t.thread_id, th.user_id,
               CASE WHEN t.replied THEN 'completed' ELSE 'failed' END,
               t.started_at, t.finished_at, t.input_tokens, t.output_tokens
        FROM (
            SELECT (m.metadata->>'turn_id')::uuid AS turn_id, m.thread_id,
                   min(m.created_at) AS started_at, max(m.created_at) AS finished_at,
                   bool_or(m.role = 'assistant') AS replied,
                   coalesce(sum((m.metadata->'usage'->>'input_tokens')::bigint), 0) AS input_tokens,
                   coalesce(sum((m.metadata->'usage'->>'output_tokens')::bigint), 0) AS output_tokens
            FROM messages m
            WHERE m.metadata ? 'turn_id'
            GROUP BY 1, 2
        ) t JOIN threads th ON th.id = t.thread_id
        ON CONFLICT (id) DO NOTHING
        """
    )
    op.execute(
        "UPDATE messages SET turn_id = (metadata->>'turn_id')::uuid "
        "WHERE metadata ? 'turn_id' AND EXISTS "
        "(SELECT 1 FROM turns WHERE turns.id = (messages.metadata->>'turn_id')::uuid)"
    )
    op.execute(
        """
        UPDATE threads SET last_turn_id = latest.id, last_turn_status = latest.status
        FROM (SELECT DISTINCT ON (thread_id) thread_id, id, status FROM turns
              ORDER BY thread_id, started_at DESC) latest
        WHERE latest.thread_id = threads.id
        """
    )


def downgrade() -> None:
    op.drop_constraint(op.f("fk_messages_turn_id_turns"), "messages", type_="foreignkey")
    op.drop_column("threads", "last_turn_status")
    op.drop_column("threads", "last_turn_id")
    op.drop_column("threads", "metadata")
    op.drop_column("threads", "status")
    op.drop_column("messages", "turn_id")
    op.drop_index("ix_turns_user_started", table_name="turns")
    op.drop_index("ix_turns_thread_started", table_name="turns")
    op.drop_table("turns")
