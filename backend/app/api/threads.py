"""Thread endpoints (ChatKit-style): create, list, read, rename, delete."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from app.api.deps import (
    AgentsDep,
    CurrentUserDep,
    DbSessionDep,
    MemoryStoreDep,
    OwnedThreadDep,
    SessionMakerDep,
    SettingsDep,
)
from app.errors import ERROR_RESPONSES, ErrorPublic, UnprocessableError
from app.models import ThreadCreate, ThreadPublic, ThreadsPublic, ThreadUpdate
from app.services import threads
from app.services.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE

router = APIRouter(prefix="/threads", tags=["threads"], responses=ERROR_RESPONSES)


def clean_title(title: str | None, max_chars: int) -> str | None:
    """Trim a title; blank means untitled. Raises UnprocessableError past the limit."""
    if title is None or not title.strip():
        return None
    title = title.strip()
    if len(title) > max_chars:
        raise UnprocessableError(f"title is {len(title)} characters; the limit is {max_chars}")
    return title


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ThreadPublic)
async def create_thread(
    *,
    db: DbSessionDep,
    user: CurrentUserDep,
    settings: SettingsDep,
    agents: AgentsDep,
    body: ThreadCreate | None = None,
) -> ThreadPublic:
    """Create a thread, optionally titled, served by `agent` (default: the first in AGENTS)."""
    title = clean_title(body.title if body else None, settings.MAX_TITLE_CHARS)
    agent = agents.choose(body.agent if body else None)
    thread = await threads.create_thread(db, user_id=user.id, title=title, agent=agent)
    return ThreadPublic.model_validate(thread)


@router.get("", response_model=ThreadsPublic)
async def list_threads(
    *,
    db: DbSessionDep,
    user: CurrentUserDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
    after: uuid.UUID | None = None,
) -> ThreadsPublic:
    """The caller's threads, most recent activity first; pass `after` for the next page."""
    page = await threads.list_threads(db, user_id=user.id, limit=limit, after=after)
    data = [ThreadPublic.model_validate(c) for c in page.data]
    return ThreadsPublic(data=data, has_more=page.has_more, after=data[-1].id if data else None)


@router.get("/{thread_id}", response_model=ThreadPublic)
async def get_thread(*, thread: OwnedThreadDep) -> ThreadPublic:
    """One thread of the caller's."""
    return ThreadPublic.model_validate(thread)


@router.patch("/{thread_id}", response_model=ThreadPublic)
async def rename_thread(
    *,
    db: DbSessionDep,
    thread: OwnedThreadDep,
    settings: SettingsDep,
    body: ThreadUpdate,
) -> ThreadPublic:
    """Rename a thread (a blank or null title clears it)."""
    title = clean_title(body.title, settings.MAX_TITLE_CHARS)
    return ThreadPublic.model_validate(await threads.rename_thread(db, thread, title=title))


@router.delete(
    "/{thread_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={409: {"description": "A reply is being generated", "model": ErrorPublic}},
)
async def delete_thread(
    *,
    db: DbSessionDep,
    sessionmaker: SessionMakerDep,
    thread: OwnedThreadDep,
    settings: SettingsDep,
    memory_store: MemoryStoreDep,
) -> Response:
    """Delete a thread, its messages and its agent memory file."""
    await threads.delete_thread(
        db,
        thread,
        sessionmaker=sessionmaker,
        memory_store=memory_store,
        wait_s=settings.AGENT_SESSION_BUSY_TIMEOUT_MS / 1000,
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
