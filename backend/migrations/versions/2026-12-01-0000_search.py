"""Full-text search over thread titles and message text.

Adds a `search_vector tsvector` column to `threads` and `messages`, kept by a trigger with
the configuration named in the one-row `search_config` table (`simple` here; see
`app.models.search` for why a trigger and not a generated column), and a partial GIN index
on each.

Sized for an existing deployment: everything here is O(1) in the tables' size but the two
index builds, which only scan the heap (no vector exists yet, and the partial index holds
none). The tables' locks are held for that scan only. Existing rows get their vectors
afterwards, in short batches while the service runs: the row is marked `building` when there
is anything to index, and the app's startup (or `python -m app search reindex`) fills them.

Revision ID: 0010_search
Revises: 0009_chatkit_items
Create Date: 2026-12-01 00:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0010_search"
down_revision: str | None = "0009_chatkit_items"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (table, text expression, trigger columns, index)
VECTORS = (
    ("threads", "coalesce(NEW.title, '')", "title", "ix_threads_search"),
    ("messages", "NEW.content", "content", "ix_messages_search"),
)


def upgrade() -> None:
    op.create_table(
        "search_config",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("config", sa.String(length=63), nullable=False),
        sa.Column("building", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_search_config_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_search_config")),
    )
    op.execute(
        "INSERT INTO search_config (id, config, building, updated_at) VALUES (1, 'simple', "
        "EXISTS (SELECT 1 FROM messages) OR EXISTS (SELECT 1 FROM threads "
        "WHERE title IS NOT NULL), now())"
    )
    for table, expression, column, index in VECTORS:
        # No default: adding the column only changes the catalog (no table rewrite).
        op.add_column(table, sa.Column("search_vector", postgresql.TSVECTOR(), nullable=True))
        op.execute(
            f"""CREATE FUNCTION {table}_search_vector() RETURNS trigger
            LANGUAGE plpgsql AS $$
            BEGIN
                NEW.search_vector := to_tsvector(
                    (SELECT config FROM search_config WHERE id = 1)::regconfig, {expression});
                RETURN NEW;
            END $$"""
        )
        op.execute(
            f"CREATE TRIGGER {table}_search_vector BEFORE INSERT OR UPDATE OF {column} "
            f"ON {table} FOR EACH ROW EXECUTE FUNCTION {table}_search_vector()"
        )
        op.create_index(
            index,
            table,
            ["search_vector"],
            postgresql_using="gin",
            postgresql_where=sa.text("search_vector IS NOT NULL"),
        )


def downgrade() -> None:
    for table, _, _, index in reversed(VECTORS):
        op.drop_index(index, table_name=table)
        op.execute(f"DROP TRIGGER {table}_search_vector ON {table}")
        op.execute(f"DROP FUNCTION {table}_search_vector()")
        op.drop_column(table, "search_vector")
    op.drop_table("search_config")
