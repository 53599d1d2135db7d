"""Task endpoints: the agent's todo list over REST, scoped to the caller like threads."""

from __future__ import annotations

import uuid

import httpx
import pytest

from app.models.task import MAX_TASK_TITLE_CHARS
from tests.factories import create_thread
from tests.sse import send


async def create_task(
    client: httpx.AsyncClient, headers: dict[str, str], title: str, **fields: object
) -> dict:
    response = await client.post("/api/tasks", json={"title": title, **fields}, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


class TestCreateTask:
    async def test_creates_a_task(self, client, alice) -> None:
        task = await create_task(client, alice, "  buy milk  ", notes="2 litres")
        assert task["title"] == "buy milk"
        assert task["notes"] == "2 litres"
        assert task["done"] is False
        uuid.UUID(task["id"])

    @pytest.mark.parametrize(
        "body",
        [{}, {"title": ""}, {"title": "   "}, {"title": "x" * (MAX_TASK_TITLE_CHARS + 1)}],
    )
    async def test_invalid_title_is_422_naming_the_field(self, client, alice, body) -> None:
        response = await client.post("/api/tasks", json=body, headers=alice)
        assert response.status_code == 422
        error = response.json()
        assert error["error"] == "ValidationError"
        assert error["detail"].startswith("title:")

    async def test_unknown_field_is_422_naming_it(self, client, alice) -> None:
        response = await client.post(
            "/api/tasks", json={"title": "a", "due": "soon"}, headers=alice
        )
        assert response.status_code == 422
        assert "due" in response.json()["detail"]

    async def test_needs_a_token(self, client) -> None:
        assert (await client.post("/api/tasks", json={"title": "a"})).status_code == 401


class TestListTasks:
    async def test_oldest_first_with_pages(self, client, alice) -> None:
        titles = ["one", "two", "three"]
        for title in titles:
            await create_task(client, alice, title)
        first = (await client.get("/api/tasks?limit=2", headers=alice)).json()
        assert [t["title"] for t in first["data"]] == ["one", "two"]
        assert first["has_more"] is True
        rest = (
            await client.get(f"/api/tasks?limit=2&after={first['after']}", headers=alice)
        ).json()
        assert [t["title"] for t in rest["data"]] == ["three"]
        assert rest["has_more"] is False

    async def test_include_done_false_hides_done_tasks(self, client, alice) -> None:
        done = await create_task(client, alice, "filed")
        await create_task(client, alice, "open")
        await client.patch(f"/api/tasks/{done['id']}", json={"done": True}, headers=alice)
        page = (await client.get("/api/tasks?include_done=false", headers=alice)).json()
        assert [t["title"] for t in page["data"]] == ["open"]

    async def test_unknown_cursor_is_400(self, client, alice, bob) -> None:
        theirs = await create_task(client, bob, "bob's")
        response = await client.get(f"/api/tasks?after={theirs['id']}", headers=alice)
        assert response.status_code == 400

    async def test_tasks_the_agent_adds_are_listed(self, client, alice) -> None:
        thread_id = await create_thread(client, alice)
        await send(client, thread_id, "add task water the plants", alice)
        page = (await client.get("/api/tasks", headers=alice)).json()
        assert [t["title"] for t in page["data"]] == ["water the plants"]


class TestUpdateAndDelete:
    async def test_patch_changes_only_the_given_fields(self, client, alice) -> None:
        task = await create_task(client, alice, "call mom", notes="sunday")
        response = await client.patch(
            f"/api/tasks/{task['id']}", json={"done": True}, headers=alice
        )
        assert response.status_code == 200
        assert response.json() | {"updated_at": None} == task | {"done": True, "updated_at": None}
        renamed = await client.patch(
            f"/api/tasks/{task['id']}", json={"title": "call dad"}, headers=alice
        )
        assert renamed.json()["title"] == "call dad"
        assert renamed.json()["done"] is True

    async def test_patch_with_a_blank_title_is_422(self, client, alice) -> None:
        task = await create_task(client, alice, "keep me")
        response = await client.patch(
            f"/api/tasks/{task['id']}", json={"title": " "}, headers=alice
        )
        assert response.status_code == 422
        assert response.json()["detail"].startswith("title:")

    async def test_delete_then_gone(self, client, alice) -> None:
        task = await create_task(client, alice, "temporary")
        response = await client.delete(f"/api/tasks/{task['id']}", headers=alice)
        assert response.status_code == 204
        assert (await client.get(f"/api/tasks/{task['id']}", headers=alice)).status_code == 404

    @pytest.mark.parametrize(
        ("method", "body"), [("GET", None), ("PATCH", {"done": True}), ("DELETE", None)]
    )
    async def test_other_users_task_is_404_and_untouched(
        self, client, alice, bob, method, body
    ) -> None:
        task = await create_task(client, alice, "alice's")
        response = await client.request(method, f"/api/tasks/{task['id']}", json=body, headers=bob)
        assert response.status_code == 404
        assert response.json() == {
            "error": "NotFoundError",
            "detail": f"Task {task['id']} not found",
        }
        mine = await client.get(f"/api/tasks/{task['id']}", headers=alice)
        assert mine.json() == task
