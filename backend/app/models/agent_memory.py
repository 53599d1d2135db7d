"""The `postgres` memory backend's tables, in the schema of the SDK's `SQLAlchemySession`.

`sdk_agent_sessions` / `sdk_agent_session_messages` have exactly the columns the stock
`SQLAlchemySession(session_id, engine=..., sessions_table="sdk_agent_sessions",
messages_table="sdk_agent_session_messages")` reads and writes, so it can open any thread's
memory (the session id is the thread id as text). What Threadkeeper adds lives in extra
nullable columns of the sessions table, which the stock class never selects:

- `thread_id` references the thread with ON DELETE CASCADE: deleting a thread (or its user)
  deletes its memory rows in the same transaction, on every node at once.
- `generation` / `stamped_last_id`: the memory generation this memory was stamped with and
  its newest item id then (the SQLite files keep the same two facts in themselves).
- `summary_*`: which row is the summary of pruned turns (compaction) and what it covers.

Message ids are 64-bit (the stock class declares `Integer` and reads them as Python ints
either way): one table holds every thread's items, so 2^31 would run out. The summary row
of a thread gets a negative id (minus the id of the item it was put before), so ordering
by id puts it first without borrowing another thread's ids.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import SQLModel

SESSIONS_TABLE = "sdk_agent_sessions"
MESSAGES_TABLE = "sdk_agent_session_messages"

agent_sessions = sa.Table(
    SESSIONS_TABLE,
    SQLModel.metadata,
    sa.Column("session_id", sa.String(), primary_key=True),
    sa.Column(
        "created_at",
        sa.TIMESTAMP(timezone=False),
        server_default=sa.text("CURRENT_TIMESTAMP"),
        nullable=False,
    ),
    sa.Column(
        "updated_at",
        sa.TIMESTAMP(timezone=False),
        server_default=sa.text("CURRENT_TIMESTAMP"),
        nullable=False,
    ),
    sa.Column(
        "thread_id",
        sa.Uuid(),
        sa.ForeignKey("threads.id", ondelete="CASCADE"),
        nullable=True,
        index=True,
    ),
    sa.Column("generation", sa.BigInteger(), nullable=True),
    sa.Column("stamped_last_id", sa.BigInteger(), nullable=True),
    sa.Column("summary_item_id", sa.BigInteger(), nullable=True),
    sa.Column("summary_covers", sa.Integer(), nullable=True),
    sa.Column("summary_made_at", sa.DateTime(timezone=True), nullable=True),
)

agent_session_messages = sa.Table(
    MESSAGES_TABLE,
    SQLModel.metadata,
    sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=True),
    sa.Column(
        "session_id",
        sa.String(),
        sa.ForeignKey(f"{SESSIONS_TABLE}.session_id", ondelete="CASCADE", onupdate="CASCADE"),
        nullable=False,
    ),
    sa.Column("message_data", sa.Text(), nullable=False),
    sa.Column(
        "created_at",
        sa.TIMESTAMP(timezone=False),
        server_default=sa.text("CURRENT_TIMESTAMP"),
        nullable=False,
    ),
    # The stock class's own index (it orders by created_at, id)...
    sa.Index(f"idx_{MESSAGES_TABLE}_session_time", "session_id", "created_at"),
    # ...and ours: every statement of the backend selects one session's rows by id.
    sa.Index(f"ix_{MESSAGES_TABLE}_session_id_id", "session_id", "id"),
)
