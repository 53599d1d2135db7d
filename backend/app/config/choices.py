"""The closed choices among the settings: each enum's values are what the variable accepts."""

from __future__ import annotations

from enum import StrEnum


class AppEnv(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


class ModelProviderName(StrEnum):
    OFFLINE = "offline"
    OPENAI = "openai"


class Compaction(StrEnum):
    OFF = "off"
    SUMMARY = "summary"


class MemoryBackend(StrEnum):
    SQLITE = "sqlite"  # one file per user per thread under AGENT_SESSION_DIR (node-local)
    POSTGRES = "postgres"  # the sdk_agent_* tables of DATABASE_URL (shared by every node)
    # The provider's Conversations API (OPENAI_BASE_URL): the SDK's OpenAIConversationsSession
    OPENAI_CONVERSATIONS = "openai_conversations"


class OpenAIApi(StrEnum):
    RESPONSES = "responses"
    CHAT_COMPLETIONS = "chat_completions"
