"""Exports: a thread as JSON or Markdown, the whole account as one streamed JSON document."""

from __future__ import annotations

import json

import pytest

from app.assistant.offline_grammar import FALLBACK_TEXT
from app.models.export import EXPORT_VERSION, ExportDocument
from app.services import export
from tests.factories import add_messages, create_thread, thread_with_turns


async def export_json(client, headers, url: str) -> dict:
    response = await client.get(url, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    document = response.json()
    ExportDocument.model_validate(document)  # the documented, versioned schema
    return document


def conversation(thread: dict) -> list[tuple[str, str, list[str]]]:
    return [
        (m["role"], m["content"], [c["name"] for c in m["tool_calls"]]) for m in thread["messages"]
    ]


class TestThreadExport:
    async def test_json_holds_the_log_with_tool_calls(self, client, alice, tokens) -> None:
        thread_id = await thread_with_turns(client, alice, "add task buy milk", "hello")
        changes = {"title": "Errands", "status": "archived", "metadata": {"pinned": True}}
        await client.patch(f"/api/threads/{thread_id}", json=changes, headers=alice)
        response = await client.get(f"/api/threads/{thread_id}/export", headers=alice)
        assert response.headers["content-disposition"] == (
            f'attachment; filename="thread-{thread_id}.json"'
        )
        document = await export_json(client, alice, f"/api/threads/{thread_id}/export")
        assert (document["format"], document["version"], document["scope"]) == (
            "threadkeeper.export",
            EXPORT_VERSION,
            "thread",
        )
        assert document["user"]["subject"] == tokens.verify(alice["Authorization"][7:]).subject
        (thread,) = document["threads"]
        assert (thread["id"], thread["title"], thread["message_count"]) == (thread_id, "Errands", 4)
        assert (thread["status"], thread["agent"], thread["metadata"]) == (
            "archived",
            "todo",
            {"pinned": True},
        )
        assert conversation(thread) == [
            ("user", "add task buy milk", []),
            ("assistant", 'Added "buy milk" to your tasks.', ["add_task"]),
            ("user", "hello", []),
            ("assistant", FALLBACK_TEXT, []),
        ]
        call = thread["messages"][1]["tool_calls"][0]
        assert json.loads(call["arguments"]) == {"title": "buy milk"}
        assert json.loads(call["output"])["title"] == "buy milk"
        # The rest of the metadata stays; tool calls are not repeated inside it.
        assert set(thread["messages"][1]["metadata"]) == {"turn_id", "usage", "model", "agent"}
        assert document["tasks"] == []  # tasks belong to the account export

    async def test_markdown_reads_as_a_conversation(self, client, alice) -> None:
        thread_id = await thread_with_turns(client, alice, "add task buy `oat` milk")
        await client.patch(f"/api/threads/{thread_id}", json={"title": "Errands"}, headers=alice)
        response = await client.get(
            f"/api/threads/{thread_id}/export", params={"format": "markdown"}, headers=alice
        )
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/markdown; charset=utf-8"
        assert response.headers["content-disposition"] == (
            f'attachment; filename="thread-{thread_id}.md"'
        )
        text = response.text
        assert text.startswith("# Errands\n\n*Exported from Threadkeeper by ")
        assert f"Thread `{thread_id}`" in text
        sections = text.split("\n---\n\n")[1:]
        assert [s.split(" · ")[0] for s in sections] == ["### You", "### Assistant"]
        assert sections[0].endswith("\n\nadd task buy `oat` milk\n")
        assert '- **add_task** ``{"title":"buy `oat` milk"}`` → ``{"id": ' in sections[1]
        assert sections[1].endswith('\n\nAdded "buy `oat` milk" to your tasks.\n')

    async def test_an_unknown_format_is_422_naming_it(self, client, alice) -> None:
        thread_id = await create_thread(client, alice)
        response = await client.get(
            f"/api/threads/{thread_id}/export", params={"format": "xml"}, headers=alice
        )
        assert response.status_code == 422
        assert response.json()["detail"] == "query.format: Input should be 'json' or 'markdown'"


class TestAccountExport:
    async def test_every_thread_message_tool_call_and_task_of_the_caller(
        self, client, alice, bob
    ) -> None:
        first = await thread_with_turns(client, alice, "add task call mom")
        second = await create_thread(client, alice, "Empty")
        await client.post("/api/tasks", json={"title": "water plants"}, headers=alice)
        await thread_with_turns(client, bob, "add task bob's secret")
        response = await client.get("/api/me/export", headers=alice)
        assert response.headers["content-disposition"].startswith(
            'attachment; filename="threadkeeper-export-'
        )
        document = await export_json(client, alice, "/api/me/export")
        assert document["scope"] == "account"
        assert [t["id"] for t in document["threads"]] == [first, second]
        assert conversation(document["threads"][0]) == [
            ("user", "add task call mom", []),
            ("assistant", 'Added "call mom" to your tasks.', ["add_task"]),
        ]
        assert document["threads"][1]["messages"] == []
        assert [(t["title"], t["done"]) for t in document["tasks"]] == [
            ("call mom", False),
            ("water plants", False),
        ]
        assert "secret" not in response.text

    async def test_a_new_account_exports_an_empty_document(self, client, alice) -> None:
        document = await export_json(client, alice, "/api/me/export")
        assert (document["threads"], document["tasks"]) == ([], [])

    @pytest.mark.parametrize("messages", [4, 5, 6])
    async def test_batches_join_into_one_valid_document(
        self, client, alice, running, monkeypatch, messages
    ) -> None:
        # Small batches, so every boundary (an exact multiple included) is crossed.
        monkeypatch.setattr(export, "THREAD_BATCH", 2)
        monkeypatch.setattr(export, "MESSAGE_BATCH", 2)
        monkeypatch.setattr(export, "TASK_BATCH", 2)
        threads = [await create_thread(client, alice, f"t{i}") for i in range(5)]
        texts = [f"m{i}" for i in range(messages)]
        # A long thread, read page by page; then short ones, read two threads per query.
        logs = [texts, ["b"], ["c"], ["d", "e"], []]
        for thread_id, log in zip(threads, logs, strict=True):
            await add_messages(running.sessionmaker, thread_id, *log)
        for i in range(messages):
            await client.post("/api/tasks", json={"title": f"task {i}"}, headers=alice)
        document = await export_json(client, alice, "/api/me/export")
        assert [t["id"] for t in document["threads"]] == threads
        assert [[m["content"] for m in t["messages"]] for t in document["threads"]] == logs
        assert [t["title"] for t in document["tasks"]] == [f"task {i}" for i in range(messages)]
        one = await export_json(client, alice, f"/api/threads/{threads[0]}/export")
        assert [m["content"] for m in one["threads"][0]["messages"]] == texts
