"""Health probes."""

from __future__ import annotations

from app.api.health import _check_database
from app.assistant.provider import ProviderProbe
from app.db import create_engine
from tests.conftest import start_app


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


class TestModelProviderHealth:
    """The provider is reported at a glance and never makes the service unready."""

    async def ready(self, settings, *, calls: int = 1) -> list[dict]:
        async with start_app(settings) as running, running.client() as client:
            responses = [await client.get("/health/ready") for _ in range(calls)]
        assert {r.status_code for r in responses} == {200}
        return [r.json() for r in responses]

    async def test_a_provider_that_answers_and_lists_the_model_is_ok(
        self, provider_settings, model_server
    ) -> None:
        (body,) = await self.ready(provider_settings())
        assert body["components"]["model_provider"] == "ok"
        (request,) = model_server.requests
        assert (request.method, request.path) == ("GET", "/v1/models")

    async def test_it_is_asked_at_most_once_a_minute(self, provider_settings, model_server) -> None:
        await self.ready(provider_settings(), calls=3)
        assert [r.path for r in model_server.requests] == ["/v1/models"]

    async def test_an_outage_is_shown_while_the_service_stays_ready(
        self, provider_settings, model_server
    ) -> None:
        model_server.stop()
        (body,) = await self.ready(provider_settings())
        assert body["status"] == "ok"
        assert body["components"] == {
            "database": "ok",
            "memory_dir": "ok",
            "model_provider": "unavailable (APIConnectionError/ConnectError)",
        }

    async def test_a_rejected_key_names_the_setting(self, provider_settings, model_server) -> None:
        model_server.configure(api_key="sk-another-key")
        (body,) = await self.ready(provider_settings())
        assert body["components"]["model_provider"] == (
            "misconfigured: check OPENAI_API_KEY (HTTP 401)"
        )

    async def test_a_model_the_provider_does_not_list_names_the_setting(
        self, provider_settings
    ) -> None:
        (body,) = await self.ready(provider_settings(MODEL="gpt-9"))
        assert body["components"]["model_provider"] == (
            "misconfigured: check MODEL ('gpt-9' is not listed)"
        )

    async def test_a_cached_answer_is_renewed_after_its_minute(
        self, model_server, model_client
    ) -> None:
        now = [1000.0]
        probe = ProviderProbe(model_client, "gpt-5-mini", clock=lambda: now[0])
        assert await probe.status() == "ok"
        model_server.stop()
        now[0] += 59.9
        assert await probe.status() == "ok"  # still the cached answer
        now[0] += 0.1
        assert await probe.status() == "unavailable (APIConnectionError/ConnectError)"
        assert [r.path for r in model_server.requests] == ["/v1/models"]
