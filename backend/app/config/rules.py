"""What makes a setting's value acceptable: parsing single values, and the cross-field rules.

Kept apart from the field list so :mod:`app.config.settings` reads as the catalogue of
settings. Every function raises ``ValueError`` with a message that says what is allowed;
pydantic prefixes it with the setting's name, and :func:`app.config.loading.load_settings`
turns the lot into one line.
"""

from __future__ import annotations

import re
import zoneinfo
from typing import TYPE_CHECKING, Any

from app.config.choices import AppEnv, MemoryBackend, ModelProviderName, OpenAIApi

if TYPE_CHECKING:
    from app.config.settings import Settings

# An agent's name in AGENTS (and in a thread's `agent` field): short, URL- and log-safe.
AGENT_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
# An importable factory: dotted.module.path:attribute
_FACTORY_PATH = re.compile(
    r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$"
)
DEFAULT_AGENTS = {"todo": "app.assistant.todo:build_agent"}
# scheme://host[:port], exactly what a browser sends in `Origin` (no path, no trailing slash).
_ORIGIN = re.compile(
    r"^https?://[a-z0-9.\-]+(:[0-9]{1,5})?$|^https?://\[[0-9a-f:.]+\](:[0-9]{1,5})?$"
)


def normalize_database_url(value: Any) -> Any:
    """Force the psycopg 3 driver whatever scheme the provider printed (Neon: postgresql://)."""
    if not isinstance(value, str) or not value:
        return value
    for prefix in ("postgres://", "postgresql://", "postgresql+psycopg2://"):
        if value.startswith(prefix):
            return "postgresql+psycopg://" + value[len(prefix) :]
    if not value.startswith("postgresql+psycopg://"):
        raise ValueError("must be a postgresql:// URL")
    return value


def parse_origins(value: Any) -> Any:
    """Comma-separated origins; each must be exactly what a browser sends as `Origin`."""
    if isinstance(value, str):
        value = [part for part in value.split(",") if part.strip()]
    if not isinstance(value, list):
        return value
    origins = []
    for raw in value:
        origin = str(raw).strip().rstrip("/").lower()
        if not _ORIGIN.match(origin):
            raise ValueError(
                f"{str(raw).strip()!r} is not an origin: use scheme://host[:port], e.g. "
                "https://app.example.com (no path; '*' is not accepted, list origins)"
            )
        origins.append(origin)
    return origins


def parse_agents(value: Any) -> Any:
    """`name=module.path:factory` pairs, comma-separated, in order (the first is the default)."""
    if isinstance(value, str):
        value = _split_agent_pairs(value)
    if not isinstance(value, dict):
        return value
    if not value:
        raise ValueError("name at least one agent, e.g. todo=app.assistant.todo:build_agent")
    for name, path in value.items():
        if not AGENT_NAME.match(str(name)):
            raise ValueError(
                f"agent name {name!r}: use 1-32 lowercase letters, digits, - or _, "
                "starting with a letter"
            )
        if not _FACTORY_PATH.match(str(path)):
            raise ValueError(f"agent {name!r}: {path!r} is not an import path module.path:factory")
    return value


def _split_agent_pairs(value: str) -> dict[str, str]:
    pairs = [part.strip() for part in value.split(",") if part.strip()]
    parsed: dict[str, str] = {}
    for pair in pairs:
        name, sep, path = (piece.strip() for piece in pair.partition("="))
        if not sep:
            raise ValueError(
                f"{pair!r} is not name=module:factory (e.g. todo=app.assistant.todo:build_agent)"
            )
        if name in parsed:
            raise ValueError(f"agent {name!r} is named twice")
        parsed[name] = path
    return parsed


def check_time_zone(value: str) -> str:
    """An IANA time zone name the standard library knows."""
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as e:
        raise ValueError(f"unknown time zone {value!r} (use an IANA name such as UTC)") from e
    return value


def check_consistency(settings: Settings) -> None:
    """The rules that involve several settings; the first one broken is reported."""
    _check_auth(settings)
    _check_provider(settings)


def _check_auth(settings: Settings) -> None:
    if settings.APP_ENV == AppEnv.PRODUCTION and not (
        settings.AUTH_JWT_SECRET or settings.AUTH_JWT_PUBLIC_KEY
    ):
        raise ValueError(
            "AUTH_JWT_SECRET or AUTH_JWT_PUBLIC_KEY must be set when APP_ENV=production"
        )
    if settings.AUTH_JWT_SECRET == "changethis" and settings.APP_ENV != AppEnv.DEVELOPMENT:
        raise ValueError("AUTH_JWT_SECRET is the placeholder 'changethis'")


def _check_provider(settings: Settings) -> None:
    if settings.MODEL_PROVIDER == ModelProviderName.OPENAI and not (
        settings.OPENAI_API_KEY or settings.OPENAI_BASE_URL
    ):
        raise ValueError("MODEL_PROVIDER=openai needs OPENAI_API_KEY (or OPENAI_BASE_URL)")
    provider = settings.model_provider
    if settings.AGENT_MEMORY_BACKEND == MemoryBackend.OPENAI_CONVERSATIONS:
        if provider == ModelProviderName.OFFLINE:
            raise ValueError(
                "AGENT_MEMORY_BACKEND=openai_conversations needs MODEL_PROVIDER=openai "
                "(the offline model has no provider to hold the conversation)"
            )
        if (
            provider == ModelProviderName.OPENAI
            and settings.openai_api == OpenAIApi.CHAT_COMPLETIONS
        ):
            # SDK 0.24 cannot replay a conversation's items through Chat Completions: the
            # second turn of every thread would fail (tests/model_server pins it).
            raise ValueError("AGENT_MEMORY_BACKEND=openai_conversations needs OPENAI_API=responses")
    silent_provider_s = settings.OPENAI_TIMEOUT_SECONDS * (settings.OPENAI_MAX_RETRIES + 1)
    if provider == ModelProviderName.OPENAI and silent_provider_s >= settings.MAX_TURN_SECONDS:
        # Otherwise a provider that stops answering ends turns as `timeout`, never as the
        # `model_unavailable` that tells the user what happened.
        raise ValueError(
            f"OPENAI_TIMEOUT_SECONDS x (OPENAI_MAX_RETRIES + 1) = {silent_provider_s} s "
            f"must be below MAX_TURN_SECONDS ({settings.MAX_TURN_SECONDS})"
        )
