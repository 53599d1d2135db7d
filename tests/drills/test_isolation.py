"""Drill 5: isolation and authentication, against the real server over real HTTP.

Another user's thread is a 404 on every endpoint (in both reply formats), exactly like a thread
that does not exist, and leaves the owner's thread untouched; every kind of bad token is a 401
with the API's JSON error shape.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import jwt
import pytest

from tests.drills.conftest import ServerFactory
from tests.drills.harness import JWT_SECRET, ServerProcess, bearer
from tests.drills.turns import client_for, create_thread, stream_turn

JSON = {"Accept": "application/json"}
SSE = {"Accept": "text/event-stream"}

# (method, path, body, extra headers): every endpoint that takes a thread id.
THREAD_ENDPOINTS = {
    "get-thread": ("GET", "/api/threads/{id}", None, {}),
    "rename-thread": ("PATCH", "/api/threads/{id}", {"title": "hijacked"}, {}),
    "delete-thread": ("DELETE", "/api/threads/{id}", None, {}),
    "list-messages": ("GET", "/api/threads/{id}/messages", None, {}),
    "send-message-sse": ("POST", "/api/threads/{id}/messages", {"text": "list tasks"}, SSE),
    "send-message-json": ("POST", "/api/threads/{id}/messages", {"text": "list tasks"}, JSON),
    "export-thread": ("GET", "/api/threads/{id}/export", None, {}),
    "export-thread-markdown": ("GET", "/api/threads/{id}/export?format=markdown", None, {}),
}
AUTH_ENDPOINTS = {
    "list-threads": ("GET", "/api/threads", None, {}),
    "create-thread": ("POST", "/api/threads", {"title": "x"}, {}),
    "search": ("GET", "/api/search?q=pin", None, {}),
    "export-account": ("GET", "/api/me/export", None, {}),
    "erase-account": ("DELETE", "/api/me", None, {}),
    **THREAD_ENDPOINTS,
}


def _claims(**claims: object) -> dict[str, object]:
    return {k: v for k, v in claims.items() if v is not None}


def _hs256(claims: dict[str, object], secret: str = JWT_SECRET) -> str:
    return jwt.encode(claims, secret, algorithm="HS256")


def _unsigned(claims: dict[str, object]) -> str:
    def b64(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}."


def _bad_authorizations() -> dict[str, str | None]:
    """Authorization header values that must all be refused (None: no header at all)."""
    soon = int((datetime.now(UTC) + timedelta(minutes=10)).timestamp())
    past = int((datetime.now(UTC) - timedelta(minutes=1)).timestamp())
    return {
        "missing": None,
        "malformed": "Bearer not-a-jwt",
        "not-bearer-scheme": f"Basic {_hs256({'sub': 'eve', 'exp': soon})}",
        "expired": f"Bearer {_hs256({'sub': 'eve', 'exp': past})}",
        "wrong-signature": f"Bearer {_hs256({'sub': 'eve', 'exp': soon}, 'x' * 64)}",
        "alg-none": f"Bearer {_unsigned({'sub': 'eve', 'exp': soon})}",
        "no-sub": f"Bearer {_hs256(_claims(exp=soon))}",
        "no-exp": f"Bearer {_hs256(_claims(sub='eve'))}",
    }


BAD_AUTH = _bad_authorizations()


@dataclass(frozen=True)
class Fixture:
    server: ServerProcess
    alice: dict[str, str]
    bob: dict[str, str]
    alice_thread: str


@pytest.fixture(scope="module")
def isolation_server(server_factory: ServerFactory) -> Iterator[ServerProcess]:
    server = server_factory(workers=1)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
async def world(isolation_server: ServerProcess) -> AsyncIterator[Fixture]:
    run = uuid.uuid4().hex[:8]
    alice, bob = bearer(f"alice-{run}"), bearer(f"bob-{run}")
    async with client_for(isolation_server.base_url) as client:
        thread = await create_thread(client, alice, "alice's")
        outcome = await stream_turn(client, thread, "remember that the pin is 4321", alice)
        assert outcome.ok, outcome.describe()
    return Fixture(isolation_server, alice, bob, thread)


@pytest.fixture
async def http(isolation_server: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(isolation_server.base_url, timeout=30.0) as c:
        yield c


class TestOtherUsersThreads:
    @pytest.mark.drill
    @pytest.mark.parametrize("endpoint", THREAD_ENDPOINTS, ids=list(THREAD_ENDPOINTS))
    async def test_another_users_thread_is_404_like_a_missing_one_and_untouched(
        self, world: Fixture, http: httpx.AsyncClient, endpoint: str
    ) -> None:
        method, path, body, extra = THREAD_ENDPOINTS[endpoint]
        stolen = await http.request(
            method, path.format(id=world.alice_thread), json=body, headers=world.bob | extra
        )
        missing_id = str(uuid.uuid4())
        missing = await http.request(
            method, path.format(id=missing_id), json=body, headers=world.bob | extra
        )

        assert stolen.status_code == 404, stolen.text
        assert stolen.headers["content-type"].startswith("application/json")
        assert stolen.json() == {
            "error": "NotFoundError",
            "detail": f"Thread {world.alice_thread} not found",
        }
        assert missing.status_code == 404
        assert missing.json() == {
            "error": "NotFoundError",
            "detail": f"Thread {missing_id} not found",
        }

        owner_view = await http.get(f"/api/threads/{world.alice_thread}", headers=world.alice)
        assert owner_view.status_code == 200
        assert owner_view.json()["title"] == "alice's"
        assert owner_view.json()["message_count"] == 2
        log = await http.get(f"/api/threads/{world.alice_thread}/messages", headers=world.alice)
        assert [m["content"] for m in log.json()["data"]][0] == "remember that the pin is 4321"

    @pytest.mark.drill
    async def test_listing_shows_only_the_callers_threads(
        self, world: Fixture, http: httpx.AsyncClient
    ) -> None:
        listed = await http.get("/api/threads", headers=world.bob)
        assert listed.status_code == 200
        assert world.alice_thread not in [t["id"] for t in listed.json()["data"]]
        cursor = await http.get(f"/api/threads?after={world.alice_thread}", headers=world.bob)
        assert cursor.status_code in (400, 404), cursor.text


class TestTokens:
    @pytest.mark.drill
    @pytest.mark.parametrize("case", BAD_AUTH, ids=list(BAD_AUTH))
    @pytest.mark.parametrize("endpoint", AUTH_ENDPOINTS, ids=list(AUTH_ENDPOINTS))
    async def test_every_bad_token_is_401_with_a_json_error(
        self, world: Fixture, http: httpx.AsyncClient, endpoint: str, case: str
    ) -> None:
        method, path, body, extra = AUTH_ENDPOINTS[endpoint]
        authorization = BAD_AUTH[case]
        headers = dict(extra) | ({"Authorization": authorization} if authorization else {})

        response = await http.request(
            method, path.format(id=world.alice_thread), json=body, headers=headers
        )

        assert response.status_code == 401, f"{case} on {method} {path}: {response.text}"
        assert response.json()["error"] == "UnauthorizedError"
        assert response.json()["detail"]
        assert response.headers.get("www-authenticate", "").lower().startswith("bearer")

    @pytest.mark.drill
    async def test_a_valid_token_still_works_after_the_refusals(
        self, world: Fixture, http: httpx.AsyncClient
    ) -> None:
        mine = await http.get(f"/api/threads/{world.alice_thread}", headers=world.alice)
        assert mine.status_code == 200
        assert mine.json()["message_count"] == 2
