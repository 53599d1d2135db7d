"""Switching AGENT_MEMORY_BACKEND on a deployment: each thread's memory is rebuilt from the
log on its next turn in the new backend, never mixed with what the other backend held."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from app.config import Settings
from app.memory.summary import item_text
from tests.conftest import start_app
from tests.factories import create_thread, logged, memory_items, thread_row
from tests.sse import reply_text, send


def conversation(items: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """Memory as the log shows it: user messages, and each turn's last assistant message."""
    out: list[tuple[str, str]] = []
    for item in items:
        if item.get("role") == "user":
            out.append(("user", item_text(item["content"])))
        elif item.get("role") == "assistant" and item.get("type", "message") == "message":
            text = ("assistant", item_text(item["content"]))
            out[-1:] = [text] if out and out[-1][0] == "assistant" else [*out[-1:], text]
    return out


class TestSwitchingMemoryBackends:
    async def test_memory_equals_the_log_after_every_switch(
        self, settings_factory: Callable[..., Settings], alice: dict[str, str]
    ) -> None:
        thread_id: str | None = None
        plan = [("sqlite", "one"), ("postgres", "two"), ("sqlite", "three"), ("postgres", "4")]
        for backend, text in plan:
            settings = settings_factory(AGENT_MEMORY_BACKEND=backend)
            async with start_app(settings) as running, running.client() as client:
                if thread_id is None:
                    thread_id = await create_thread(client, alice)
                reply = reply_text(await send(client, thread_id, f"add task {text}", alice))
                log = await logged(client, alice, thread_id)
                memory = await memory_items(running, alice, thread_id)
                row = await thread_row(running.sessionmaker, thread_id)
                user_id = await running.user_id(alice)
                async with running.memory_store.open(user_id, uuid.UUID(thread_id)) as opened:
                    mark = await opened.read_mark()
            assert log[-1] == ("assistant", reply), backend
            assert conversation(memory) == log, backend
            assert mark.generation == row.memory_generation, backend
        assert thread_id is not None
        assert len(log) == 8
