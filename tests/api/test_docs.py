"""The API docs load nothing from a CDN: their assets are served by the app."""

from __future__ import annotations

import re

import pytest


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_docs_pages_reference_only_local_assets(client, page) -> None:
    response = await client.get(page)
    assert response.status_code == 200
    urls = re.findall(r'(?:src|href)="([^"]+)"', response.text)
    assert urls
    for url in urls:
        assert url.startswith("/"), url
        assert (await client.get(url)).status_code == 200, url
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "http" not in csp  # no remote source of any kind


async def test_swagger_bootstrap_is_allowed_by_hash_only(client) -> None:
    response = await client.get("/docs")
    csp = response.headers["content-security-policy"]
    assert "'unsafe-inline'" not in csp.split("script-src", 1)[1].split(";", 1)[0]
    assert "'sha256-" in csp


async def test_the_schema_lists_the_new_endpoints(client) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert {"/api/tasks", "/api/tasks/{task_id}", "/api/dev/token"} <= set(paths)
