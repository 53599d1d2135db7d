"""Development sign-in: `POST /api/dev/token` exists outside production only."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from app.auth import TokenService
from app.config import Settings
from tests.conftest import start_app


class TestDevelopment:
    async def test_signs_a_token_the_api_accepts(self, client, tokens: TokenService) -> None:
        response = await client.post("/api/dev/token", json={"name": "  Ada Lovelace "})
        assert response.status_code == 200
        assert response.headers["cache-control"] == "no-store"
        body = response.json()
        assert body["subject"] == "Ada Lovelace"
        claims = tokens.verify(body["token"])
        assert claims.subject == "Ada Lovelace"
        assert claims.is_admin is False
        threads = await client.get(
            "/api/threads", headers={"Authorization": f"Bearer {body['token']}"}
        )
        assert threads.status_code == 200

    @pytest.mark.parametrize("name", ["", "   ", "x" * 65, "new\nline"])
    async def test_invalid_name_is_422_naming_the_field(self, client, name) -> None:
        response = await client.post("/api/dev/token", json={"name": name})
        assert response.status_code == 422
        assert response.json()["detail"].startswith("name:")


class TestProduction:
    @pytest.mark.parametrize(
        "overrides",
        [
            {"APP_ENV": "production"},
            # Development with only a public key: nothing on the server can sign a token.
            {"AUTH_JWT_SECRET": None, "AUTH_JWT_PUBLIC_KEY": "-----BEGIN PUBLIC KEY-----"},
        ],
    )
    async def test_the_route_does_not_exist(
        self, settings_factory: Callable[..., Settings], overrides
    ) -> None:
        settings = settings_factory(**overrides)
        async with start_app(settings) as running, running.client() as client:
            response = await client.post("/api/dev/token", json={"name": "mallory"})
            assert response.status_code == 404
            paths = (await client.get("/openapi.json")).json()["paths"]
            assert "/api/dev/token" not in paths
