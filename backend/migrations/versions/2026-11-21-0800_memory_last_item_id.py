"""Mirror the memory file's newest row id on the conversation.

A turn compares it with the file to know, without asking the message log, whether anything
was written after the last saved turn (a crash mid-turn).

Revision ID: 0003_memory_last_item
Revises: 0002_maintenance
Create Date: 2026-11-21 08:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_memory_last_item"
down_revision: str | None = "0002_maintenance"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("conversations", sa.Column("memory_last_item_id", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    op.drop_column("conversations", "memory_last_item_id")
