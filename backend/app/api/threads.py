"""Thread endpoints (ChatKit-style): create, list, read, rename, delete."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from app.deps import (
    CurrentUserDep,
    DbSessionDep,
    MemoryStoreDep,
    SessionMakerDep,
    SettingsDep,
)
from app.errors import ERROR_RESPONSES, ErrorPublic, UnprocessableError
from app.models import ThreadCreate, ThreadPublic, ThreadsPublic, ThreadUpdate
from app.services import conversations
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
    body: ThreadCreate | None = None,
) -> ThreadPublic:
    """Create a thread, optionally titled."""
    title = clean_title(body.title if body else None, settings.MAX_TITLE_CHARS)
    conversation = await conversations.create_conversation(db, user_id=user.id, title=title)
    return ThreadPublic.model_validate(conversation)


@router.get("", response_model=ThreadsPublic)
async def list_threads(
    *,
    db: DbSessionDep,
    user: CurrentUserDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
    after: uuid.UUID | None = None,
) -> ThreadsPublic:
    """The caller's threads, most recent activity first; pass `after` for the next page."""
    page = await conversations.list_conversations(db, user_id=user.id, limit=limit, after=after)
    data = [ThreadPublic.model_validate(c) for c in page.data]
    return ThreadsPublic(data=data, has_more=page.has_more, after=data[-1].id if data else None)


@router.get("/{thread_id}", response_model=ThreadPublic)
async def get_thread(
    *, db: DbSessionDep, user: CurrentUserDep, thread_id: uuid.UUID
) -> ThreadPublic:
    """One thread of the caller's."""
    conversation = await conversations.get_conversation(
        db, user_id=user.id, conversation_id=thread_id
    )
    return ThreadPublic.model_validate(conversation)


@router.patch("/{thread_id}", response_model=ThreadPublic)
async def rename_thread(
    *,
    db: DbSessionDep,
    user: CurrentUserDep,
    settings: SettingsDep,
    thread_id: uuid.UUID,
    body: ThreadUpdate,
) -> ThreadPublic:
    """Rename a thread (a blank or null title clears it)."""
    title = clean_title(body.title, settings.MAX_TITLE_CHARS)
    conversation = await conversations.rename_conversation(
        db, user_id=user.id, conversation_id=thread_id, title=title
    )
    return ThreadPublic.model_validate(conversation)


@router.delete(
    "/{thread_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={409: {"description": "A reply is being generated", "model": ErrorPublic}},
)
async def delete_thread(
    *,
    db: DbSessionDep,
    sessionmaker: SessionMakerDep,
    user: CurrentUserDep,
    settings: SettingsDep,
    memory_store: MemoryStoreDep,
    thread_id: uuid.UUID,
) -> Response:
    """Delete a thread, its messages and its agent memory file."""
    await conversations.delete_conversation(
        db,
        sessionmaker=sessionmaker,
        memory_store=memory_store,
        user_id=user.id,
        conversation_id=thread_id,
        wait_s=settings.AGENT_SESSION_BUSY_TIMEOUT_MS / 1000,
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
