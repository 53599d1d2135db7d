"""Operators act on a user by subject (tokens with the admin claim only): read their
fair-use usage, set their limits, erase them."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from app.api.admin import JobContextDep
from app.api.deps import DbSessionDep, TurnRunnerDep, UserIdCacheDep, get_admin_user
from app.errors import ERROR_RESPONSES, ErrorPublic
from app.models import UsagePublic, UserLimitsUpdate
from app.models.text import StorableText
from app.scheduler.data_admin import erase_subject
from app.services import limits
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


_NO_USER: dict[int | str, dict[str, Any]] = {
    404: {"description": "No user with this subject", "model": ErrorPublic}
}


@router.get("/{subject:path}/usage", response_model=UsagePublic, responses=_NO_USER)
async def read_user_usage(
    *, db: DbSessionDep, turns: TurnRunnerDep, subject: StorableText
) -> UsagePublic:
    """A user's fair-use usage and limits (as `GET /api/me/usage` shows them to the user)."""
    user_id = await limits.user_id_for(db, subject)
    return await turns.limiter.usage(db, user_id, exempt=False)


@router.put("/{subject:path}/limits", response_model=UsagePublic, responses=_NO_USER)
async def set_user_limits(
    *, db: DbSessionDep, turns: TurnRunnerDep, subject: StorableText, body: UserLimitsUpdate
) -> UsagePublic:
    """Override a user's limits: a number replaces the LIMIT_* setting (0: unlimited), null
    restores it. Takes effect at their next turn, on every node."""
    user_id = await limits.user_id_for(db, subject)
    await limits.set_overrides(db, user_id, body)
    return await turns.limiter.usage(db, user_id, exempt=False)
