"""The caller's own account: its fair-use usage, and erasing it (its export is in
`api.exports`)."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.deps import (
    CurrentUserDep,
    DbSessionDep,
    MemoryStoreDep,
    SessionMakerDep,
    TurnRunnerDep,
    UserIdCacheDep,
)
from app.errors import ERROR_RESPONSES, ErrorPublic
from app.models import UsagePublic
from app.services import erasure
from app.services.erasure import ErasureResult

router = APIRouter(prefix="/me", tags=["me"], responses=ERROR_RESPONSES)


@router.delete(
    "",
    response_model=ErasureResult,
    responses={
        409: {"description": "A reply is being generated; nothing erased", "model": ErrorPublic}
    },
)
async def erase_me(
    *,
    user: CurrentUserDep,
    sessionmaker: SessionMakerDep,
    memory_store: MemoryStoreDep,
    user_ids: UserIdCacheDep,
) -> ErasureResult:
    """Erase your account: threads, messages, tasks and the agent's memory of them."""
    result = await erasure.erase_user(
        sessionmaker, memory_store, user_id=user.id, subject=user.subject
    )
    user_ids.forget(user.subject)
    return result


@router.get("/usage", response_model=UsagePublic)
async def read_my_usage(
    *, db: DbSessionDep, user: CurrentUserDep, turns: TurnRunnerDep
) -> UsagePublic:
    """Your fair-use usage: turns and tokens today (UTC), running turns, and your limits."""
    return await turns.limiter.usage(db, user.id, exempt=user.is_admin)
