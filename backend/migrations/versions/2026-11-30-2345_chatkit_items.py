"""ChatKit items: what the ChatKit front end stores beside the message log.

- `messages.chatkit_item`: the ChatKit item of a message that came through ChatKit, as the
  client sent it (its id, content parts with tags, quoted text, inference options). NULL for
  every existing row and for messages written through REST: those are rendered from role,
  content and metadata, so existing rows stay readable through both APIs unchanged.
- `chatkit_items`: items that are not messages of the log (client tool calls, widgets,
  workflows, tasks, hidden context, end of turn, ...), stored whole as JSONB. They are not in
  `messages` because the log's message count and order are what memory is reconciled against.

Revision ID: 0009_chatkit_items
Revises: 0008_nodes
Create Date: 2026-11-30 23:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0009_chatkit_items"
down_revision: str | None = "0008_nodes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("messages", sa.Column("chatkit_item", JSONB(), nullable=True))
    op.create_index(
        "ix_messages_chatkit_item_id",
        "messages",
        ["thread_id", sa.text("(chatkit_item ->> 'id')")],
        postgresql_where=sa.text("chatkit_item IS NOT NULL"),
    )
    op.create_table(
        "chatkit_items",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("thread_id", sa.Uuid(), nullable=False),
        sa.Column("item_id", sa.String(length=200), nullable=False),
        sa.Column("item_type", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("item", JSONB(), nullable=False),
        sa.ForeignKeyConstraint(
            ["thread_id"],
            ["threads.id"],
            name=op.f("fk_chatkit_items_thread_id_threads"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chatkit_items")),
        sa.UniqueConstraint("thread_id", "item_id", name=op.f("uq_chatkit_items_thread_id")),
    )
    op.create_index(
        "ix_chatkit_items_thread_time", "chatkit_items", ["thread_id", "created_at", "id"]
    )


def downgrade() -> None:
    op.drop_index("ix_chatkit_items_thread_time", table_name="chatkit_items")
    op.drop_table("chatkit_items")
    op.drop_index("ix_messages_chatkit_item_id", table_name="messages")
    op.drop_column("messages", "chatkit_item")
