"""The `postgres` memory backend's tables, in the schema of the SDK's SQLAlchemySession.

`sdk_agent_sessions` and `sdk_agent_session_messages` have the stock class's columns (so
`SQLAlchemySession(..., sessions_table=..., messages_table=...)` reads them) plus ours on the
sessions table: the thread (ON DELETE CASCADE: deleting a thread deletes its memory rows), the
memory generation stamp, and the summary record. Created here, never at runtime; empty until
AGENT_MEMORY_BACKEND=postgres (threads then rebuild their memory from the log on first use).

Revision ID: 0013_memory_backends
Revises: 0012_limits
Create Date: 2026-12-01 02:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013_memory_backends"
down_revision: str | None = "0012_limits"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sdk_agent_sessions",
        sa.Column("session_id", sa.String(), nullable=False),
        sa.Column(
            "created_at",
            sa.TIMESTAMP(timezone=False),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.TIMESTAMP(timezone=False),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),
        sa.Column("thread_id", sa.Uuid(), nullable=True),
        sa.Column("generation", sa.BigInteger(), nullable=True),
        sa.Column("stamped_last_id", sa.BigInteger(), nullable=True),
        sa.Column("summary_item_id", sa.BigInteger(), nullable=True),
        sa.Column("summary_covers", sa.Integer(), nullable=True),
        sa.Column("summary_made_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["thread_id"],
            ["threads.id"],
            name="fk_sdk_agent_sessions_thread_id_threads",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("session_id", name="pk_sdk_agent_sessions"),
    )
    op.create_index(
        "ix_sdk_agent_sessions_thread_id", "sdk_agent_sessions", ["thread_id"], unique=False
    )
    op.create_table(
        "sdk_agent_session_messages",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("session_id", sa.String(), nullable=False),
        sa.Column("message_data", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.TIMESTAMP(timezone=False),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["sdk_agent_sessions.session_id"],
            name="fk_sdk_agent_session_messages_session_id_sdk_agent_sessions",
            ondelete="CASCADE",
            onupdate="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_sdk_agent_session_messages"),
    )
    op.create_index(
        "idx_sdk_agent_session_messages_session_time",
        "sdk_agent_session_messages",
        ["session_id", "created_at"],
        unique=False,
    )
    op.create_index(
        "ix_sdk_agent_session_messages_session_id_id",
        "sdk_agent_session_messages",
        ["session_id", "id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_table("sdk_agent_session_messages")
    op.drop_table("sdk_agent_sessions")
