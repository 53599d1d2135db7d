"""Operator actions on users' data: erase a user by subject, rebuild the search vectors.

The admin API and the CLI call these, with the same job context the maintenance jobs get.
"""

from __future__ import annotations

from typing import Any

from app.errors import NotFoundError
from app.scheduler.context import JobContext
from app.services import erasure, search_index
from app.services.erasure import ErasureResult
from app.services.users import find_user_id


async def erase_subject(ctx: JobContext, subject: str) -> ErasureResult:
    """Erase the user a token's `sub` names (never creating one).

    Raises:
        NotFoundError: no user has this subject.
        ErasureBusyError: a reply is being generated in one of their threads.
    """
    async with ctx.sessionmaker() as db:
        user_id = await find_user_id(db, subject)
    if user_id is None:
        raise NotFoundError(f"No user with subject {subject!r}")
    return await erasure.erase_user(
        ctx.sessionmaker, ctx.memory_store, user_id=user_id, subject=subject
    )


async def reindex_search(ctx: JobContext, *, force: bool = False) -> dict[str, Any]:
    """Bring the search vectors to SEARCH_TEXT_CONFIG (a job: `run-job reindex-search`).

    Args:
        force: rebuild every vector even when the configuration is unchanged.
    """
    return await search_index.reindex(
        ctx.sessionmaker, ctx.settings.SEARCH_TEXT_CONFIG, force=force
    )
