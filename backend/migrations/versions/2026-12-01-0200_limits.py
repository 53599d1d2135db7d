"""Fair use: a row per user (overrides and the per-minute turn window), the open streams that
follow a turn (expiring rows, renewed while open), and which leases are a user's turns (they
count against the running-turns limit; a job's lease does not).

Existing leases are not counted: they are a minute old at most when this runs, and a turn
that started before the upgrade ends under the old rules.

Revision ID: 0012_limits
Revises: 0011_memory_summary
Create Date: 2026-12-01 02:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_limits"
down_revision: str | None = "0011_memory_summary"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "user_limits",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("turns_per_minute", sa.Integer(), nullable=True),
        sa.Column("running_turns", sa.Integer(), nullable=True),
        sa.Column("daily_tokens", sa.BigInteger(), nullable=True),
        sa.Column("open_streams", sa.Integer(), nullable=True),
        sa.Column("window_started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("window_turns", sa.Integer(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_user_limits_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_user_limits")),
    )
    op.create_table(
        "open_streams",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_open_streams_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_open_streams")),
    )
    op.create_index(
        "ix_open_streams_user_expires", "open_streams", ["user_id", "expires_at"], unique=False
    )
    op.add_column(
        "threads",
        sa.Column(
            "active_turn_counted", sa.Boolean(), server_default=sa.false(), nullable=False
        ),
    )


def downgrade() -> None:
    op.drop_column("threads", "active_turn_counted")
    op.drop_index("ix_open_streams_user_expires", table_name="open_streams")
    op.drop_table("open_streams")
    op.drop_table("user_limits")
