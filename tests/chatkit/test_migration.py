"""Rows written before the ChatKit migration (0009) are readable through ChatKit, and the
agent picks their thread up where it was."""

from __future__ import annotations

import uuid

from sqlalchemy import text
from sqlalchemy.engine import make_url

from app import schema
from app.auth import TokenService
from app.db import create_engine
from tests.chatkit.client import ChatKitClient, reply_text, texts
from tests.conftest import start_app
from tests.database import drop_database, recreate_database

BEFORE_CHATKIT = "0008_nodes"


async def write_old_rows(url: str, subject: str) -> tuple[uuid.UUID, uuid.UUID]:
    """A user's thread with one turn (a tool call) as 0006 stored it; memory expired."""
    user_id, thread_id, turn_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    tool_calls = (
        '[{"call_id": "c1", "name": "add_task", "arguments": "{\\"title\\":\\"milk\\"}", '
        '"output": "{\\"title\\": \\"milk\\"}"}]'
    )
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            for sql in (
                "INSERT INTO users (id, subject, created_at) VALUES (:u, :s, now())",
                "INSERT INTO threads (id, user_id, title, created_at, updated_at, "
                "last_activity_at, message_count, memory_state, memory_item_count, memory_bytes,"
                " memory_message_count, agent) VALUES (:t, :u, 'Old', now(), now(), now(), 2, "
                "'expired', 0, 0, 2, 'todo')",
                "INSERT INTO turns (id, thread_id, user_id, status, started_at, finished_at, "
                "input_tokens, output_tokens) VALUES (:turn, :t, :u, 'completed', now(), now(), 0, 0)",
                "INSERT INTO messages (id, thread_id, role, content, created_at, metadata, turn_id)"
                " VALUES (gen_random_uuid(), :t, 'user', 'add task milk', now() - interval '1 s',"
                " '{}', :turn)",
                "INSERT INTO messages (id, thread_id, role, content, created_at, metadata, turn_id)"
                " VALUES (gen_random_uuid(), :t, 'assistant', 'Added \"milk\" to your tasks.', "
                f"now(), jsonb_build_object('tool_calls', '{tool_calls}'::jsonb), :turn)",
            ):
                await conn.execute(
                    text(sql), {"u": user_id, "s": subject, "t": thread_id, "turn": turn_id}
                )
    finally:
        await engine.dispose()
    return thread_id, turn_id


class TestRowsFromBeforeChatKit:
    async def test_old_rows_read_as_chatkit_items_and_the_thread_goes_on(
        self, test_database, settings_factory
    ) -> None:
        name = f"{make_url(test_database.url).database}_chatkit_upgrade"[:63]
        recreate_database(test_database.admin_conninfo, name)
        url = test_database.sibling_url(name)
        try:
            engine = create_engine(url)
            await schema.upgrade(engine, BEFORE_CHATKIT)
            thread_id, turn_id = await write_old_rows(url, "old-timer")
            await schema.upgrade(engine)
            await engine.dispose()
            settings = settings_factory(DATABASE_URL=url)
            token = TokenService.from_settings(settings).issue("old-timer")
            async with start_app(settings) as running, running.client() as http:
                kit = ChatKitClient(http, {"Authorization": f"Bearer {token}"})
                items = await kit.all_items(str(thread_id))
                assert [i.type for i in items] == ["user_message", "workflow", "assistant_message"]
                assert texts([items[0], items[2]]) == [
                    ("user", "add task milk"),
                    ("assistant", 'Added "milk" to your tasks.'),
                ]
                assert items[1].id == f"tools_{turn_id.hex}"
                # Memory is rebuilt from the log, tool call included: the agent remembers.
                answer = await kit.send(str(thread_id), "what did I say first?")
                assert reply_text(answer) == 'You first said: "add task milk"'
                del running
        finally:
            drop_database(test_database.admin_conninfo, name)
