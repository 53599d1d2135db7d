"""CORS: browser front ends on the listed origins may call the API; nobody else may."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from app.config import ConfigError, Settings, load_settings
from tests.conftest import start_app

LISTED = "https://app.example.com"
PREFLIGHT = {
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization, content-type, last-event-id",
}


@pytest.fixture
async def cors_client(
    settings_factory: Callable[..., Settings],
) -> AsyncIterator[httpx.AsyncClient]:
    settings = settings_factory(CORS_ALLOW_ORIGINS=f"{LISTED}, http://localhost:5173/")
    async with start_app(settings) as running, running.client() as client:
        yield client


class TestPreflight:
    @pytest.mark.parametrize("path", ["/api/threads", "/api/threads/x/messages", "/api/tasks"])
    async def test_listed_origin_gets_the_headers_it_needs(self, cors_client, path) -> None:
        response = await cors_client.options(path, headers={"Origin": LISTED, **PREFLIGHT})
        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == LISTED
        allowed = response.headers["access-control-allow-headers"].lower()
        for header in ("authorization", "content-type", "last-event-id"):
            assert header in allowed
        assert "POST" in response.headers["access-control-allow-methods"]
        assert "access-control-allow-credentials" not in response.headers

    async def test_trailing_slash_in_the_setting_still_matches(self, cors_client) -> None:
        origin = "http://localhost:5173"
        response = await cors_client.options(
            "/api/threads", headers={"Origin": origin, **PREFLIGHT}
        )
        assert response.headers["access-control-allow-origin"] == origin

    async def test_unlisted_origin_gets_no_allow_origin(self, cors_client) -> None:
        response = await cors_client.options(
            "/api/threads", headers={"Origin": "https://evil.example", **PREFLIGHT}
        )
        assert response.status_code == 400
        assert "access-control-allow-origin" not in response.headers

    async def test_default_is_same_origin_only(self, client) -> None:
        response = await client.options("/api/threads", headers={"Origin": LISTED, **PREFLIGHT})
        assert response.status_code == 400  # a refusal, no longer the router's 405
        assert "access-control-allow-origin" not in response.headers


class TestActualRequests:
    async def test_responses_and_errors_carry_cors_headers(self, cors_client, alice) -> None:
        ok = await cors_client.get("/api/threads", headers={"Origin": LISTED, **alice})
        assert ok.status_code == 200
        assert ok.headers["access-control-allow-origin"] == LISTED
        denied = await cors_client.get("/api/threads", headers={"Origin": LISTED})
        assert denied.status_code == 401  # the front end can read why
        assert denied.headers["access-control-allow-origin"] == LISTED
        assert "retry-after" in denied.headers["access-control-expose-headers"].lower()

    async def test_paths_outside_the_api_stay_same_origin(self, cors_client) -> None:
        response = await cors_client.get("/health/live", headers={"Origin": LISTED})
        assert response.status_code == 200
        assert "access-control-allow-origin" not in response.headers


class TestSetting:
    def test_origins_are_normalized(self) -> None:
        settings = load_settings(CORS_ALLOW_ORIGINS=" HTTPS://App.Example.com/ ,http://[::1]:8080")
        assert settings.CORS_ALLOW_ORIGINS == ["https://app.example.com", "http://[::1]:8080"]
        assert load_settings(CORS_ALLOW_ORIGINS="").CORS_ALLOW_ORIGINS == []

    @pytest.mark.parametrize("value", ["*", "app.example.com", "https://x.example/path", "ftp://x"])
    def test_anything_but_an_origin_is_refused(self, value) -> None:
        with pytest.raises(ConfigError, match="CORS_ALLOW_ORIGINS"):
            load_settings(CORS_ALLOW_ORIGINS=value)
