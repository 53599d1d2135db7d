"""Memory generations: which saved state a memory file must hold, and how much log it covers.

`memory_generation` counts the saved states of a thread's memory (each saved turn, rebuild or
clear); the memory file stamps the same number in itself, so a file that lost writes (a deleted
WAL, an older copy restored, another node's stale copy) is found behind before a turn runs.
`memory_message_count` is how many log messages that state reflects: later log messages are
user messages whose turn failed, and memory must hold exactly those after the stamp.

Existing rows keep generation 0 (their files carry no stamp yet and are checked the old way
once) and are taken to reflect their whole log.

Revision ID: 0004_memory_generation
Revises: 0003_memory_last_item
Create Date: 2026-11-30 18:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_memory_generation"
down_revision: str | None = "0003_memory_last_item"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "conversations",
        sa.Column("memory_generation", sa.BigInteger(), server_default="0", nullable=False),
    )
    op.add_column(
        "conversations",
        sa.Column("memory_message_count", sa.Integer(), server_default="0", nullable=False),
    )
    op.execute("UPDATE conversations SET memory_message_count = message_count")


def downgrade() -> None:
    op.drop_column("conversations", "memory_message_count")
    op.drop_column("conversations", "memory_generation")
