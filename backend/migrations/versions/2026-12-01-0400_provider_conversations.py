"""Where a thread's memory lives at a provider (AGENT_MEMORY_BACKEND=openai_conversations).

`threads.provider` ("openai") and `threads.provider_conversation_id` (the `conv_...` id) are
NULL until a first turn binds the thread; the bind is a conditional UPDATE ... WHERE
provider_conversation_id IS NULL, so concurrent first turns agree on one conversation.

Revision ID: 0014_provider_conversations
Revises: 0013_memory_backends
Create Date: 2026-12-01 03:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014_provider_conversations"
down_revision: str | None = "0013_memory_backends"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("threads", sa.Column("provider", sa.String(length=32), nullable=True))
    op.add_column(
        "threads", sa.Column("provider_conversation_id", sa.String(length=255), nullable=True)
    )


def downgrade() -> None:
    op.drop_column("threads", "provider_conversation_id")
    op.drop_column("threads", "provider")
