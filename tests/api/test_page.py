"""The chat page is served by the app with a strict Content-Security-Policy."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from app.config import Settings
from tests.conftest import start_app

STATIC = Path(__file__).resolve().parents[2] / "backend" / "app" / "web" / "static"


def directives(csp: str) -> dict[str, list[str]]:
    parsed = {}
    for part in csp.split(";"):
        name, *sources = part.split()
        parsed[name] = sources
    return parsed


class TestPage:
    async def test_root_serves_the_page_with_a_strict_policy(self, client) -> None:
        response = await client.get("/")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        assert '<script type="module" src="/web/app.js">' in response.text
        csp = directives(response.headers["content-security-policy"])
        assert csp["default-src"] == ["'none'"]
        assert csp["script-src"] == ["'self'"]  # no inline script, no eval, no CDN
        assert csp["connect-src"] == ["'self'"]
        assert csp["require-trusted-types-for"] == ["'script'"]
        assert csp["trusted-types"] == ["dompurify"]
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"

    @pytest.mark.parametrize(
        ("path", "media_type"),
        [
            ("/web/app.js", "text/javascript"),
            ("/web/vendor/dompurify/purify.es.mjs", "text/javascript"),
            ("/web/style.css", "text/css"),
            ("/web/index.html", "text/html"),
        ],
    )
    async def test_files_are_served_with_the_same_headers(self, client, path, media_type) -> None:
        response = await client.get(path)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith(media_type)
        assert "trusted-types dompurify" in response.headers["content-security-policy"]
        assert response.headers["x-content-type-options"] == "nosniff"

    async def test_config_in_development(self, client, settings: Settings) -> None:
        config = (await client.get("/web/config.json")).json()
        assert config == {
            "dev_sign_in": True,
            "host_origins": [],
            "max_message_chars": settings.MAX_MESSAGE_CHARS,
            "max_title_chars": settings.MAX_TITLE_CHARS,
        }

    async def test_production_page_has_no_dev_sign_in_and_trusts_listed_hosts(
        self, settings_factory: Callable[..., Settings]
    ) -> None:
        settings = settings_factory(APP_ENV="production", CORS_ALLOW_ORIGINS="https://app.example")
        async with start_app(settings) as running, running.client() as client:
            config = (await client.get("/web/config.json")).json()
            assert config["dev_sign_in"] is False
            assert config["host_origins"] == ["https://app.example"]
            csp = directives((await client.get("/")).headers["content-security-policy"])
            assert csp["connect-src"] == ["'self'", "https://app.example"]
            assert csp["frame-ancestors"] == ["'self'", "https://app.example"]


class TestSources:
    def test_html_has_no_inline_script_style_or_handlers(self) -> None:
        html = (STATIC / "index.html").read_text()
        assert re.findall(r"<script(?![^>]*\bsrc=)", html) == []
        assert " style=" not in html
        assert re.findall(r"\son[a-z]+=", html) == []

    @pytest.mark.parametrize("module", sorted(p.name for p in STATIC.glob("*.js")))
    def test_page_code_never_writes_html(self, module) -> None:
        # Trusted Types enforces this in the browser; this says which line broke it.
        source = (STATIC / module).read_text()
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            assert sink not in source, f"{module} uses {sink}"
