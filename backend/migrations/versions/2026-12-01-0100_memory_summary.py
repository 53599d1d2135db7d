"""The summary of pruned turns, kept with the thread so a rebuild from the log reproduces it.

`memory_summary` is the summary item's whole text as memory holds it (prefix included),
`memory_summary_at` when it was made. `memory_summary_covers` is how many log messages, from
the first, memory holds only through that summary (or, after a clear, not at all): a rebuild
starts after them, and compaction folds in only messages after them.

Existing threads have no summary. One cleared on purpose and not used since keeps what it
forgot out of later summaries: its covered count starts at the log it reflected then.

Revision ID: 0011_memory_summary
Revises: 0010_search
Create Date: 2026-12-01 01:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_memory_summary"
down_revision: str | None = "0010_search"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("threads", sa.Column("memory_summary", sa.Text(), nullable=True))
    op.add_column(
        "threads",
        sa.Column("memory_summary_covers", sa.Integer(), server_default="0", nullable=False),
    )
    op.add_column(
        "threads", sa.Column("memory_summary_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.execute(
        "UPDATE threads SET memory_summary_covers = memory_message_count "
        "WHERE memory_state = 'empty'"
    )


def downgrade() -> None:
    op.drop_column("threads", "memory_summary_at")
    op.drop_column("threads", "memory_summary_covers")
    op.drop_column("threads", "memory_summary")
