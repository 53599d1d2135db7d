"""Application settings, read once from the environment and `.env`.

Callers import from here (`from app.config import Settings, load_settings`); the package is
split by concern: :mod:`.choices` (the enums), :mod:`.settings` (the fields and what derives
from them), :mod:`.rules` (parsing values and refusing bad combinations) and :mod:`.loading`
(the cached process-wide settings and the one-line :class:`ConfigError`).
"""

from app.config.choices import AppEnv, Compaction, MemoryBackend, ModelProviderName, OpenAIApi
from app.config.loading import ConfigError, get_settings, load_settings
from app.config.rules import AGENT_NAME, DEFAULT_AGENTS
from app.config.settings import MAX_RETENTION_DAYS, PositiveInt, Settings

__all__ = [
    "AGENT_NAME",
    "DEFAULT_AGENTS",
    "MAX_RETENTION_DAYS",
    "AppEnv",
    "Compaction",
    "ConfigError",
    "MemoryBackend",
    "ModelProviderName",
    "OpenAIApi",
    "PositiveInt",
    "Settings",
    "get_settings",
    "load_settings",
]
