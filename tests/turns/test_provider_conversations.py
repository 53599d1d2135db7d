"""Turns through the app with AGENT_MEMORY_BACKEND=openai_conversations, on the scripted model
server (Responses API for the model, Conversations API for memory)."""

from __future__ import annotations

import uuid

import pytest
from sqlmodel import select

from app.config import ConfigError, load_settings
from app.models import Thread
from app.scheduler.jobs import reconcile
from tests.conftest import start_app
from tests.factories import create_thread, logged
from tests.model_server.server import ModelServer
from tests.sse import reply_text, send


def conversation_texts(server: ModelServer, conversation_id: str) -> list[tuple[str, str]]:
    """(role, text) of the messages the provider holds, oldest first."""
    conversation = server.state.conversations.get(conversation_id)
    assert conversation is not None
    return [
        (item["role"], item["content"][0]["text"])
        for item in conversation.items
        if item["type"] == "message"
    ]


async def bound(running, thread_id: str) -> tuple[str | None, str | None]:
    async with running.sessionmaker() as db:
        thread = await db.get(Thread, uuid.UUID(thread_id))
        assert thread is not None
        return thread.provider, thread.provider_conversation_id


@pytest.fixture
def conversation_settings(provider_settings):
    def _make(**overrides: object):
        return provider_settings(
            "responses", AGENT_MEMORY_BACKEND="openai_conversations", **overrides
        )

    return _make


class TestTurnsInAProviderConversation:
    async def test_turns_keep_memory_in_one_conversation_the_thread_names(
        self, conversation_settings, model_server, alice
    ) -> None:
        async with start_app(conversation_settings()) as running, running.client() as client:
            thread_id = await create_thread(client, alice)
            await send(client, thread_id, "remember that the build id is 42", alice)
            await send(client, thread_id, "add task ship it", alice)
            events = await send(client, thread_id, "what did I ask you to remember?", alice)
            provider, conversation_id = await bound(running, thread_id)
            log = await logged(client, alice, thread_id)
        assert reply_text(events) == "You asked me to remember: that the build id is 42."
        assert (provider, len(model_server.state.conversations)) == ("openai", 1)
        assert conversation_id is not None
        held = conversation_texts(model_server, conversation_id)
        assert [t for r, t in held if r == "user"] == [t for r, t in log if r == "user"]
        assert [t for r, t in held if r == "assistant"] == [t for r, t in log if r == "assistant"]
        items = model_server.state.conversations.get(conversation_id).items
        assert sum(1 for i in items if i["type"] == "function_call") == 1
        assert len(model_server.model_requests) == 4  # 3 turns, one with a tool call

    async def test_deleting_the_thread_deletes_its_conversation(
        self, conversation_settings, model_server, alice
    ) -> None:
        async with start_app(conversation_settings()) as running, running.client() as client:
            thread_id = await create_thread(client, alice)
            await send(client, thread_id, "help", alice)
            assert len(model_server.state.conversations) == 1
            response = await client.delete(f"/api/threads/{thread_id}", headers=alice)
            async with running.sessionmaker() as db:
                left = (
                    await db.exec(select(Thread).where(Thread.id == uuid.UUID(thread_id)))
                ).all()
        assert response.status_code == 204
        assert (len(model_server.state.conversations), left) == (0, [])


class TestLostConversation:
    async def lose_conversation(self, running, client, model_server, alice) -> tuple[str, str]:
        thread_id = await create_thread(client, alice)
        await send(client, thread_id, "remember that the build id is 42", alice)
        _, conversation_id = await bound(running, thread_id)
        assert conversation_id is not None
        model_server.state.conversations.delete(conversation_id)  # the provider forgot it
        return thread_id, conversation_id

    async def test_without_rebind_the_turn_fails_naming_the_setting(
        self, conversation_settings, model_server, alice
    ) -> None:
        async with start_app(conversation_settings()) as running, running.client() as client:
            thread_id, lost = await self.lose_conversation(running, client, model_server, alice)
            response = await client.post(
                f"/api/threads/{thread_id}/messages", json={"text": "still there?"}, headers=alice
            )
            again = await bound(running, thread_id)
        assert response.status_code == 409
        assert response.json()["error"] == "ProviderConversationLost"
        assert "FORCE_PROVIDER_SESSION_REBIND" in response.json()["detail"]
        assert again == ("openai", lost)
        assert len(model_server.state.conversations) == 0

    async def test_with_rebind_a_new_conversation_is_rebuilt_from_the_log(
        self, conversation_settings, model_server, alice
    ) -> None:
        settings = conversation_settings(FORCE_PROVIDER_SESSION_REBIND=True)
        async with start_app(settings) as running, running.client() as client:
            thread_id, lost = await self.lose_conversation(running, client, model_server, alice)
            events = await send(client, thread_id, "what did I ask you to remember?", alice)
            _, conversation_id = await bound(running, thread_id)
        assert reply_text(events) == "You asked me to remember: that the build id is 42."
        assert conversation_id not in (None, lost)
        assert len(model_server.state.conversations) == 1
        assert [t for r, t in conversation_texts(model_server, conversation_id) if r == "user"] == [
            "remember that the build id is 42",
            "what did I ask you to remember?",
        ]


class TestReconcileJob:
    @pytest.mark.parametrize(
        ("rebind", "reasons", "repaired"),
        [(False, {"provider conversation lost": 1}, 0), (True, {"missing": 1}, 1)],
    )
    async def test_a_lost_conversation_is_reported_or_rebuilt(
        self,
        conversation_settings,
        private_database,
        model_server,
        alice,
        rebind,
        reasons,
        repaired,
    ) -> None:
        settings = conversation_settings(
            DATABASE_URL=private_database, FORCE_PROVIDER_SESSION_REBIND=rebind
        )
        async with start_app(settings) as running, running.client() as client:
            thread_id = await create_thread(client, alice)
            await send(client, thread_id, "remember that the build id is 42", alice)
            _, lost = await bound(running, thread_id)
            assert lost is not None
            model_server.state.conversations.delete(lost)
            result = await reconcile(running.state["job_context"])
            _, now = await bound(running, thread_id)
        assert (result["reasons"], result["repaired"]) == (reasons, repaired)
        assert len(model_server.state.conversations) == repaired
        assert (now == lost) is not rebind


class TestSettings:
    def test_the_offline_model_cannot_hold_conversations(self) -> None:
        with pytest.raises(ConfigError) as caught:
            load_settings(
                AGENT_MEMORY_BACKEND="openai_conversations",
                MODEL_PROVIDER="offline",
                DATABASE_URL="postgresql://x@127.0.0.1/x",
            )
        message = str(caught.value)
        assert "AGENT_MEMORY_BACKEND=openai_conversations needs MODEL_PROVIDER=openai" in message
        assert "\n" not in message

    def test_chat_completions_cannot_replay_a_conversation(self) -> None:
        with pytest.raises(ConfigError, match="needs OPENAI_API=responses"):
            load_settings(
                AGENT_MEMORY_BACKEND="openai_conversations",
                MODEL_PROVIDER="openai",
                OPENAI_BASE_URL="http://127.0.0.1:8799/v1",
                OPENAI_API="chat_completions",
                DATABASE_URL="postgresql://x@127.0.0.1/x",
            )
