"""Several nodes on one PostgreSQL: lease holders by node incarnation, turn events, where
memory lives, and memory generations that never repeat.

- `node_incarnations`: one row per start of a node (a set of server processes sharing one
  DATA_DIR), so a restarted node can free the leases its previous incarnation held.
- `threads.active_turn_incarnation`: which incarnation holds the thread's lease.
- `threads.memory_node`: the node whose local memory file holds the thread's current memory
  generation (NULL: not node-local, or written before this revision).
- `turn_events`: a turn's stream events in batches, so any node can resume a stream.
- `maintenance_runs.node`: the node that ran a job.
- `memory_generations`: a sequence; every new memory generation is drawn from it, so a file
  stamped by a rebuild whose transaction never committed can never match a generation that
  another node commits later.

Revision ID: 0008_nodes
Revises: 0007_thread_agent
Create Date: 2026-12-01 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_nodes"
down_revision: str | None = "0007_thread_agent"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "node_incarnations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("node_id", sa.String(length=255), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_node_incarnations")),
    )
    op.create_index("ix_node_incarnations_node", "node_incarnations", ["node_id", "started_at"])
    op.add_column("threads", sa.Column("active_turn_incarnation", sa.Uuid(), nullable=True))
    op.add_column("threads", sa.Column("memory_node", sa.String(length=255), nullable=True))
    op.create_index(
        "ix_threads_active_turn_incarnation",
        "threads",
        ["active_turn_incarnation"],
        postgresql_where=sa.text("active_turn_incarnation IS NOT NULL"),
    )
    op.add_column("maintenance_runs", sa.Column("node", sa.String(length=255), nullable=True))
    op.create_table(
        "turn_events",
        sa.Column("turn_id", sa.Uuid(), nullable=False),
        sa.Column("first_id", sa.Integer(), nullable=False),
        sa.Column("last_id", sa.Integer(), nullable=False),
        sa.Column("events", sa.Text(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["turn_id"], ["turns.id"], name=op.f("fk_turn_events_turn_id_turns"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("turn_id", "first_id", name=op.f("pk_turn_events")),
    )
    op.create_index("ix_turn_events_created", "turn_events", ["created_at"])
    op.execute("CREATE SEQUENCE memory_generations")
    op.execute(
        "SELECT setval('memory_generations', "
        "(SELECT coalesce(max(memory_generation), 0) + 1 FROM threads), false)"
    )


def downgrade() -> None:
    op.execute("DROP SEQUENCE memory_generations")
    op.drop_index("ix_turn_events_created", table_name="turn_events")
    op.drop_table("turn_events")
    op.drop_column("maintenance_runs", "node")
    op.drop_index("ix_threads_active_turn_incarnation", table_name="threads")
    op.drop_column("threads", "memory_node")
    op.drop_column("threads", "active_turn_incarnation")
    op.drop_index("ix_node_incarnations_node", table_name="node_incarnations")
    op.drop_table("node_incarnations")
