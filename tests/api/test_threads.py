"""Thread endpoints through HTTP: success and failure paths."""

from __future__ import annotations

import uuid

import httpx
import pytest

from app.config import Settings


async def post_thread(
    client: httpx.AsyncClient, headers: dict[str, str], title: str | None = None
) -> dict:
    body = {} if title is None else {"title": title}
    response = await client.post("/api/threads", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


class TestCreateThread:
    async def test_creates_a_titled_thread(self, client, alice) -> None:
        thread = await post_thread(client, alice, "Groceries")
        assert thread["title"] == "Groceries"
        assert thread["message_count"] == 0
        uuid.UUID(thread["id"])

    async def test_body_is_optional_and_title_defaults_to_none(self, client, alice) -> None:
        response = await client.post("/api/threads", headers=alice)
        assert response.status_code == 201
        assert response.json()["title"] is None

    async def test_over_long_title_is_422_naming_the_limit(
        self, client, alice, settings: Settings
    ) -> None:
        title = "x" * (settings.MAX_TITLE_CHARS + 1)
        response = await client.post("/api/threads", json={"title": title}, headers=alice)
        assert response.status_code == 422
        body = response.json()
        assert body["error"] == "UnprocessableError"
        assert str(settings.MAX_TITLE_CHARS) in body["detail"]

    async def test_unknown_fields_and_bad_json_are_422(self, client, alice) -> None:
        response = await client.post("/api/threads", json={"titel": "typo"}, headers=alice)
        assert response.status_code == 422
        assert "titel" in response.json()["detail"]
        response = await client.post(
            "/api/threads",
            content=b"{not json",
            headers={**alice, "content-type": "application/json"},
        )
        assert response.status_code == 422
        assert response.json()["error"] == "ValidationError"


class TestReadRenameDelete:
    async def test_get_returns_the_thread(self, client, alice) -> None:
        thread = await post_thread(client, alice, "Plans")
        response = await client.get(f"/api/threads/{thread['id']}", headers=alice)
        assert response.status_code == 200
        assert response.json() == thread

    async def test_rename_changes_title_and_blank_clears_it(self, client, alice) -> None:
        thread = await post_thread(client, alice, "Old")
        response = await client.patch(
            f"/api/threads/{thread['id']}", json={"title": " New "}, headers=alice
        )
        assert response.status_code == 200
        assert response.json()["title"] == "New"
        response = await client.patch(
            f"/api/threads/{thread['id']}", json={"title": "  "}, headers=alice
        )
        assert response.json()["title"] is None
        assert (await client.get(f"/api/threads/{thread['id']}", headers=alice)).json()[
            "title"
        ] is None

    async def test_rename_rejects_over_long_title(self, client, alice, settings) -> None:
        thread = await post_thread(client, alice, "Old")
        response = await client.patch(
            f"/api/threads/{thread['id']}",
            json={"title": "y" * (settings.MAX_TITLE_CHARS + 5)},
            headers=alice,
        )
        assert response.status_code == 422
        assert (await client.get(f"/api/threads/{thread['id']}", headers=alice)).json()[
            "title"
        ] == "Old"

    async def test_delete_removes_thread_and_memory_file(self, client, alice, running) -> None:
        thread = await post_thread(client, alice, "Temp")
        me = await running.user_id(alice)
        store = running.memory_store
        async with store.open(me, uuid.UUID(thread["id"])) as memory:
            await memory.add_items([{"role": "user", "content": "hi"}])
        path = store.path_for(me, uuid.UUID(thread["id"]))
        assert path.exists()
        response = await client.delete(f"/api/threads/{thread['id']}", headers=alice)
        assert response.status_code == 204
        assert not path.exists()
        assert not path.with_name(path.name + "-wal").exists()
        assert (await client.get(f"/api/threads/{thread['id']}", headers=alice)).status_code == 404
        assert (
            await client.delete(f"/api/threads/{thread['id']}", headers=alice)
        ).status_code == 404

    @pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
    async def test_unknown_thread_is_404_and_malformed_id_is_422(
        self, client, alice, method
    ) -> None:
        kwargs = {"json": {"title": "t"}} if method == "PATCH" else {}
        missing = await client.request(
            method, f"/api/threads/{uuid.uuid4()}", headers=alice, **kwargs
        )
        assert missing.status_code == 404
        assert missing.json()["error"] == "NotFoundError"
        malformed = await client.request(method, "/api/threads/not-a-uuid", headers=alice, **kwargs)
        assert malformed.status_code == 422


class TestListThreads:
    async def test_most_recent_activity_first(self, client, auth_for) -> None:
        carol = auth_for("carol")
        first = await post_thread(client, carol, "first")
        second = await post_thread(client, carol, "second")
        await client.patch(f"/api/threads/{first['id']}", json={"title": "renamed"}, headers=carol)
        listed = (await client.get("/api/threads", headers=carol)).json()
        # Renaming is not activity: order follows last_activity_at, newest first.
        assert [t["id"] for t in listed["data"]] == [second["id"], first["id"]]
        assert listed["has_more"] is False

    async def test_pagination_has_no_duplicates_or_gaps_under_inserts(
        self, client, auth_for
    ) -> None:
        dave = auth_for("dave")
        created = [await post_thread(client, dave, f"t{n}") for n in range(7)]
        seen: list[str] = []
        after = None
        while True:
            params = {"limit": 3, **({"after": after} if after else {})}
            page = (await client.get("/api/threads", params=params, headers=dave)).json()
            seen += [t["id"] for t in page["data"]]
            # A thread created mid-listing lands before the cursor: it must not shift pages.
            await post_thread(client, dave, "inserted meanwhile")
            if not page["has_more"]:
                break
            after = page["after"]
        assert seen == [t["id"] for t in reversed(created)]

    async def test_limit_bounds_and_unknown_cursor(self, client, alice) -> None:
        assert (await client.get("/api/threads?limit=0", headers=alice)).status_code == 422
        assert (await client.get("/api/threads?limit=101", headers=alice)).status_code == 422
        response = await client.get(f"/api/threads?after={uuid.uuid4()}", headers=alice)
        assert response.status_code == 400
        assert "cursor" in response.json()["detail"]
