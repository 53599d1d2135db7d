"""Exact round-trips, side by side with the SDK's stock `SQLiteSession`.

Each case was found by running the SDK's own session tests and probes against both classes:
what the stock class stores and returns, ours must too (lone surrogates, NaN and infinities,
integers beyond 64 bits, rows the stock class wrote), and damaged rows are skipped the same
way (a limited read widens its window; `pop_item` moves on to the next usable item).
"""

from __future__ import annotations

import math
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import pytest

from app.memory import AgentMemoryStore
from app.memory.summary import item_text
from tests.conftest import start_app
from tests.factories import create_thread, memory_items
from tests.memory.test_store import OpenMemory, open_ours, open_stock
from tests.model_server import Text
from tests.sse import reply_text, send

BACKENDS = pytest.mark.parametrize("open_memory", [open_ours, open_stock], ids=["ours", "stock"])


def user_item(text: str, **extra: Any) -> dict[str, Any]:
    return {"role": "user", "content": text, **extra}


def insert_raw(root: Path, user_id: uuid.UUID, thread_id: uuid.UUID, *rows: str) -> None:
    """Append rows exactly as given (damaged ones too), as another writer could."""
    path = AgentMemoryStore(root).path_for(user_id, thread_id)
    with sqlite3.connect(path) as conn:
        conn.executemany(
            "INSERT INTO agent_messages (session_id, message_data) VALUES (?, ?)",
            [(str(thread_id), row) for row in rows],
        )


@BACKENDS
class TestExactValues:
    async def test_a_lone_surrogate_is_stored_and_returned(
        self, tmp_path, open_memory: OpenMemory
    ) -> None:
        item = user_item("bytes from surrogateescape: \udcff and \ud800 alone")
        async with open_memory(tmp_path, uuid.uuid4(), uuid.uuid4()) as memory:
            await memory.add_items([item])
            assert await memory.get_items() == [item]
            assert await memory.pop_item() == item

    async def test_nan_and_infinities_come_back_as_themselves(
        self, tmp_path, open_memory: OpenMemory
    ) -> None:
        item = user_item("scores", logprobs=[math.nan, math.inf, -math.inf, 0.5])
        async with open_memory(tmp_path, uuid.uuid4(), uuid.uuid4()) as memory:
            await memory.add_items([item, user_item("after")])
            reads = [await memory.get_items(), await memory.get_items(limit=2)]
            popped = [await memory.pop_item(), await memory.pop_item()]
        for values in [read[0]["logprobs"] for read in reads] + [popped[1]["logprobs"]]:
            assert math.isnan(values[0])
            assert values[1:] == [math.inf, -math.inf, 0.5]

    async def test_integers_beyond_64_bits_stay_exact_integers(
        self, tmp_path, open_memory: OpenMemory
    ) -> None:
        big = [2**70, -(2**63) - 1, 2**64, 18446744073709551615, -(2**200)]
        item = user_item("ids", values=big, text_with_digits="order 12345678901234567890")
        async with open_memory(tmp_path, uuid.uuid4(), uuid.uuid4()) as memory:
            await memory.add_items([item])
            for read in (await memory.get_items(), await memory.get_items(limit=1)):
                assert read == [item]
                assert all(type(v) is int for v in read[0]["values"])

    async def test_rows_the_stock_class_wrote_are_read_by_both(
        self, tmp_path, open_memory: OpenMemory
    ) -> None:
        user_id, thread_id = uuid.uuid4(), uuid.uuid4()
        written = [
            user_item("nan", score=math.inf),
            user_item("surrogate \udcff"),
            user_item("plain"),
        ]
        async with open_stock(tmp_path, user_id, thread_id) as stock:
            await stock.add_items(written)
        async with open_memory(tmp_path, user_id, thread_id) as memory:
            assert await memory.get_items() == written
            assert await memory.get_items(limit=2) == written[1:]


@BACKENDS
class TestDamagedRows:
    async def test_a_limited_read_widens_past_damaged_rows(
        self, tmp_path, open_memory: OpenMemory
    ) -> None:
        user_id, thread_id = uuid.uuid4(), uuid.uuid4()
        async with open_memory(tmp_path, user_id, thread_id) as memory:
            await memory.add_items([user_item(str(n)) for n in range(5)])
        insert_raw(tmp_path, user_id, thread_id, "{not json", '{"role": "user", "content": "5"}')
        insert_raw(tmp_path, user_id, thread_id, "also not json")
        async with open_memory(tmp_path, user_id, thread_id) as memory:
            assert [i["content"] for i in await memory.get_items(limit=3)] == ["3", "4", "5"]
            assert [i["content"] for i in await memory.get_items(limit=1)] == ["5"]
            assert len(await memory.get_items(limit=50)) == 6
            assert len(await memory.get_items()) == 6

    async def test_pop_skips_damaged_newest_rows_to_the_next_item(
        self, tmp_path, open_memory: OpenMemory
    ) -> None:
        user_id, thread_id = uuid.uuid4(), uuid.uuid4()
        async with open_memory(tmp_path, user_id, thread_id) as memory:
            await memory.add_items([user_item("a"), user_item("b")])
        insert_raw(tmp_path, user_id, thread_id, "{damaged", "[1, 2")
        async with open_memory(tmp_path, user_id, thread_id) as memory:
            assert await memory.pop_item() == user_item("b")
            assert await memory.get_items() == [user_item("a")]
            assert await memory.pop_item() == user_item("a")
            assert await memory.pop_item() is None
        with sqlite3.connect(AgentMemoryStore(tmp_path).path_for(user_id, thread_id)) as conn:
            assert conn.execute("SELECT count(*) FROM agent_messages").fetchone() == (0,)


class TestThroughTheService:
    async def test_a_reply_holding_a_lone_surrogate_is_saved_in_both_stores(
        self, model_server, settings_factory, alice
    ) -> None:
        """Memory keeps the model's text exactly; the log, which cannot, has U+FFFD."""
        settings = settings_factory(
            MODEL_PROVIDER="openai",
            OPENAI_BASE_URL=model_server.base_url,
            OPENAI_API="chat_completions",
        )
        model_server.enqueue(Text("an odd byte \udcff here"))
        async with start_app(settings) as running, running.client() as client:
            thread_id = await create_thread(client, alice)
            events = await send(client, thread_id, "hello", alice)
            items = await memory_items(running, alice, thread_id)
        assert [e.event for e in events][-2:] == ["assistant_message", "done"]
        assert reply_text(events) == "an odd byte \ufffd here"
        assert item_text(items[-1]["content"]) == "an odd byte \udcff here"
