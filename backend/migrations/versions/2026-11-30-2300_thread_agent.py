"""A thread is served by one agent, named when it is created (`AGENTS`).

Adds `threads.agent`. Every existing thread was served by the todo agent, the only one there
was, so existing rows get "todo"; new rows always name their agent (no default: the default
agent is whichever AGENTS lists first, which only the application knows).

Revision ID: 0007_thread_agent
Revises: 0006_turns
Create Date: 2026-12-01 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_thread_agent"
down_revision: str | None = "0006_turns"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "threads",
        sa.Column("agent", sa.String(length=32), nullable=False, server_default="todo"),
    )
    op.alter_column("threads", "agent", server_default=None)


def downgrade() -> None:
    op.drop_column("threads", "agent")
