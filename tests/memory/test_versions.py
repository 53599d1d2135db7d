"""Versioned memory files: older files are upgraded in place in one transaction, newer ones
are refused and left untouched, and every version stays readable by the stock class."""

from __future__ import annotations

import hashlib
import sqlite3
import uuid
from pathlib import Path

import pytest
from agents import SQLiteSession

from app.memory import AgentMemoryStore, MemoryVersionError
from app.memory.versions import FORMAT_VERSION, STEPS, Step, upgrade
from app.scheduler import jobs, thread_admin
from tests.factories import thread_with_turns

# The schema `backend/app/memory/files.py` wrote before files had a version (commit 31927d9),
# copied here as it was: the upgrade must take exactly such a file.
UNVERSIONED_SCHEMA = (
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
    """CREATE TABLE IF NOT EXISTS threadkeeper_memory (
        key TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    )""",
)
ITEMS = [
    {"role": "user", "content": "remember that the build id is 42"},
    {"role": "assistant", "content": "Got it."},
]


def write_unversioned_file(path: Path, session_id: str, *, generation: int) -> None:
    """A memory file exactly as the code before versions left it after a saved turn."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode = WAL")
        for statement in UNVERSIONED_SCHEMA:
            conn.execute(statement)
        conn.execute("INSERT INTO agent_sessions (session_id) VALUES (?)", (session_id,))
        conn.executemany(
            "INSERT INTO agent_messages (session_id, message_data) VALUES (?, ?)",
            [
                (session_id, '{"role":"user","content":"remember that the build id is 42"}'),
                (session_id, '{"role":"assistant","content":"Got it."}'),
            ],
        )
        conn.execute(
            "INSERT INTO threadkeeper_memory (key, value) VALUES ('generation', ?), ('last_id', 2)",
            (generation,),
        )
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def version_of(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])


def tables_of(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return {name for (name,) in rows} - {"sqlite_sequence"}


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class TestUpgrade:
    async def test_a_new_file_records_the_current_version(self, tmp_path) -> None:
        store = AgentMemoryStore(tmp_path)
        user_id, thread_id = uuid.uuid4(), uuid.uuid4()
        async with store.open(user_id, thread_id) as memory:
            await memory.add_items(ITEMS)
        path = store.path_for(user_id, thread_id)
        assert version_of(path) == FORMAT_VERSION == 2
        assert tables_of(path) == {
            "agent_sessions",
            "agent_messages",
            "threadkeeper_memory",
            "threadkeeper_summary",
        }

    async def test_a_file_written_before_versions_is_upgraded_in_place(self, tmp_path) -> None:
        store = AgentMemoryStore(tmp_path)
        user_id, thread_id = uuid.uuid4(), uuid.uuid4()
        path = store.path_for(user_id, thread_id)
        write_unversioned_file(path, str(thread_id), generation=7)
        assert version_of(path) == 0
        async with store.open(user_id, thread_id) as memory:
            assert await memory.get_items() == ITEMS
            mark = await memory.read_mark()
            assert (mark.generation, mark.stamped_last_id, mark.last_id) == (7, 2, 2)
            assert (await memory.head()).summary is None
        store.close()
        assert version_of(path) == FORMAT_VERSION
        assert "threadkeeper_summary" in tables_of(path)
        stock = SQLiteSession(str(thread_id), path)
        try:
            assert await stock.get_items() == ITEMS
        finally:
            stock.close()

    async def test_a_file_the_stock_class_created_is_upgraded(self, tmp_path) -> None:
        store = AgentMemoryStore(tmp_path)
        user_id, thread_id = uuid.uuid4(), uuid.uuid4()
        path = store.path_for(user_id, thread_id)
        path.parent.mkdir(parents=True)
        stock = SQLiteSession(str(thread_id), path)
        await stock.add_items(ITEMS)
        stock.close()
        async with store.open(user_id, thread_id) as memory:
            assert await memory.get_items() == ITEMS
            assert (await memory.read_mark()).generation is None
        assert version_of(path) == FORMAT_VERSION

    def test_an_upgrade_is_one_transaction(self, tmp_path) -> None:
        path = tmp_path / "memory.db"
        write_unversioned_file(path, "s", generation=1)
        before = tables_of(path)
        broken = (
            *STEPS,
            Step(3, "a step that fails halfway", ("CREATE TABLE added (a)", "NOT SQL")),
        )
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            with pytest.raises(sqlite3.OperationalError):
                upgrade(conn, broken)
        finally:
            conn.close()
        assert version_of(path) == 0
        assert tables_of(path) == before  # neither step 2's table nor step 3's first one


class TestNewerVersion:
    async def test_is_refused_and_left_untouched(self, tmp_path) -> None:
        store = AgentMemoryStore(tmp_path)
        user_id, thread_id = uuid.uuid4(), uuid.uuid4()
        path = store.path_for(user_id, thread_id)
        write_unversioned_file(path, str(thread_id), generation=3)
        with sqlite3.connect(path) as conn:
            conn.execute(f"PRAGMA user_version = {FORMAT_VERSION + 1}")
        before = digest(path)
        async with store.open(user_id, thread_id) as memory:
            with pytest.raises(MemoryVersionError, match=r"format version 3, newer .* \(up to 2\)"):
                await memory.get_items()
            with pytest.raises(MemoryVersionError):
                await memory.add_items(ITEMS)
        assert digest(path) == before
        assert version_of(path) == FORMAT_VERSION + 1

    async def test_a_pooled_connection_notices_an_upgrade_by_another_process(
        self, tmp_path
    ) -> None:
        store = AgentMemoryStore(tmp_path)
        user_id, thread_id = uuid.uuid4(), uuid.uuid4()
        async with store.open(user_id, thread_id) as memory:
            await memory.add_items(ITEMS)
        with sqlite3.connect(store.path_for(user_id, thread_id)) as conn:
            conn.execute(f"PRAGMA user_version = {FORMAT_VERSION + 1}")
        async with store.open(user_id, thread_id) as memory:
            with pytest.raises(MemoryVersionError):
                await memory.add_items(ITEMS)
        with sqlite3.connect(store.path_for(user_id, thread_id)) as conn:
            assert conn.execute("SELECT count(*) FROM agent_messages").fetchone() == (2,)


class TestNewerVersionThroughTheService:
    @pytest.fixture
    def settings(self, settings_factory, private_database):
        return settings_factory(DATABASE_URL=private_database)

    async def test_a_turn_is_refused_with_503_and_the_file_left_alone(
        self, running, client, alice
    ) -> None:
        thread_id = await thread_with_turns(client, alice, "remember that the build id is 42")
        user_id = await running.user_id(alice)
        path = running.memory_store.path_for(user_id, uuid.UUID(thread_id))
        running.memory_store.close()  # as a restart would: no pooled connection left
        with sqlite3.connect(path) as conn:
            conn.execute(f"PRAGMA user_version = {FORMAT_VERSION + 1}")
        before = digest(path)
        response = await client.post(
            f"/api/threads/{thread_id}/messages",
            json={"text": "what did I ask you to remember?"},
            headers={**alice, "accept": "application/json"},
        )
        assert response.status_code == 503, response.text
        assert response.json() == {
            "error": "MemoryVersionError",
            "detail": "This thread's memory file is in format version 3, newer than this "
            "Threadkeeper reads (up to 2); it was left untouched: run the newer Threadkeeper "
            "again",
        }
        assert response.headers["retry-after"] == "5"
        report = await jobs.verify(running.state["job_context"])
        assert report["memory"]["reasons"] == {"newer format": 1}
        assert report["ok"] is False
        await jobs.reconcile(running.state["job_context"])
        assert digest(path) == before
        assert version_of(path) == FORMAT_VERSION + 1
        assert not (running.memory_store.root / "_quarantine").exists()
        thread = (await client.get(f"/api/threads/{thread_id}", headers=alice)).json()
        assert thread["message_count"] == 2  # the refused message was not logged
        shown = await thread_admin.inspect(running.state["job_context"], uuid.UUID(thread_id))
        assert shown["file_error"].startswith("This thread's memory file is in format version 3")
        assert digest(path) == before
