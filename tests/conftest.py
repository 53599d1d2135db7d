"""Test harness: a real PostgreSQL, real memory files, the real app lifespan.

The environment is set before `app` is imported, because settings are cached and the app
module builds its default app at import time.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

os.environ.update(
    {
        "APP_ENV": "test",
        "SCHEDULER_ENABLED": "false",
        "MODEL_PROVIDER": "offline",
        "AUTH_JWT_SECRET": "test-secret-that-is-long-enough-for-hs256-0123456789",
        "LOG_LEVEL": "WARNING",
        # The SDK's default trace exporter posts to api.openai.com whenever a run is traced
        # (the app traces only with TRACING_ENABLED), whatever OPENAI_BASE_URL says; no test
        # may do that. A test that wants traces sends them to the model server instead.
        "OPENAI_AGENTS_DISABLE_TRACING": "1",
    }
)
os.environ.pop("OPENAI_API_KEY", None)
os.environ.pop("DATABASE_URL", None)

import httpx
from agents.models.interface import Model
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from starlette.types import ASGIApp

from app.auth import TokenService
from app.config import Settings, load_settings
from app.db import SessionMaker, session_scope
from app.main import create_app
from app.memory import AgentMemoryStore
from app.services.users import get_or_create_user
from app.turns.runner import TurnRunner
from tests.database import TestDatabase, provision_test_database

REPO_ROOT = Path(__file__).resolve().parent.parent

# The scripted OpenAI-compatible model server (`model_server`, `model_client`).
pytest_plugins = ["tests.model_server.fixtures"]


@pytest.fixture(scope="session")
def test_database() -> Iterator[TestDatabase]:
    """A freshly created, migrated database for this run; dropped at the end."""
    with provision_test_database(REPO_ROOT / "data" / "test-postgres") as database:
        yield database


@pytest.fixture(scope="session")
def database_url(test_database: TestDatabase) -> str:
    return test_database.url


@pytest.fixture
def settings_factory(database_url: str, tmp_path: Path) -> Callable[..., Settings]:
    """Settings for an app under test; keyword arguments override any setting."""

    def _make(**overrides: object) -> Settings:
        values: dict[str, object] = {
            "DATABASE_URL": database_url,
            "DATA_DIR": tmp_path,
            "AGENT_SESSION_DIR": tmp_path / "sessions",
            # Fair use is off unless a test is about it (tests/turns/test_limits.py).
            "LIMIT_TURNS_PER_MINUTE": 0,
            "LIMIT_RUNNING_TURNS": 0,
            "LIMIT_DAILY_TOKENS": 0,
            "LIMIT_OPEN_STREAMS": 0,
        }
        values.update(overrides)
        return load_settings(**values)

    return _make


def node_settings(
    settings_factory: Callable[..., Settings], tmp_path: Path, name: str, **overrides: object
) -> Settings:
    """Settings of node `name`: a DATA_DIR (memory files included) and NODE_ID of its own."""
    data_dir = tmp_path / name
    return settings_factory(
        DATA_DIR=data_dir,
        AGENT_SESSION_DIR=data_dir / "sessions",
        NODE_ID=f"node-{name}",
        **overrides,
    )


@pytest.fixture
def settings(settings_factory: Callable[..., Settings]) -> Settings:
    return settings_factory()


@pytest.fixture
def provider_settings(
    settings_factory: Callable[..., Settings], model_server
) -> Callable[..., Settings]:
    """Settings for the openai provider on the scripted model server (the real HTTP path).

    Retries are off unless a test turns them on, so each scripted step answers one request.
    """

    from tests.model_server.fixtures import TEST_API_KEY  # a plugin: imported by pytest first

    def _make(api: str = "chat_completions", **overrides: object) -> Settings:
        values: dict[str, object] = {
            "MODEL_PROVIDER": "openai",
            "OPENAI_BASE_URL": model_server.base_url,
            "OPENAI_API_KEY": TEST_API_KEY,
            "OPENAI_API": api,
            "OPENAI_MAX_RETRIES": 0,
        }
        values.update(overrides)
        return settings_factory(**values)

    return _make


@pytest.fixture
def private_database(test_database: TestDatabase) -> Iterator[str]:
    """A migrated database of this test's own (see `TestDatabase.private_copy`)."""
    with test_database.private_copy() as url:
        yield url


@pytest.fixture
def private_settings(settings_factory: Callable[..., Settings], private_database: str) -> Settings:
    """Settings whose DATABASE_URL is this test's own database: every count is exact."""
    return settings_factory(DATABASE_URL=private_database)


@dataclass
class RunningApp:
    """An app whose lifespan is running, and what the lifespan built."""

    app: FastAPI
    asgi: ASGIApp  # the app wrapped so each request sees the lifespan state
    state: dict[str, Any]

    @property
    def memory_store(self) -> AgentMemoryStore:
        return self.state["memory_store"]  # type: ignore[no-any-return]

    @property
    def sessionmaker(self) -> SessionMaker:
        return self.state["sessionmaker"]  # type: ignore[no-any-return]

    async def user_id(self, headers: dict[str, str]) -> uuid.UUID:
        """The id of the user a bearer header names (created on first request)."""
        subject = self.state["token_service"].verify(headers["Authorization"].split()[1]).subject
        async with session_scope(self.sessionmaker) as db:
            return await get_or_create_user(db, subject)

    @property
    def turn_runner(self) -> TurnRunner:
        return self.state["turn_runner"]  # type: ignore[no-any-return]

    def client(self) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.asgi)
        return httpx.AsyncClient(transport=transport, base_url="http://test")


@asynccontextmanager
async def start_app(settings: Settings, *, model: Model | None = None) -> AsyncIterator[RunningApp]:
    """Run an app's real lifespan; `model` replaces the settings' model (any SDK Model)."""
    application = create_app(settings, model=model)
    async with LifespanManager(application) as manager:
        yield RunningApp(app=application, asgi=manager.app, state=manager._state)


@pytest.fixture
async def running(settings: Settings) -> AsyncIterator[RunningApp]:
    """The app with its real lifespan running (engine, memory store, token service)."""
    async with start_app(settings) as running_app:
        yield running_app


@pytest.fixture
async def client(running: RunningApp) -> AsyncIterator[httpx.AsyncClient]:
    async with running.client() as c:
        yield c


LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})


def is_loopback_url(url: object) -> bool:
    """True for http(s) URLs on this machine: the model server, never a provider."""
    parsed = urlsplit(str(url))
    return parsed.scheme in ("http", "https", "ws", "wss") and parsed.hostname in LOOPBACK_HOSTS


@pytest.fixture(autouse=True)
def disable_real_model_clients(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fail any test that builds an OpenAI client aimed off this machine.

    Clients of the scripted model server (`tests/model_server`, on 127.0.0.1) are allowed;
    the default `api.openai.com`, or any other remote base URL, fails the test. The check
    runs after the client's own constructor, so it sees the URL the client really resolved
    (argument, `OPENAI_BASE_URL` or the default). `allow_model_client` lifts the guard.
    """
    if request.node.get_closest_marker("allow_model_client"):
        return

    import openai

    def _guard(client_class: type[Any]) -> None:
        original = client_class.__init__

        def _checked(self: Any, *args: Any, **kwargs: Any) -> None:
            original(self, *args, **kwargs)
            urls = [self.base_url, getattr(self, "websocket_base_url", None)]
            remote = [str(url) for url in urls if url is not None and not is_loopback_url(url)]
            if remote:
                pytest.fail(
                    f"A test built a real network model client (openai) for {remote[0]}; "
                    "aim it at the model_server fixture instead"
                )

        monkeypatch.setattr(client_class, "__init__", _checked)

    _guard(openai.AsyncOpenAI)
    _guard(openai.OpenAI)


@pytest.fixture
def tokens(settings: Settings) -> TokenService:
    return TokenService.from_settings(settings)


@pytest.fixture
def auth_for(tokens: TokenService) -> Callable[..., dict[str, str]]:
    """Headers for a user; every test gets its own subjects, so tests never share users."""
    run_id = uuid.uuid4().hex[:8]

    def _headers(name: str = "alice", *, admin: bool = False) -> dict[str, str]:
        return {"Authorization": f"Bearer {tokens.issue(f'{name}-{run_id}', admin=admin)}"}

    return _headers


@pytest.fixture
def alice(auth_for: Callable[..., dict[str, str]]) -> dict[str, str]:
    return auth_for("alice")


@pytest.fixture
def bob(auth_for: Callable[..., dict[str, str]]) -> dict[str, str]:
    return auth_for("bob")
