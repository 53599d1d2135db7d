"""The model provider the settings choose: its model, how it is described, and a health check.

Offline, the model is the built-in `OfflineModel`. Otherwise it is the SDK's OpenAI model on
one `AsyncOpenAI` client whose timeouts and retries come from settings (the client's own
defaults, 600 s and 2 retries, outlast a turn), speaking Chat Completions to compatible
servers and Responses to OpenAI (OPENAI_API overrides).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import openai
from agents.models.interface import Model

from app.assistant.offline_model import OfflineModel
from app.assistant.provider_errors import FailureKind, classify, safe_base_url
from app.assistant.provider_models import ChatCompletionsModel, ResponsesModel
from app.config import ModelProviderName, OpenAIApi, Settings

PROBE_TTL_SECONDS = 60.0
PROBE_TIMEOUT_SECONDS = 2.0


def build_client(settings: Settings) -> openai.AsyncOpenAI:
    """The client for the openai provider, bounded by OPENAI_*_SECONDS and OPENAI_MAX_RETRIES."""
    return openai.AsyncOpenAI(
        # Local servers accept any key; the OpenAI client insists on one.
        api_key=settings.OPENAI_API_KEY or "unused",
        base_url=settings.OPENAI_BASE_URL,
        timeout=openai.Timeout(
            settings.OPENAI_TIMEOUT_SECONDS, connect=settings.OPENAI_CONNECT_TIMEOUT_SECONDS
        ),
        max_retries=settings.OPENAI_MAX_RETRIES,
    )


def build_model(settings: Settings, client: openai.AsyncOpenAI | None = None) -> Model:
    """The model for `settings`: the offline model, or an OpenAI(-compatible) one."""
    if settings.model_provider == ModelProviderName.OFFLINE:
        return OfflineModel(delta_delay_s=settings.OFFLINE_MODEL_DELAY_MS / 1000)
    client = client or build_client(settings)
    if settings.openai_api == OpenAIApi.CHAT_COMPLETIONS:
        return ChatCompletionsModel(
            settings.MODEL, client, include_usage=settings.OPENAI_INCLUDE_USAGE
        )
    return ResponsesModel(settings.MODEL, client)


class ProviderProbe:
    """A cheap check that the provider answers, knows the key and offers MODEL, cached.

    `GET /models` through the turn's own client, at most once per `ttl_s` (the result, good or
    bad, is kept that long, so an outage never makes every readiness probe wait).
    """

    def __init__(
        self,
        client: openai.AsyncOpenAI,
        model_name: str,
        *,
        ttl_s: float = PROBE_TTL_SECONDS,
        timeout_s: float = PROBE_TIMEOUT_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client.with_options(max_retries=0, timeout=timeout_s)
        self._model_name = model_name
        self._ttl_s = ttl_s
        self._timeout_s = timeout_s
        self._clock = clock
        self._lock = asyncio.Lock()
        self._result: tuple[float, str] | None = None

    async def status(self) -> str:
        """ "ok", or what is wrong, as of at most `ttl_s` ago."""
        async with self._lock:
            if self._result is None or self._clock() - self._result[0] >= self._ttl_s:
                self._result = (self._clock(), await self._check())
            return self._result[1]

    async def _check(self) -> str:
        try:
            async with asyncio.timeout(self._timeout_s):
                page = await self._client.models.list()
        except TimeoutError:
            return "unavailable (timeout)"
        except openai.APIError as e:
            failure = classify(e, base_url=safe_base_url(self._client.base_url))
            assert failure is not None
            status = f"HTTP {failure.status}" if failure.status else failure.cause
            if failure.status == 404:
                return f"unknown (the provider does not list models: {status})"
            if failure.kind == FailureKind.MISCONFIGURED:
                return f"misconfigured: check {failure.setting} ({status})"
            return f"{failure.kind.removeprefix('model_').replace('_', ' ')} ({status})"
        if self._model_name not in {model.id for model in page.data}:
            return f"misconfigured: check MODEL ({self._model_name!r} is not listed)"
        return "ok"


@dataclass(frozen=True)
class ModelProvider:
    """The model every agent is built on, and what operators are told about it."""

    settings: Settings
    model: Model
    probe: ProviderProbe | None  # None: offline, nothing to check
    overridden: bool = False  # the model was given, not chosen by settings

    @classmethod
    def from_settings(cls, settings: Settings, *, model: Model | None = None) -> ModelProvider:
        """The provider for `settings`; `model` replaces its model (tests, other providers)."""
        overridden = model is not None
        if settings.model_provider == ModelProviderName.OFFLINE:
            model = model or build_model(settings)
            return cls(settings=settings, model=model, probe=None, overridden=overridden)
        client = build_client(settings)
        return cls(
            settings=settings,
            model=model or build_model(settings, client),
            probe=ProviderProbe(client, settings.MODEL),
            overridden=overridden,
        )

    def describe(self) -> str:
        """One line for the startup log: provider, API, base URL and model name."""
        settings = self.settings
        if self.overridden:
            return f"model={type(self.model).__name__} (given in code, not by settings)"
        if settings.model_provider == ModelProviderName.OFFLINE:
            return f"provider=offline model={getattr(self.model, 'model_name', type(self.model))}"
        base_url = safe_base_url(settings.OPENAI_BASE_URL or "https://api.openai.com/v1")
        return (
            f"provider=openai api={settings.openai_api} base_url={base_url} "
            f"model={settings.MODEL} timeout={settings.OPENAI_TIMEOUT_SECONDS}s "
            f"retries={settings.OPENAI_MAX_RETRIES}"
        )

    async def status(self) -> str:
        """The provider's health for `/health/ready` (informational)."""
        return "ok" if self.probe is None else await self.probe.status()
