"""Health probes."""

from __future__ import annotations

from app.api.health import _check_database
from app.db import create_engine


class TestHealth:
    async def test_live_needs_no_auth(self, client) -> None:
        response = await client.get("/health/live")
        assert response.status_code == 200
        assert response.json() == {"status": "ok"}

    async def test_ready_reports_each_component(self, client) -> None:
        response = await client.get("/health/ready")
        assert response.status_code == 200
        assert response.json() == {
            "status": "ok",
            "components": {"database": "ok", "memory_dir": "ok", "model_provider": "ok"},
            "informational": ["model_provider"],
        }

    async def test_unreachable_database_is_reported_not_raised(self) -> None:
        engine = create_engine("postgresql+psycopg://nobody@127.0.0.1:9/none", connect_timeout_s=1)
        try:
            assert (await _check_database(engine)).startswith("unavailable")
        finally:
            await engine.dispose()

    async def test_docs_and_openapi_are_public(self, client) -> None:
        assert (await client.get("/docs")).status_code == 200
        schema = (await client.get("/openapi.json")).json()
        assert "/api/threads/{thread_id}/messages" in schema["paths"]
