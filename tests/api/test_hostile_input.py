"""Hostile and malformed input: bounded bodies, one error shape, nothing half-written."""

from __future__ import annotations

import logging

import httpx
import pytest

from tests.factories import create_thread
from tests.sse import send


class TestBodyLimit:
    @pytest.fixture
    def settings(self, settings_factory):
        return settings_factory(MAX_REQUEST_BYTES=4096)

    async def test_declared_oversized_body_is_413_json(self, client, alice) -> None:
        thread_id = await create_thread(client, alice)
        response = await client.post(
            f"/api/threads/{thread_id}/messages", json={"text": "x" * 10_000}, headers=alice
        )
        assert response.status_code == 413
        assert response.json() == {
            "error": "PayloadTooLargeError",
            "detail": "Request body is over 4096 bytes",
        }
        assert (await client.get(f"/api/threads/{thread_id}", headers=alice)).json()[
            "message_count"
        ] == 0

    async def test_streamed_oversized_body_is_413_json(self, client, alice) -> None:
        thread_id = await create_thread(client, alice)

        async def chunks():
            yield b'{"text": "'
            for _ in range(10):
                yield b"y" * 1000
            yield b'"}'

        response = await client.post(
            f"/api/threads/{thread_id}/messages",
            content=chunks(),
            headers={**alice, "content-type": "application/json"},
        )
        assert response.status_code == 413
        assert response.json()["error"] == "PayloadTooLargeError"


class TestErrorShape:
    @pytest.mark.parametrize(
        ("method", "path", "body"),
        [
            ("POST", "/api/threads", {"title": 5}),
            ("POST", "/api/threads", [1, 2]),
            ("GET", "/api/threads?limit=abc", None),
            ("GET", "/api/threads/nope", None),
            ("GET", "/api/nowhere", None),
            ("PUT", "/api/threads", None),
        ],
    )
    async def test_every_error_has_error_and_detail(
        self, client, alice, method, path, body
    ) -> None:
        response = await client.request(method, path, json=body, headers=alice)
        assert 400 <= response.status_code < 500
        payload = response.json()
        assert isinstance(payload["error"], str)
        assert isinstance(payload["detail"], str)
        assert payload["detail"]


class TestLogsHoldNoContent:
    async def test_message_text_and_tokens_never_reach_the_logs(
        self, client, alice, caplog
    ) -> None:
        caplog.set_level(logging.DEBUG)
        secret_text = "remember that my password is hunter2-0451"
        thread_id = await create_thread(client, alice)
        await send(client, thread_id, secret_text, alice)
        await send(client, thread_id, "what did I ask you to remember?", alice)
        logged = "\n".join(r.getMessage() for r in caplog.records)
        assert "hunter2" not in logged
        assert alice["Authorization"].split()[1] not in logged


class TestMetrics:
    async def test_metrics_expose_turns_requests_and_memory(self, client, alice) -> None:
        thread_id = await create_thread(client, alice)
        await send(client, thread_id, "add task measure me", alice)
        text = (await client.get("/metrics")).text
        assert 'threadkeeper_turns_total{status="completed"}' in text
        assert 'route="/api/threads/{thread_id}/messages"' in text
        assert "threadkeeper_memory_read_seconds_count" in text
        assert "threadkeeper_memory_active_sessions" in text
        assert "threadkeeper_memory_bytes" in text
        assert "threadkeeper_event_loop_lag_seconds_bucket" in text
        sample = next(
            line
            for line in text.splitlines()
            if line.startswith("threadkeeper_memory_active_sessions ")
        )
        assert float(sample.split()[1]) >= 1


# A NUL byte (PostgreSQL text cannot hold it) and a lone surrogate (not encodable as UTF-8):
# each used to become a 500, one of them plain text with the connection closed.
UNSTORABLE = pytest.mark.parametrize(
    ("raw", "problem"),
    [("a\\u0000b", "NUL"), ("a\\ud800b", "surrogate"), ("a\\udcffb", "surrogate")],
)


def _raw_json(template: str, raw: str) -> bytes:
    """A JSON body with `raw` pasted in as written (json.dumps would refuse a lone surrogate)."""
    return template.replace("RAW", raw).encode()


class TestUnstorableText:
    @UNSTORABLE
    async def test_thread_title_is_422_naming_the_field(self, client, alice, raw, problem) -> None:
        thread_id = await create_thread(client, alice)
        headers = {**alice, "content-type": "application/json"}
        for method, path in (("POST", "/api/threads"), ("PATCH", f"/api/threads/{thread_id}")):
            body = _raw_json('{"title": "RAW"}', raw)
            response = await client.request(method, path, content=body, headers=headers)
            assert response.status_code == 422, response.text
            assert response.json()["error"] == "ValidationError"
            assert response.json()["detail"].startswith("title: ")
            assert problem in response.json()["detail"]
        listed = (await client.get("/api/threads", headers=alice)).json()["data"]
        assert [t["id"] for t in listed] == [thread_id]

    @UNSTORABLE
    @pytest.mark.parametrize("accept", ["text/event-stream", "application/json"])
    async def test_message_text_is_422_and_nothing_is_written(
        self, client, alice, raw, problem, accept
    ) -> None:
        thread_id = await create_thread(client, alice)
        response = await client.post(
            f"/api/threads/{thread_id}/messages",
            content=_raw_json('{"text": "RAW"}', raw),
            headers={**alice, "content-type": "application/json", "accept": accept},
        )
        assert response.status_code == 422, response.text
        assert response.json()["detail"].startswith("text: ")
        assert problem in response.json()["detail"]
        thread = (await client.get(f"/api/threads/{thread_id}", headers=alice)).json()
        assert thread["message_count"] == 0

    @pytest.mark.parametrize("subject", ["a\x00b", "a\ud800b"])
    async def test_token_subject_is_401(self, client, tokens, subject) -> None:
        token = tokens.issue(subject)
        response = await client.get("/api/threads", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401
        assert response.json()["error"] == "UnauthorizedError"

    async def test_query_parameter_is_422(self, client, auth_for) -> None:
        response = await client.get(
            "/api/admin/maintenance-runs?job=%00", headers=auth_for("ops", admin=True)
        )
        assert response.status_code == 422
        assert response.json()["detail"].startswith("query.job: ")


class TestLastResortErrors:
    async def test_an_unexpected_exception_answers_the_json_error_shape(
        self, settings, alice
    ) -> None:
        from tests.conftest import start_app

        async with start_app(settings) as running:

            @running.app.get("/api/boom")
            async def boom() -> None:
                raise ZeroDivisionError("internals that must not leak")

            # Like a real server: the app's exception is logged, the client gets the response.
            transport = httpx.ASGITransport(app=running.asgi, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                response = await client.get("/api/boom", headers=alice)
        assert response.status_code == 500
        assert response.headers["content-type"] == "application/json"
        assert response.json() == {"error": "InternalError", "detail": "Internal error"}


class TestRouteLabels:
    async def test_route_labels_are_the_route_templates(self, client, auth_for) -> None:
        # A job named "admin": rebuilding the label from the path once gave /api/a{name}/...
        admin = auth_for("ops", admin=True)
        assert (await client.post("/api/admin/jobs/admin/run", headers=admin)).status_code == 404
        text = (await client.get("/metrics")).text
        assert 'method="POST",route="/api/admin/jobs/{name}/run",status="404"' in text
        assert "/api/a{name}" not in text


class TestUnstorableTaskText:
    @UNSTORABLE
    async def test_task_title_and_notes_are_422(self, client, alice, raw, problem) -> None:
        del problem
        headers = {**alice, "content-type": "application/json"}
        for field, body in (
            ("title", '{"title": "RAW"}'),
            ("notes", '{"title": "ok", "notes": "RAW"}'),
        ):
            response = await client.post(
                "/api/tasks", content=_raw_json(body, raw), headers=headers
            )
            assert response.status_code == 422, response.text
            # pydantic's own string check may refuse a lone surrogate first: either names it.
            assert response.json()["detail"].startswith(f"{field}: ")
        assert (await client.get("/api/tasks", headers=alice)).json()["data"] == []
