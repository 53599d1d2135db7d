"""Thread endpoints (ChatKit-style): create, list, read, update (rename, archive), delete."""

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
from app.errors import ERROR_RESPONSES, ErrorPublic
from app.models import ThreadCreate, ThreadPublic, ThreadsPublic, ThreadStatus, ThreadUpdate
from app.services import threads
from app.services.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from app.services.threads import UNSET, check_metadata, clean_title

router = APIRouter(prefix="/threads", tags=["threads"], responses=ERROR_RESPONSES)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ThreadPublic)
async def create_thread(
    *,
    db: DbSessionDep,
    user: CurrentUserDep,
    settings: SettingsDep,
    agents: AgentsDep,
    body: ThreadCreate | None = None,
) -> ThreadPublic:
    """Create a thread, optionally titled and with metadata, served by `agent` (default: the
    first in AGENTS)."""
    title = clean_title(body.title if body else None, settings.MAX_TITLE_CHARS)
    metadata = check_metadata(body.metadata if body else None, settings.MAX_THREAD_METADATA_BYTES)
    agent = agents.choose(body.agent if body else None)
    thread = await threads.create_thread(
        db, user_id=user.id, title=title, metadata=metadata, agent=agent
    )
    return ThreadPublic.model_validate(thread)


@router.get("", response_model=ThreadsPublic)
async def list_threads(
    *,
    db: DbSessionDep,
    user: CurrentUserDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
    after: uuid.UUID | None = None,
    status: ThreadStatus | None = None,
) -> ThreadsPublic:
    """The caller's threads, most recent activity first; pass `after` for the next page and
    `status` to list only active or archived ones."""
    page = await threads.list_threads(db, user_id=user.id, limit=limit, after=after, status=status)
    data = [ThreadPublic.model_validate(c) for c in page.data]
    return ThreadsPublic(data=data, has_more=page.has_more, after=data[-1].id if data else None)


@router.get("/{thread_id}", response_model=ThreadPublic)
async def get_thread(*, thread: OwnedThreadDep) -> ThreadPublic:
    """One thread of the caller's."""
    return ThreadPublic.model_validate(thread)


@router.patch("/{thread_id}", response_model=ThreadPublic)
async def update_thread(
    *,
    db: DbSessionDep,
    thread: OwnedThreadDep,
    settings: SettingsDep,
    body: ThreadUpdate,
) -> ThreadPublic:
    """Rename, archive or restore a thread, or replace its metadata: only the fields sent
    change (a blank or null title clears it)."""
    sent = body.model_fields_set
    metadata = check_metadata(body.metadata, settings.MAX_THREAD_METADATA_BYTES)
    changes = threads.ThreadChanges(
        title=clean_title(body.title, settings.MAX_TITLE_CHARS) if "title" in sent else UNSET,
        status=body.status if "status" in sent and body.status is not None else UNSET,
        metadata=(metadata or {}) if "metadata" in sent else UNSET,
    )
    return ThreadPublic.model_validate(await threads.update_thread(db, thread, changes))


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
