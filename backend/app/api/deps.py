"""Dependency aliases: routes declare what they need with these, never with globals.

Everything the lifespan builds is reached through `request.state`; settings live on
`app.state` because `create_app(settings)` receives them before any lifespan runs.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.exc import IntegrityError
from sqlmodel.ext.asyncio.session import AsyncSession

from app.assistant.provider import ModelProvider
from app.assistant.registry import AgentRegistry
from app.auth import TokenService
from app.config import Settings
from app.db import SessionMaker, get_db_session, get_sessionmaker
from app.errors import ForbiddenError, UnauthorizedError
from app.memory import MemoryStore
from app.models import Thread
from app.services import threads
from app.services.users import AccountGoneError, UserIdCache, is_missing_user
from app.turns.runner import TurnRunner

_bearer = HTTPBearer(auto_error=False, description="A JWT; `make -s token USER=alice` prints one")


def get_app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_memory_store(request: Request) -> MemoryStore:
    store: MemoryStore = request.state.memory_store
    return store


def get_turn_runner(request: Request) -> TurnRunner:
    runner: TurnRunner = request.state.turn_runner
    return runner


def get_agents(request: Request) -> AgentRegistry:
    agents: AgentRegistry = request.state.agents
    return agents


def get_model_provider(request: Request) -> ModelProvider:
    provider: ModelProvider = request.state.model_provider
    return provider


def get_token_service(request: Request) -> TokenService:
    tokens: TokenService = request.state.token_service
    return tokens


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
# scope="function": the transaction ends (commit or rollback) when the handler returns, before
# the response is sent, so a failed commit becomes a handled error (503), never a dropped
# connection or a success reported for data that was not saved.
DbSessionDep = Annotated[AsyncSession, Depends(get_db_session, scope="function")]
SessionMakerDep = Annotated[SessionMaker, Depends(get_sessionmaker)]
MemoryStoreDep = Annotated[MemoryStore, Depends(get_memory_store)]
TokenServiceDep = Annotated[TokenService, Depends(get_token_service)]
TurnRunnerDep = Annotated[TurnRunner, Depends(get_turn_runner)]
AgentsDep = Annotated[AgentRegistry, Depends(get_agents)]
ModelProviderDep = Annotated[ModelProvider, Depends(get_model_provider)]


@dataclass(frozen=True)
class CurrentUser:
    id: uuid.UUID
    subject: str
    is_admin: bool


def get_user_id_cache(request: Request) -> UserIdCache:
    cache: UserIdCache = request.state.user_ids
    return cache


UserIdCacheDep = Annotated[UserIdCache, Depends(get_user_id_cache)]


async def get_current_user(
    db: DbSessionDep,
    tokens: TokenServiceDep,
    user_ids: UserIdCacheDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> AsyncIterator[CurrentUser]:
    """The caller named by the bearer token; created on first sight.

    A write that finds the caller's user row gone (erased by another worker while this one
    still had the id cached) is answered 409 and the id forgotten, so a retry starts afresh.
    """
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise UnauthorizedError("Missing bearer token: send 'Authorization: Bearer <JWT>'")
    claims = tokens.verify(credentials.credentials)
    user_id = await user_ids.resolve(db, claims.subject)
    try:
        yield CurrentUser(id=user_id, subject=claims.subject, is_admin=claims.is_admin)
    except IntegrityError as e:
        if not is_missing_user(e):
            raise
        user_ids.forget_id(user_id)
        raise AccountGoneError(
            "Your account was erased while this request ran; send it again to start afresh"
        ) from e


# scope="function", like the database session: the handler's errors reach it before the
# response is sent (see get_current_user).
CurrentUserDep = Annotated[CurrentUser, Depends(get_current_user, scope="function")]


async def get_admin_user(user: CurrentUserDep) -> CurrentUser:
    if not user.is_admin:
        raise ForbiddenError("This endpoint needs a token with the admin claim")
    return user


AdminUserDep = Annotated[CurrentUser, Depends(get_admin_user)]


async def get_owned_thread(
    *, db: DbSessionDep, user: CurrentUserDep, thread_id: uuid.UUID
) -> Thread:
    """The caller's thread named by the path's `{thread_id}`: another user's is a 404.

    Every route with a `{thread_id}` takes its thread through this dependency, so ownership
    is checked in one place; the isolation test finds such routes in `app.routes`.
    """
    return await threads.get_thread(db, user_id=user.id, thread_id=thread_id)


OwnedThreadDep = Annotated[Thread, Depends(get_owned_thread)]
