"""The memory store: the SDK Session contract (shared with the stock SQLiteSession), file
layout and permissions, deletion, and bounded descriptors."""

from __future__ import annotations

import os
import stat
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from agents import SQLiteSession
from agents.memory import Session, SessionSettings

from app.memory import AgentMemoryStore

OpenMemory = Callable[[Path, uuid.UUID, uuid.UUID], AbstractAsyncContextManager[Session]]


def user_item(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def tool_items(n: int) -> list[dict[str, Any]]:
    return [
        {
            "type": "function_call",
            "name": "add_task",
            "arguments": f'{{"title": "t{n}"}}',
            "call_id": f"call_{n}",
        },
        {"type": "function_call_output", "call_id": f"call_{n}", "output": '{"ok": true}'},
    ]


@asynccontextmanager
async def open_ours(root: Path, user_id: uuid.UUID, conv_id: uuid.UUID) -> AsyncIterator[Session]:
    async with AgentMemoryStore(root).open(user_id, conv_id) as memory:
        yield memory


@asynccontextmanager
async def open_stock(root: Path, user_id: uuid.UUID, conv_id: uuid.UUID) -> AsyncIterator[Session]:
    path = AgentMemoryStore(root).path_for(user_id, conv_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    memory = SQLiteSession(str(conv_id), path)
    try:
        yield memory
    finally:
        memory.close()


class SessionContract:
    """Behaviour every memory backend must share with the SDK's `SQLiteSession`."""

    open_memory: OpenMemory

    @pytest.fixture
    def ids(self) -> tuple[uuid.UUID, uuid.UUID]:
        return uuid.uuid4(), uuid.uuid4()

    async def test_items_come_back_in_insertion_order(self, tmp_path: Path, ids) -> None:
        async with self.open_memory(tmp_path, *ids) as memory:
            await memory.add_items([user_item("one"), user_item("two")])
            await memory.add_items([*tool_items(3), user_item("four")])
            items = await memory.get_items()
        assert [i.get("content", i.get("type")) for i in items] == [
            "one",
            "two",
            "function_call",
            "function_call_output",
            "four",
        ]

    async def test_limit_returns_latest_items_in_chronological_order(self, tmp_path, ids) -> None:
        async with self.open_memory(tmp_path, *ids) as memory:
            await memory.add_items([user_item(str(n)) for n in range(10)])
            assert [i["content"] for i in await memory.get_items(limit=3)] == ["7", "8", "9"]
            assert len(await memory.get_items(limit=50)) == 10

    async def test_pop_item_removes_and_returns_the_newest(self, tmp_path, ids) -> None:
        async with self.open_memory(tmp_path, *ids) as memory:
            await memory.add_items([user_item("a"), user_item("b")])
            assert (await memory.pop_item()) == user_item("b")
            assert await memory.get_items() == [user_item("a")]
            assert (await memory.pop_item()) == user_item("a")
            assert await memory.pop_item() is None

    async def test_clear_session_empties_history(self, tmp_path, ids) -> None:
        async with self.open_memory(tmp_path, *ids) as memory:
            await memory.add_items([user_item("a"), *tool_items(1)])
            await memory.clear_session()
            assert await memory.get_items() == []
            await memory.add_items([user_item("again")])
            assert await memory.get_items() == [user_item("again")]

    async def test_unicode_round_trips_exactly(self, tmp_path, ids) -> None:
        text = "Grüße, 你好, 🚀 — \u202e and \x00-free quotes \"'"
        async with self.open_memory(tmp_path, *ids) as memory:
            await memory.add_items([user_item(text)])
            assert (await memory.get_items())[0]["content"] == text

    async def test_history_persists_after_reopening(self, tmp_path, ids) -> None:
        async with self.open_memory(tmp_path, *ids) as memory:
            await memory.add_items([user_item("remember me"), *tool_items(7)])
        async with self.open_memory(tmp_path, *ids) as memory:
            items = await memory.get_items()
        assert items[0] == user_item("remember me")
        assert items[1]["call_id"] == items[2]["call_id"] == "call_7"


class TestAgentMemoryStoreContract(SessionContract):
    open_memory = staticmethod(open_ours)


class TestStockSQLiteSessionContract(SessionContract):
    open_memory = staticmethod(open_stock)


class TestCompatibilityWithStockSession:
    async def test_stock_sqlite_session_reads_our_file_and_we_read_its(self, tmp_path) -> None:
        user_id, conv_id = uuid.uuid4(), uuid.uuid4()
        async with open_ours(tmp_path, user_id, conv_id) as ours:
            await ours.add_items([user_item("written by the store")])
        async with open_stock(tmp_path, user_id, conv_id) as stock:
            assert await stock.get_items() == [user_item("written by the store")]
            await stock.add_items([user_item("written by the SDK")])
        async with open_ours(tmp_path, user_id, conv_id) as ours:
            assert [i["content"] for i in await ours.get_items()] == [
                "written by the store",
                "written by the SDK",
            ]

    async def test_session_settings_limit_is_the_default_window(self, tmp_path) -> None:
        store = AgentMemoryStore(tmp_path, session_settings=SessionSettings(limit=2))
        async with store.open(uuid.uuid4(), uuid.uuid4()) as memory:
            await memory.add_items([user_item(str(n)) for n in range(5)])
            assert [i["content"] for i in await memory.get_items()] == ["3", "4"]
            assert len(await memory.get_items(limit=4)) == 4


class TestFiles:
    async def test_file_layout_wal_mode_and_private_permissions(self, tmp_path) -> None:
        store = AgentMemoryStore(tmp_path / "sessions")
        user_id, conv_id = uuid.uuid4(), uuid.uuid4()
        async with store.open(user_id, conv_id) as memory:
            await memory.add_items([user_item("hi")])
            path = tmp_path / "sessions" / str(user_id) / f"{conv_id}.db"
            assert store.path_for(user_id, conv_id) == path
            assert Path(f"{path}-wal").exists()
            import sqlite3

            with sqlite3.connect(path) as probe:
                assert probe.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        assert stat.S_IMODE((tmp_path / "sessions").stat().st_mode) == 0o700

    @pytest.mark.parametrize("bad", ["../../etc/passwd", "x", str(uuid.uuid4())])
    def test_paths_are_built_only_from_uuids(self, tmp_path, bad) -> None:
        store = AgentMemoryStore(tmp_path)
        with pytest.raises(TypeError):
            store.path_for(bad, uuid.uuid4())  # type: ignore[arg-type]  # the point of the test
        with pytest.raises(TypeError):
            store.path_for(uuid.uuid4(), bad)  # type: ignore[arg-type]  # the point of the test

    async def test_delete_removes_file_and_sidecars(self, tmp_path) -> None:
        store = AgentMemoryStore(tmp_path)
        user_id, conv_id = uuid.uuid4(), uuid.uuid4()
        path = store.path_for(user_id, conv_id)
        async with store.open(user_id, conv_id) as memory:
            await memory.add_items([user_item("bye")])
        # Sidecars left behind by a crashed writer must go too.
        Path(f"{path}-wal").write_bytes(b"x")
        Path(f"{path}-shm").write_bytes(b"x")
        assert await store.delete(user_id, conv_id) is True
        assert list(path.parent.iterdir()) == []
        assert await store.delete(user_id, conv_id) is False

    async def test_erase_user_removes_their_files_and_quarantined_copies_only(
        self, tmp_path
    ) -> None:
        store = AgentMemoryStore(tmp_path)
        user_id, other = uuid.uuid4(), uuid.uuid4()
        threads = [uuid.uuid4() for _ in range(3)]
        for thread_id in threads:
            async with store.open(user_id, thread_id) as memory:
                await memory.add_items([user_item("mine")])
        async with store.open(user_id, threads[0]) as memory:
            await store.quarantine(memory)  # a corrupt file's copy, kept as evidence
        async with store.open(other, uuid.uuid4()) as memory:
            await memory.add_items([user_item("theirs")])
        mine = str(tmp_path / str(user_id))

        def open_descriptors() -> list[str]:  # files of the user this process holds open
            links = []
            for fd in os.listdir("/proc/self/fd"):
                try:
                    links.append(os.readlink(f"/proc/self/fd/{fd}"))
                except FileNotFoundError:  # the descriptor listdir itself used
                    continue
            return [link for link in links if link.startswith(mine)]

        assert open_descriptors() != []  # the pool keeps idle connections to them

        erased = await store.erase_user(user_id)

        assert (erased.memory_files, erased.quarantined_files) == (2, 1)
        assert not (tmp_path / str(user_id)).exists()
        assert not (tmp_path / "_quarantine" / str(user_id)).exists()
        assert open_descriptors() == []  # closed, not kept on deleted files
        assert len(list((tmp_path / str(other)).glob("*.db"))) == 1
        assert await store.erase_user(user_id) == type(erased)(0, 0)

    async def test_delete_waits_for_the_turn_holding_the_file(self, tmp_path) -> None:
        import asyncio

        store = AgentMemoryStore(tmp_path)
        user_id, conv_id = uuid.uuid4(), uuid.uuid4()
        path = store.path_for(user_id, conv_id)
        opened, release = asyncio.Event(), asyncio.Event()

        async def turn() -> None:
            async with store.open(user_id, conv_id) as memory:
                await memory.add_items([user_item("first write")])
                opened.set()
                await release.wait()
                await memory.add_items([user_item("last write")])
                assert path.exists()

        task = asyncio.create_task(turn())
        await opened.wait()
        deletion = asyncio.create_task(store.delete(user_id, conv_id))
        await asyncio.sleep(0)
        assert not deletion.done()
        assert path.exists()
        release.set()
        await task
        assert await deletion is True
        assert not path.exists()

    async def test_descriptors_stay_bounded_across_hundreds_of_conversations(
        self, tmp_path
    ) -> None:
        store = AgentMemoryStore(tmp_path)
        user_id = uuid.uuid4()

        def open_fds() -> int:
            return len(os.listdir("/proc/self/fd"))

        before = open_fds()
        for _ in range(300):
            async with store.open(user_id, uuid.uuid4()) as memory:
                await memory.add_items([user_item("hello"), *tool_items(1)])
                await memory.get_items(limit=20)
        assert len(list(store.iter_files())) == 300
        # At most the pool's idle files stay open, 3 descriptors each (db, WAL, shm).
        assert open_fds() - before <= 3 * store._pool.size
        store.close()
        assert open_fds() - before <= 2
