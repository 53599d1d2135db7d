"""Building the service's parts from settings, for the app's lifespan and the CLI alike.

One place opens the database (or starts the embedded one), checks or migrates its schema,
and builds the memory store, the turn runner and the job context with the same settings,
so the CLI never imports the ASGI app and never builds a store the server would not.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from agents import set_tracing_disabled, set_tracing_export_api_key
from agents.memory import SessionSettings
from agents.models.interface import Model
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app import schema
from app.assistant.provider import ModelProvider, build_client
from app.assistant.registry import AgentRegistry, load_agents
from app.assistant.summarizer import build_summarizer
from app.config import Compaction, ConfigError, MemoryBackend, Settings
from app.db import DatabaseTimeouts, SessionMaker, create_engine, create_sessionmaker, redact_url
from app.embedded_db import start_embedded
from app.memory import AgentMemoryStore, MemoryStore
from app.memory.pg_store import PostgresMemoryStore
from app.memory.provider_store import ProviderMemoryStore
from app.node import NodeIdentity
from app.scheduler.context import JobContext
from app.turns.compaction import Compactor
from app.turns.runner import TurnRunner

logger = logging.getLogger(__name__)

# Any fixed 64-bit number: it serializes concurrent migrations from several workers.
MIGRATION_LOCK_ID = 7_341_902_118


@dataclass(frozen=True)
class Database:
    engine: AsyncEngine
    sessionmaker: SessionMaker

    @property
    def url(self) -> str:
        """The URL connected to (the embedded server's when DATABASE_URL is unset)."""
        return self.engine.url.render_as_string(hide_password=False)


def memory_node(settings: Settings, store: MemoryStore) -> str | None:
    """Where memory lives: this node, for node-local files; None for a shared backend."""
    return settings.node_id if isinstance(store, AgentMemoryStore) else None


@asynccontextmanager
async def open_database(
    settings: Settings, *, migrate: bool | None = None
) -> AsyncIterator[Database]:
    """Connect to DATABASE_URL (or start the embedded server) with the schema at head.

    Args:
        migrate: bring the schema to head; default: for the embedded database or with
            AUTO_MIGRATE, else refuse an old schema.

    Raises:
        ConfigError: the schema is behind and migrating is not allowed.
    """
    embedded = None
    if settings.DATABASE_URL:
        url = settings.DATABASE_URL
        logger.info("Using PostgreSQL at %s", redact_url(url))
    else:
        embedded = await start_embedded(settings.embedded_pgdata_dir)
        url = embedded.url
    engine = create_engine(
        url,
        pool_size=settings.DATABASE_POOL_SIZE,
        connect_timeout_s=settings.DATABASE_CONNECT_TIMEOUT_SECONDS,
        pool_timeout_s=settings.DATABASE_POOL_TIMEOUT_SECONDS,
        timeouts=DatabaseTimeouts(
            statement=settings.DATABASE_STATEMENT_TIMEOUT_SECONDS,
            lock=settings.DATABASE_LOCK_TIMEOUT_SECONDS,
            idle_in_transaction=settings.DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_SECONDS,
        ),
    )
    try:
        if migrate is None:
            migrate = embedded is not None or settings.AUTO_MIGRATE
        await ensure_schema(engine, migrate=migrate)
        yield Database(engine=engine, sessionmaker=create_sessionmaker(engine))
    finally:
        await engine.dispose()
        if embedded is not None:
            embedded.stop()


async def ensure_schema(engine: AsyncEngine, *, migrate: bool) -> None:
    """Bring the schema to head, or refuse to start when that is not allowed.

    Raises:
        ConfigError: the database is behind and AUTO_MIGRATE is off.
    """
    if await schema.is_at_head(engine):
        return
    if not migrate:
        current = await schema.current_revision(engine)
        raise ConfigError(
            f"Database schema is at {current or 'an empty database'}, the code needs "
            f"{schema.head_revision()}: run `make migrate` (or set AUTO_MIGRATE=true)"
        )
    async with engine.connect() as conn, conn.begin():
        # Held by this transaction while another connection migrates, so a second worker
        # waits, then sees head; transaction-scoped, so it works through a pooler too.
        await schema.lift_timeouts(conn)
        await conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK_ID})
        if not await schema.is_at_head(engine):
            logger.info("Migrating the database schema to %s", schema.head_revision())
            await schema.upgrade(engine)


def build_memory_store(settings: Settings, database: Database) -> MemoryStore:
    """The AGENT_MEMORY_BACKEND store, configured the same way for the server, jobs and the
    CLI (the `postgres` one on the service's own engine, the `openai_conversations` one on
    the provider's client that OPENAI_BASE_URL / OPENAI_API_KEY configure)."""
    if settings.AGENT_MEMORY_BACKEND == MemoryBackend.OPENAI_CONVERSATIONS:
        return ProviderMemoryStore(
            database.engine,
            build_client(settings),
            rebind=settings.FORCE_PROVIDER_SESSION_REBIND,
            session_settings=SessionSettings(limit=settings.AGENT_SESSION_READ_LIMIT),
        )
    if settings.AGENT_MEMORY_BACKEND == MemoryBackend.POSTGRES:
        return PostgresMemoryStore(
            database.engine,
            session_settings=SessionSettings(limit=settings.AGENT_SESSION_READ_LIMIT),
        )
    return build_file_store(settings)


def build_file_store(settings: Settings) -> AgentMemoryStore:
    """The SQLite store (AGENT_MEMORY_BACKEND=sqlite): one file per user per thread."""
    return AgentMemoryStore(
        settings.agent_session_dir,
        busy_timeout_ms=settings.AGENT_SESSION_BUSY_TIMEOUT_MS,
        session_settings=SessionSettings(limit=settings.AGENT_SESSION_READ_LIMIT),
        pool_size=settings.AGENT_SESSION_POOL_SIZE,
    )


def build_compactor(
    settings: Settings, database: Database, memory_store: MemoryStore, model: Model
) -> Compactor | None:
    """The compactor (None with AGENT_SESSION_COMPACTION=off), summarizing with `model`."""
    if settings.AGENT_SESSION_COMPACTION == Compaction.OFF:
        return None
    summarizer = build_summarizer(
        model,
        max_chars=settings.AGENT_SESSION_SUMMARY_MAX_CHARS,
        tracing=settings.TRACING_ENABLED,
    )
    logger.info("Compaction: summaries of pruned turns by the %s summarizer", summarizer.name)
    return Compactor(
        sessionmaker=database.sessionmaker,
        memory_store=memory_store,
        settings=settings,
        summarizer=summarizer,
    )


def build_job_context(
    settings: Settings,
    database: Database,
    memory_store: MemoryStore,
    node: NodeIdentity | None = None,
    compactor: Compactor | None = None,
) -> JobContext:
    """The jobs' dependencies; `node`: the server's identity (the CLI has none of its own:
    its leases simply expire if it dies)."""
    return JobContext(
        sessionmaker=database.sessionmaker,
        memory_store=memory_store,
        settings=settings,
        compactor=compactor,
        node_id=settings.node_id,
        memory_node=memory_node(settings, memory_store),
        incarnation=node.incarnation if node is not None else None,
    )


@dataclass(frozen=True)
class Assistant:
    """The model provider and the agents built on its model."""

    provider: ModelProvider
    agents: AgentRegistry


def build_assistant(settings: Settings, *, model: Model | None = None) -> Assistant:
    """The provider and every agent in AGENTS (`model` replaces the settings' model).

    Raises:
        ConfigError: an agent factory cannot be imported or fails (the message names AGENTS).
    """
    configure_tracing(settings)
    provider = ModelProvider.from_settings(settings, model=model)
    agents = load_agents(settings, provider.model)
    logger.info("Model: %s", provider.describe())
    logger.info("Agents: %s", agents.describe())
    return Assistant(provider=provider, agents=agents)


def configure_tracing(settings: Settings) -> None:
    """Export nothing unless TRACING_ENABLED: not this server's turns, nor any run a plug-in's
    tool starts (with OPENAI_API_KEY set, the SDK would upload traces to OpenAI by default,
    whatever OPENAI_BASE_URL says)."""
    if not settings.TRACING_ENABLED:
        set_tracing_disabled(True)
        return
    key = settings.TRACING_API_KEY or settings.OPENAI_API_KEY
    if key:
        set_tracing_export_api_key(key)
    logger.info(
        "Tracing: traces are uploaded to OpenAI (%s)",
        "with message content" if settings.TRACING_INCLUDE_CONTENT else "without message content",
    )


def build_turn_runner(
    settings: Settings,
    database: Database,
    memory_store: MemoryStore,
    agents: AgentRegistry,
    *,
    node: NodeIdentity | None = None,
    compactor: Compactor | None = None,
) -> TurnRunner:
    """The turn runner, serving each thread with its agent; a turn whose prune removed
    turns schedules the compactor."""
    return TurnRunner(
        sessionmaker=database.sessionmaker,
        memory_store=memory_store,
        agents=agents,
        settings=settings,
        incarnation=node.incarnation if node is not None else None,
        memory_node=memory_node(settings, memory_store),
        listen_url=settings.DATABASE_LISTEN_URL or database.url,
        on_pruned=None if compactor is None else compactor.schedule,
    )


def resolve_model(settings: Settings, model: Model | None = None) -> Model:
    """`model` if given (tests, embedders), else the one the settings choose (the CLI's
    jobs summarize with it, as the server does)."""
    return ModelProvider.from_settings(settings, model=model).model
