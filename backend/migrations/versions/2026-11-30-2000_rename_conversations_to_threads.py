"""One name per thing: the `conversations` table is `threads`, as the API has always said.

Renames the table, `messages.conversation_id`, and the indexes and constraints named after
them (so names stay those the models' naming convention produces). Data is untouched.

Revision ID: 0005_threads
Revises: 0004_memory_generation
Create Date: 2026-11-30 20:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005_threads"
down_revision: str | None = "0004_memory_generation"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RENAMES = (
    ("ALTER TABLE conversations RENAME TO threads", "ALTER TABLE threads RENAME TO conversations"),
    (
        "ALTER TABLE messages RENAME COLUMN conversation_id TO thread_id",
        "ALTER TABLE messages RENAME COLUMN thread_id TO conversation_id",
    ),
    (
        "ALTER TABLE threads RENAME CONSTRAINT pk_conversations TO pk_threads",
        "ALTER TABLE threads RENAME CONSTRAINT pk_threads TO pk_conversations",
    ),
    (
        "ALTER TABLE threads RENAME CONSTRAINT fk_conversations_user_id_users "
        "TO fk_threads_user_id_users",
        "ALTER TABLE threads RENAME CONSTRAINT fk_threads_user_id_users "
        "TO fk_conversations_user_id_users",
    ),
    (
        "ALTER TABLE messages RENAME CONSTRAINT fk_messages_conversation_id_conversations "
        "TO fk_messages_thread_id_threads",
        "ALTER TABLE messages RENAME CONSTRAINT fk_messages_thread_id_threads "
        "TO fk_messages_conversation_id_conversations",
    ),
    (
        "ALTER INDEX ix_conversations_user_recency RENAME TO ix_threads_user_recency",
        "ALTER INDEX ix_threads_user_recency RENAME TO ix_conversations_user_recency",
    ),
    (
        "ALTER INDEX ix_conversations_memory_activity RENAME TO ix_threads_memory_activity",
        "ALTER INDEX ix_threads_memory_activity RENAME TO ix_conversations_memory_activity",
    ),
    (
        "ALTER INDEX ix_messages_conversation_time RENAME TO ix_messages_thread_time",
        "ALTER INDEX ix_messages_thread_time RENAME TO ix_messages_conversation_time",
    ),
)


def upgrade() -> None:
    for forward, _ in RENAMES:
        op.execute(forward)


def downgrade() -> None:
    for _, backward in reversed(RENAMES):
        op.execute(backward)
