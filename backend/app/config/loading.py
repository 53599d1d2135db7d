"""Loading the settings once per process, and the one-line error a misconfiguration gives."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from pydantic import ValidationError

from app.config.settings import Settings


class ConfigError(RuntimeError):
    """Raised when settings are invalid; the message names each offending setting."""


def load_settings(**overrides: Any) -> Settings:
    """Build settings, turning a validation error into one message per bad setting.

    Raises:
        ConfigError: naming each invalid setting and what is allowed.
    """
    try:
        return Settings(**overrides)
    except ValidationError as e:
        problems = []
        for error in e.errors():
            name = ".".join(str(part) for part in error["loc"]) or "settings"
            problems.append(f"{name}: {error['msg']}")
        raise ConfigError("Invalid configuration: " + "; ".join(problems)) from None


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings (cached; tests call `get_settings.cache_clear()`)."""
    return load_settings()
