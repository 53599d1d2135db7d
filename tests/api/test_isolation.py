"""Users never see each other: another user's thread is a 404 on every endpoint."""

from __future__ import annotations

import pytest

# Every endpoint that takes a thread id. The chat turn's endpoints join this list.
THREAD_ENDPOINTS = [
    ("GET", "/api/threads/{id}", None),
    ("PATCH", "/api/threads/{id}", {"title": "hijacked"}),
    ("DELETE", "/api/threads/{id}", None),
    ("GET", "/api/threads/{id}/messages", None),
    ("POST", "/api/threads/{id}/messages", {"text": "hello from bob"}),
    ("GET", "/api/threads/{id}/turns/00000000-0000-4000-8000-000000000000/events", None),
]


class TestIsolation:
    @pytest.mark.parametrize(("method", "path", "body"), THREAD_ENDPOINTS)
    async def test_other_users_thread_is_404_and_untouched(
        self, client, alice, bob, method, path, body
    ) -> None:
        thread = (
            await client.post("/api/threads", json={"title": "alice's"}, headers=alice)
        ).json()
        response = await client.request(
            method, path.format(id=thread["id"]), json=body, headers=bob
        )
        assert response.status_code == 404
        assert response.json() == {
            "error": "NotFoundError",
            "detail": f"Thread {thread['id']} not found",
        }
        # Nothing changed for the owner.
        mine = await client.get(f"/api/threads/{thread['id']}", headers=alice)
        assert mine.status_code == 200
        assert mine.json()["title"] == "alice's"
        assert mine.json()["message_count"] == 0

    async def test_listing_never_shows_other_users_threads(self, client, alice, bob) -> None:
        mine = (await client.post("/api/threads", json={"title": "private"}, headers=alice)).json()
        theirs = (await client.post("/api/threads", json={"title": "bob's"}, headers=bob)).json()
        bob_ids = [t["id"] for t in (await client.get("/api/threads", headers=bob)).json()["data"]]
        assert bob_ids == [theirs["id"]]
        alice_ids = [
            t["id"] for t in (await client.get("/api/threads", headers=alice)).json()["data"]
        ]
        assert alice_ids == [mine["id"]]

    async def test_other_users_thread_is_not_a_valid_cursor(self, client, alice, bob) -> None:
        thread = (await client.post("/api/threads", headers=alice)).json()
        response = await client.get(f"/api/threads?after={thread['id']}", headers=bob)
        assert response.status_code == 400
