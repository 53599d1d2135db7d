"""Hostile and malformed input: bounded bodies, one error shape, nothing half-written."""

from __future__ import annotations

import logging

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
        sample = next(
            line
            for line in text.splitlines()
            if line.startswith("threadkeeper_memory_active_sessions ")
        )
        assert float(sample.split()[1]) >= 1
