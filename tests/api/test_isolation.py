"""Users never see each other: another user's thread is a 404 on every endpoint.

The endpoints are not listed by hand: every operation of the app's own OpenAPI schema whose
path has a `{thread_id}` is tried (admin endpoints aside: they are for operators and refuse
other tokens with 403), so an endpoint is covered the day it is added.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from app.main import create_app

# Always among them; a check that the derivation below finds what it should.
KNOWN = {
    ("GET", "/api/threads/{thread_id}"),
    ("PATCH", "/api/threads/{thread_id}"),
    ("DELETE", "/api/threads/{thread_id}"),
    ("GET", "/api/threads/{thread_id}/messages"),
    ("POST", "/api/threads/{thread_id}/messages"),
    ("GET", "/api/threads/{thread_id}/turns/{turn_id}/events"),
}


def _resolve(schema: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _example(schema: dict[str, Any], spec: dict[str, Any]) -> Any:
    """A small valid value for a JSON schema (the request must reach the ownership check)."""
    schema = _resolve(schema, spec)
    if "anyOf" in schema:
        return _example(next(s for s in schema["anyOf"] if s.get("type") != "null"), spec)
    kind = schema.get("type")
    if kind == "object":
        return {
            name: _example(prop, spec)
            for name, prop in schema.get("properties", {}).items()
            if name in schema.get("required", [])
        }
    if "enum" in schema:
        return schema["enum"][0]
    return {"string": "hello from bob", "integer": 1, "number": 1, "boolean": False}.get(
        str(kind), "hello from bob"
    )


def thread_operations() -> list[tuple[str, str, Any]]:
    spec = create_app().openapi()
    found = []
    for path, operations in spec["paths"].items():
        if "{thread_id}" not in path or path.startswith("/api/admin"):
            continue
        for method, operation in operations.items():
            body_schema = (
                operation.get("requestBody", {})
                .get("content", {})
                .get("application/json", {})
                .get("schema")
            )
            body = None if body_schema is None else _example(body_schema, spec)
            found.append((method.upper(), path, body))
    return sorted(found, key=lambda op: (op[1], op[0]))


OPERATIONS = thread_operations()


class TestIsolation:
    def test_every_known_thread_endpoint_is_derived(self) -> None:
        assert {(method, path) for method, path, _ in OPERATIONS} >= KNOWN

    @pytest.mark.parametrize(("method", "path", "body"), OPERATIONS)
    async def test_other_users_thread_is_404_and_untouched(
        self, client, alice, bob, method, path, body
    ) -> None:
        thread = (
            await client.post("/api/threads", json={"title": "alice's"}, headers=alice)
        ).json()
        others = {
            name: str(uuid.uuid4())
            for name in ("turn_id", "message_id", "item_id", "task_id")
            if "{" + name + "}" in path
        }
        url = path.format(thread_id=thread["id"], **others)
        response = await client.request(method, url, json=body, headers=bob)
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


def user_operations() -> list[tuple[str, str]]:
    """Every operation on the caller's own account: `/api/me...` and `/api/search`."""
    spec = create_app().openapi()
    return sorted(
        (method.upper(), path)
        for path, operations in spec["paths"].items()
        if path.startswith(("/api/me", "/api/search"))
        for method in operations
    )


USER_OPERATIONS = user_operations()


class TestPerUserEndpoints:
    """Endpoints without a thread in the path act on the caller only, whoever else exists."""

    def test_every_known_per_user_endpoint_is_derived(self) -> None:
        assert set(USER_OPERATIONS) >= {
            ("GET", "/api/search"),
            ("GET", "/api/me/export"),
            ("DELETE", "/api/me"),
        }

    @pytest.mark.parametrize(("method", "path"), USER_OPERATIONS)
    async def test_they_never_show_or_touch_another_users_data(
        self, client, alice, bob, running, method, path
    ) -> None:
        from tests.factories import add_messages, logged

        mine = (await client.post("/api/threads", json={"title": "apricot"}, headers=alice)).json()
        await add_messages(running.sessionmaker, mine["id"], "apricot jam recipe")
        await client.post("/api/tasks", json={"title": "apricot task"}, headers=alice)
        theirs = (await client.post("/api/threads", json={"title": "plum"}, headers=bob)).json()

        response = await client.request(method, path, params={"q": "apricot"}, headers=bob)

        assert response.status_code == 200, response.text
        assert mine["id"] not in response.text
        assert "apricot" not in response.text
        if path == "/api/me" and method == "DELETE":
            assert response.json()["threads"] == 1  # bob's own, not alice's
        elif path == "/api/me/export":
            assert [t["id"] for t in response.json()["threads"]] == [theirs["id"]]
        # Alice still has all of it.
        assert await logged(client, alice, mine["id"]) == [("user", "apricot jam recipe")]
        tasks = (await client.get("/api/tasks", headers=alice)).json()["data"]
        assert [t["title"] for t in tasks] == ["apricot task"]
        assert (await client.get(f"/api/threads/{mine['id']}", headers=alice)).status_code == 200
