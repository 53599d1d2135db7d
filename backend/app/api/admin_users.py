"""Operators erase a user by subject (tokens with the admin claim only)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from app.api.admin import JobContextDep
from app.api.deps import UserIdCacheDep, get_admin_user
from app.errors import ERROR_RESPONSES, ErrorPublic
from app.models.text import StorableText
from app.scheduler.data_admin import erase_subject
from app.services.erasure import ErasureResult

router = APIRouter(
    prefix="/admin/users",
    tags=["admin"],
    dependencies=[Depends(get_admin_user)],
    responses={**ERROR_RESPONSES, 403: {"description": "No admin claim", "model": ErrorPublic}},
)


@router.delete(
    "/{subject:path}",
    response_model=ErasureResult,
    responses={
        404: {"description": "No user with this subject", "model": ErrorPublic},
        409: {"description": "A reply is being generated; nothing erased", "model": ErrorPublic},
    },
)
async def erase_user(
    *, ctx: JobContextDep, user_ids: UserIdCacheDep, subject: StorableText
) -> ErasureResult:
    """Erase a user (by token subject): threads, messages, tasks, memory files."""
    result = await erase_subject(ctx, subject)
    user_ids.forget(subject)
    return result
