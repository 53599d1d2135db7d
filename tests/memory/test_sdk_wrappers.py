"""Our store under the SDK's session wrappers, side by side with the stock SQLiteSession.

`OpenAIResponsesCompactionSession` compacts a partial history (longer than what the model
saw) only through a store's atomic snapshot hook; without it, it skipped compaction on our
store with "complete stored history could not be matched". `EncryptedSession` reaches the
same hook through the compaction wrapper.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from agents import Agent, Runner, SQLiteSession
from agents.extensions.memory import EncryptedSession
from agents.memory import OpenAIResponsesCompactionSession, Session, SessionSettings

from app.memory import AgentMemoryStore
from tests.model_server.fixtures import MODEL
from tests.model_server.sdk import NO_TRACING

WINDOW = SessionSettings(limit=4)  # the model sees the newest 4 items of a longer history
OLD = [
    {"role": "user", "content": f"old message {n}"}
    if n % 2 == 0
    else {"role": "assistant", "content": f"old reply {n}"}
    for n in range(8)
]


@asynccontextmanager
async def ours(root: Path) -> AsyncIterator[Session]:
    store = AgentMemoryStore(root, session_settings=WINDOW)
    async with store.open(uuid.uuid4(), uuid.uuid4()) as memory:
        yield memory
    store.close()


@asynccontextmanager
async def stock(root: Path) -> AsyncIterator[Session]:
    memory = SQLiteSession("thread", root / "stock.db", session_settings=WINDOW)
    try:
        yield memory
    finally:
        memory.close()


BACKENDS = pytest.mark.parametrize("open_memory", [ours, stock], ids=["ours", "stock"])


async def everything(memory: Session) -> list[dict[str, Any]]:
    return list(await memory.get_items(limit=10_000))


def compaction_of(memory: Session, model_client: Any) -> OpenAIResponsesCompactionSession:
    return OpenAIResponsesCompactionSession(
        "thread",
        memory,
        client=model_client,
        model=MODEL,
        should_trigger_compaction=lambda _: True,
    )


@BACKENDS
class TestResponsesCompaction:
    async def test_a_partial_history_is_compacted_and_the_older_part_kept(
        self, model_server, model_client, responses_model, tmp_path, open_memory
    ) -> None:
        async with open_memory(tmp_path) as memory:
            await memory.add_items(OLD)
            agent = Agent(name="tester", instructions="Be brief.", model=responses_model)
            await Runner.run(
                agent,
                "remember that the build id is 42",
                session=compaction_of(memory, model_client),
                run_config=NO_TRACING,
            )
            items = await everything(memory)
        compact_requests = [r for r in model_server.requests if r.path == "/v1/responses/compact"]
        assert len(compact_requests) == 1
        kinds = [item.get("type", "message") for item in items]
        assert kinds[-1] == "compaction"
        # The suffix the model saw (the window's 4 items, from "old message 4", and the
        # turn) became its user messages and one compaction item; older history is kept.
        assert items[:4] == OLD[:4]
        assert [item["content"][0]["text"] for item in items[4:-1]] == [
            "old message 4",
            "old message 6",
            "remember that the build id is 42",
        ]
        assert items[-1]["encrypted_content"] == "compacted 3 items"

    async def test_the_snapshot_refuses_a_suffix_that_changed(self, tmp_path, open_memory) -> None:
        async with open_memory(tmp_path) as memory:
            await memory.add_items(OLD)
            snapshot = await memory._get_compaction_snapshot(3)
            assert snapshot is not None
            assert (snapshot.items, snapshot.complete) == (OLD[-3:], False)
            await memory.add_items([{"role": "user", "content": "meanwhile"}])
            assert await snapshot.replace_suffix(0, [{"role": "user", "content": "x"}]) is False
            assert len(await everything(memory)) == 9
            fresh = await memory._get_compaction_snapshot(20)
            assert fresh.complete is True
            replaced = [{"role": "user", "content": "all in one"}]
            assert await fresh.replace_suffix(7, replaced) is True
            assert await everything(memory) == OLD[:7] + replaced


class TestEncryptedCompaction:
    async def test_our_store_under_encryption_and_compaction(
        self, model_server, model_client, responses_model, tmp_path
    ) -> None:
        async with ours(tmp_path) as memory:
            encrypted = EncryptedSession(
                "thread",
                compaction_of(memory, model_client),
                encryption_key="a test key that is long enough",
            )
            await encrypted.add_items(OLD)
            agent = Agent(name="tester", instructions="Be brief.", model=responses_model)
            await Runner.run(agent, "hello", session=encrypted, run_config=NO_TRACING)
            raw = await everything(memory)
            plain = await encrypted.get_items(limit=10_000)
        assert all("payload" in item for item in raw)  # everything at rest is encrypted
        assert [item.get("type", "message") for item in plain][-1] == "compaction"
        assert plain[:4] == OLD[:4]
