"""The memory file format's version, and the ordered steps that upgrade an older file.

Every file records the format it is in with `PRAGMA user_version`, which the SDK's stock
`SQLiteSession` never reads or writes, so files stay readable (and writable) by it. The rule:

- a file at the current version is used as it is (one header read, no lock);
- an older file (0: written before versions existed, by an earlier Threadkeeper or by the
  stock class) is upgraded in place, in one transaction, through every step above its
  version: a crash or an error leaves it exactly at its old version;
- a file from a newer version (a newer Threadkeeper wrote it, then was rolled back) is
  refused with `MemoryVersionError` and left untouched: never quarantined, never rebuilt
  over, never downgraded. Upgrading Threadkeeper again makes it usable.

Steps only ever add (`CREATE ... IF NOT EXISTS`); they never rewrite the SDK's tables, so a
stock reader keeps working at every version.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

from app.memory.errors import MemoryVersionError


@dataclass(frozen=True)
class Step:
    """What upgrading a file to `version` adds."""

    version: int
    purpose: str
    statements: tuple[str, ...]


STEPS: tuple[Step, ...] = (
    Step(
        1,
        "the SDK's tables, and the generation stamp beside them",
        (
            """CREATE TABLE IF NOT EXISTS agent_sessions (
                session_id TEXT PRIMARY KEY,
                created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
                updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
            )""",
            """CREATE TABLE IF NOT EXISTS agent_messages (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                session_id TEXT NOT NULL,
                message_data TEXT NOT NULL,
                created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
                FOREIGN KEY (session_id) REFERENCES agent_sessions (session_id) ON DELETE CASCADE
            )""",
            """CREATE INDEX IF NOT EXISTS idx_agent_messages_session_id
                ON agent_messages (session_id, id)""",
            # The memory generation this file was last stamped with, and its newest item id
            # at that moment (see `turns.memory`).
            """CREATE TABLE IF NOT EXISTS threadkeeper_memory (
                key TEXT PRIMARY KEY,
                value INTEGER NOT NULL
            )""",
        ),
    ),
    Step(
        2,
        "the summary record: which row holds the summary of pruned turns, and what it covers",
        (
            """CREATE TABLE IF NOT EXISTS threadkeeper_summary (
                session_id TEXT PRIMARY KEY,
                item_id INTEGER NOT NULL,
                covers INTEGER NOT NULL,
                made_at TEXT NOT NULL
            )""",
        ),
    ),
)
FORMAT_VERSION = STEPS[-1].version


def file_version(conn: sqlite3.Connection) -> int:
    """The format version a file records (0 for a file from before versions)."""
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def refuse_newer(version: int, *, supported: int = FORMAT_VERSION) -> None:
    """Raise for a file this code cannot read; the caller must not have written to it.

    Raises:
        MemoryVersionError: the file is from a newer format.
    """
    if version > supported:
        raise MemoryVersionError(
            f"This thread's memory file is in format version {version}, newer than this "
            f"Threadkeeper reads (up to {supported}); it was left untouched: run the newer "
            "Threadkeeper again"
        )


def upgrade(conn: sqlite3.Connection, steps: Sequence[Step] = STEPS) -> int:
    """Bring the file to the newest version of `steps` in one transaction.

    The version is read again under the write lock, so two processes opening one old file
    upgrade it once. The connection must be in autocommit mode (no transaction open).

    Returns:
        The version the file was at before.

    Raises:
        MemoryVersionError: another process made it newer than `steps` know meanwhile.
    """
    target = steps[-1].version
    conn.execute("BEGIN IMMEDIATE")
    try:
        before = file_version(conn)
        refuse_newer(before, supported=target)
        for step in steps:
            if step.version > before:
                for statement in step.statements:
                    conn.execute(statement)
        if before < target:
            conn.execute(f"PRAGMA user_version = {int(target)}")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return before
