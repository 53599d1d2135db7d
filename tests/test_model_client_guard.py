"""The autouse `disable_real_model_clients` guard: loopback clients pass, providers fail."""

from __future__ import annotations

import openai
import pytest


class TestClientGuard:
    @pytest.mark.parametrize("client_class", [openai.AsyncOpenAI, openai.OpenAI])
    def test_the_default_api_openai_com_fails_the_test(self, client_class) -> None:
        with pytest.raises(pytest.fail.Exception, match=r"network model client .*api\.openai\.com"):
            client_class(api_key="sk-test")

    @pytest.mark.parametrize(
        "base_url",
        ["https://api.openai.com/v1", "http://10.0.0.7:11434/v1", "https://llm.example.com/v1"],
    )
    def test_a_remote_base_url_fails_the_test(self, base_url: str) -> None:
        with pytest.raises(pytest.fail.Exception, match="network model client"):
            openai.AsyncOpenAI(api_key="sk-test", base_url=base_url)

    def test_a_remote_openai_base_url_from_the_environment_fails_the_test(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("OPENAI_BASE_URL", "https://llm.example.com/v1")
        with pytest.raises(pytest.fail.Exception, match=r"llm\.example\.com"):
            openai.AsyncOpenAI(api_key="sk-test")

    @pytest.mark.parametrize(
        "base_url",
        ["http://127.0.0.1:9/v1", "http://localhost:9/v1", "http://[::1]:9/v1"],
    )
    def test_a_loopback_base_url_is_allowed(self, base_url: str) -> None:
        client = openai.AsyncOpenAI(api_key="sk-test", base_url=base_url)
        assert str(client.base_url) == base_url + "/"

    @pytest.mark.allow_model_client
    def test_the_marker_lifts_the_guard(self) -> None:
        client = openai.AsyncOpenAI(api_key="sk-test")
        assert client.base_url.host == "api.openai.com"
