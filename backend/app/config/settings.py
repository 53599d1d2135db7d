"""The settings: every field, its default and bounds, and what is derived from them.

Every field is UPPER_CASE so that its name is the environment variable that sets it; that
way a validation error names exactly what the operator has to change. How a value is parsed
and which combinations are refused lives in :mod:`app.config.rules`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Self

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from app.config import rules
from app.config.choices import AppEnv, Compaction, MemoryBackend, ModelProviderName, OpenAIApi
from app.config.rules import DEFAULT_AGENTS

PositiveInt = Annotated[int, Field(ge=1)]
# A century: any longer age limit is a typo, and would overflow date arithmetic.
MAX_RETENTION_DAYS = 36_500


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_ignore_empty=True, extra="ignore", validate_default=True
    )

    APP_ENV: AppEnv = AppEnv.DEVELOPMENT
    HOST: str = "127.0.0.1"
    PORT: Annotated[int, Field(ge=1, le=65535)] = 8000
    LOG_LEVEL: str = "INFO"
    DATA_DIR: Path = Path("data")

    # PostgreSQL. Unset means "start the embedded server under DATA_DIR/postgres".
    DATABASE_URL: str | None = None
    # A session-mode connection for LISTEN (turn events followed live on other nodes).
    # Unset: DATABASE_URL. Behind a transaction-mode pooler (PgBouncer, Neon's "-pooler"
    # host) set the direct URL; without working LISTEN, followers poll instead.
    DATABASE_LISTEN_URL: str | None = None
    DATABASE_POOL_SIZE: PositiveInt = 20
    DATABASE_POOL_TIMEOUT_SECONDS: PositiveInt = 5
    DATABASE_CONNECT_TIMEOUT_SECONDS: PositiveInt = 5
    # Bounds on every wait inside PostgreSQL (0 disables one; behind a transaction-mode
    # pooler that refuses startup options, set all three to 0 and set them on the role).
    DATABASE_STATEMENT_TIMEOUT_SECONDS: Annotated[int, Field(ge=0, le=3600)] = 30
    DATABASE_LOCK_TIMEOUT_SECONDS: Annotated[int, Field(ge=0, le=3600)] = 5
    DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_SECONDS: Annotated[int, Field(ge=0, le=3600)] = 60
    AUTO_MIGRATE: bool = False

    # Agent memory: where it lives (see the README's "Memory backends"), then its limits.
    AGENT_MEMORY_BACKEND: MemoryBackend = MemoryBackend.SQLITE
    # openai_conversations: when the provider no longer knows a thread's conversation, make
    # a new one from the log (true) or fail the turn, not retryable (false).
    FORCE_PROVIDER_SESSION_REBIND: bool = False
    AGENT_SESSION_DIR: Path | None = None
    AGENT_SESSION_MAX_MESSAGES: Annotated[int, Field(ge=2)] = 200
    AGENT_SESSION_READ_LIMIT: PositiveInt = 100
    AGENT_SESSION_RETENTION_DAYS: Annotated[int, Field(ge=0, le=MAX_RETENTION_DAYS)] = 7
    AGENT_SESSION_CLEANUP_HOUR: Annotated[int, Field(ge=0, le=23)] = 2
    AGENT_SESSION_CLEANUP_TZ: str = "UTC"
    AGENT_SESSION_BUSY_TIMEOUT_MS: Annotated[int, Field(ge=0, le=60_000)] = 2_000
    AGENT_SESSION_POOL_SIZE: Annotated[int, Field(ge=1, le=1_000)] = 16
    AGENT_SESSION_PRUNE_INTERVAL_MINUTES: Annotated[int, Field(ge=1, le=7 * 24 * 60)] = 60
    AGENT_SESSION_VACUUM_FREE_RATIO: Annotated[float, Field(gt=0, le=1)] = 0.3
    AGENT_SESSION_CLEANUP_BATCH_SIZE: Annotated[int, Field(ge=1, le=10_000)] = 500
    AGENT_SESSION_MIN_FREE_MB: Annotated[int, Field(ge=0, le=1_000_000)] = 64
    # What prunes remove is folded into one summary at the head of memory (see README).
    AGENT_SESSION_COMPACTION: Compaction = Compaction.SUMMARY
    AGENT_SESSION_SUMMARY_MAX_CHARS: Annotated[int, Field(ge=200, le=100_000)] = 4_000
    AGENT_SESSION_SUMMARY_TIMEOUT_SECONDS: Annotated[int, Field(ge=1, le=3600)] = 60
    SCHEDULER_ENABLED: bool = True

    # Turns: the thread lease, and their events kept in PostgreSQL for clients resuming a
    # stream on any node (written in batches every TURN_EVENTS_FLUSH_MS; 0: not kept, a
    # stream resumes only on the worker running its turn).
    TURN_LEASE_SECONDS: Annotated[int, Field(ge=3, le=3600)] = 30
    TURN_REPLAY_SECONDS: Annotated[int, Field(ge=0, le=86_400)] = 300
    TURN_EVENTS_FLUSH_MS: Annotated[int, Field(ge=0, le=10_000)] = 100
    TURN_EVENTS_POLL_MS: Annotated[int, Field(ge=20, le=60_000)] = 500

    # This node (the processes sharing DATA_DIR): unset, the host name and DATA_DIR.
    NODE_ID: Annotated[str | None, Field(max_length=255)] = None

    # Auth: HS256 with a shared secret, or RS256/ES256 with a public key.
    AUTH_JWT_SECRET: str | None = None
    AUTH_JWT_PUBLIC_KEY: str | None = None
    AUTH_JWT_AUDIENCE: str | None = None
    AUTH_JWT_ISSUER: str | None = None
    AUTH_ADMIN_CLAIM: str = "admin"
    AUTH_TOKEN_TTL_MINUTES: PositiveInt = 7 * 24 * 60

    # Agents: name=module:factory, comma-separated; the first serves threads that name none.
    AGENTS: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=lambda: dict(DEFAULT_AGENTS)
    )

    # Model.
    MODEL_PROVIDER: ModelProviderName | None = None
    MODEL: str = "gpt-5-mini"
    OPENAI_API_KEY: str | None = None
    OPENAI_BASE_URL: str | None = None
    OPENAI_API: OpenAIApi | None = None
    # The provider client: the longest silence it waits for (connect, and between bytes of a
    # reply), and how many times it retries a failed request (connection errors, 408, 409,
    # 429, 5xx; honouring the provider's Retry-After). The openai client's own defaults (600 s,
    # 2 retries) outlast a turn.
    OPENAI_TIMEOUT_SECONDS: Annotated[int, Field(ge=1, le=3600)] = 60
    OPENAI_CONNECT_TIMEOUT_SECONDS: Annotated[int, Field(ge=1, le=600)] = 5
    OPENAI_MAX_RETRIES: Annotated[int, Field(ge=0, le=10)] = 2
    # Ask Chat Completions streams for token usage (stream_options.include_usage); the SDK
    # asks only api.openai.com. Servers that reject the field: set false.
    OPENAI_INCLUDE_USAGE: bool = True
    OFFLINE_MODEL_DELAY_MS: Annotated[int, Field(ge=0, le=60_000)] = 0

    # Tracing (the Agents SDK's traces, uploaded to OpenAI): off unless turned on here.
    TRACING_ENABLED: bool = False
    # Include message text, tool arguments and outputs in traces (only with TRACING_ENABLED).
    TRACING_INCLUDE_CONTENT: bool = False
    # The key traces are uploaded with; default OPENAI_API_KEY.
    TRACING_API_KEY: str | None = None

    # Browser front ends on other origins (CORS, and hosts that embed the chat page).
    CORS_ALLOW_ORIGINS: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # Limits.
    MAX_MESSAGE_CHARS: PositiveInt = 32_000
    MAX_TITLE_CHARS: Annotated[int, Field(ge=1, le=1000)] = 200
    MAX_THREAD_METADATA_BYTES: Annotated[int, Field(ge=0, le=1_000_000)] = 8_192
    MAX_TURN_SECONDS: PositiveInt = 300
    MAX_REQUEST_BYTES: Annotated[int, Field(ge=1024)] = 1024 * 1024

    # Fair use, per user, enforced across workers and nodes (counted in PostgreSQL); 0 means
    # unlimited. A token with the admin claim, or a user's override (admin API, CLI), lifts
    # them. The defaults leave a person at the chat page untouched and stop a script.
    LIMIT_TURNS_PER_MINUTE: Annotated[int, Field(ge=0, le=100_000)] = 20
    LIMIT_RUNNING_TURNS: Annotated[int, Field(ge=0, le=10_000)] = 4
    LIMIT_DAILY_TOKENS: Annotated[int, Field(ge=0)] = 2_000_000
    LIMIT_OPEN_STREAMS: Annotated[int, Field(ge=0, le=10_000)] = 8

    # The HTTP server (uvicorn): bounds on what an unauthenticated client can hold.
    HTTP_MAX_HEADER_BYTES: Annotated[int, Field(ge=1024, le=16 * 1024 * 1024)] = 64 * 1024
    HTTP_HEADER_TIMEOUT_SECONDS: Annotated[int, Field(ge=1, le=600)] = 10
    HTTP_KEEPALIVE_SECONDS: Annotated[int, Field(ge=1, le=600)] = 5
    SHUTDOWN_GRACE_SECONDS: Annotated[int, Field(ge=1, le=600)] = 10

    # Full-text search: the PostgreSQL text search configuration of titles and messages.
    SEARCH_TEXT_CONFIG: Annotated[str, Field(min_length=1, max_length=63)] = "simple"

    # Observability.
    METRICS_ENABLED: bool = True
    LOG_CONTENT: bool = False

    @field_validator("DATABASE_URL", "DATABASE_LISTEN_URL", mode="before")
    @classmethod
    def _normalize_database_url(cls, value: Any) -> Any:
        return rules.normalize_database_url(value)

    @field_validator("CORS_ALLOW_ORIGINS", mode="before")
    @classmethod
    def _parse_origins(cls, value: Any) -> Any:
        return rules.parse_origins(value)

    @field_validator("AGENTS", mode="before")
    @classmethod
    def _parse_agents(cls, value: Any) -> Any:
        return rules.parse_agents(value)

    @field_validator("AGENT_SESSION_CLEANUP_TZ")
    @classmethod
    def _check_time_zone(cls, value: str) -> str:
        return rules.check_time_zone(value)

    @model_validator(mode="after")
    def _check_consistency(self) -> Self:
        rules.check_consistency(self)
        return self

    @property
    def dev_sign_in_enabled(self) -> bool:
        """The development sign-in (`POST /api/dev/token`, the page's "continue as"): outside
        production, when the server holds a signing secret (configured or generated)."""
        if self.APP_ENV == AppEnv.PRODUCTION:
            return False
        # With only a public key, tokens come from an identity provider: nothing here can sign.
        return bool(self.AUTH_JWT_SECRET) or not self.AUTH_JWT_PUBLIC_KEY

    @property
    def agent_session_dir(self) -> Path:
        return self.AGENT_SESSION_DIR or self.DATA_DIR / "sessions"

    @property
    def node_id(self) -> str:
        """This node's id: NODE_ID, else the host name and DATA_DIR (see `app.node`)."""
        from app.node import default_node_id

        return self.NODE_ID or default_node_id(self.DATA_DIR)

    @property
    def memory_cap(self) -> int:
        """The most items memory holds, a summary included. With compaction, memory the
        model never reads (past AGENT_SESSION_READ_LIMIT) is folded into the summary too, so
        the model always reads the summary first."""
        if self.AGENT_SESSION_COMPACTION == Compaction.SUMMARY:
            return min(self.AGENT_SESSION_MAX_MESSAGES, max(2, self.AGENT_SESSION_READ_LIMIT))
        return self.AGENT_SESSION_MAX_MESSAGES

    @property
    def memory_max_items(self) -> int:
        """What pruning and rebuilds keep besides the summary: with compaction, one item of
        the cap is the summary's, whether it exists yet or not."""
        if self.AGENT_SESSION_COMPACTION == Compaction.SUMMARY:
            return self.memory_cap - 1
        return self.memory_cap

    @property
    def memory_prune_to(self) -> int:
        """What a prune cuts back to. With compaction, a quarter below the cap: each summary
        is a model call that rewrites the whole summary, so prunes come every few turns
        instead of at every turn once a thread passes the cap."""
        if self.AGENT_SESSION_COMPACTION == Compaction.SUMMARY:
            return self.memory_max_items - self.memory_max_items // 4
        return self.memory_max_items

    @property
    def embedded_pgdata_dir(self) -> Path:
        return self.DATA_DIR / "postgres"

    @property
    def model_provider(self) -> ModelProviderName:
        """The provider in use: explicit, else OpenAI when a key is set, else offline."""
        if self.MODEL_PROVIDER is not None:
            return self.MODEL_PROVIDER
        return ModelProviderName.OPENAI if self.OPENAI_API_KEY else ModelProviderName.OFFLINE

    @property
    def openai_api(self) -> OpenAIApi:
        """Compatible servers (Ollama, vLLM, llama.cpp) speak Chat Completions, not Responses."""
        if self.OPENAI_API is not None:
            return self.OPENAI_API
        return OpenAIApi.CHAT_COMPLETIONS if self.OPENAI_BASE_URL else OpenAIApi.RESPONSES
