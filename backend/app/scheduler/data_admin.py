"""Operator actions on users' data: erase a user by subject, rebuild the search vectors.

The admin API and the CLI call these, with the same job context the maintenance jobs get.
"""

from __future__ import annotations

from typing import Any

from app.scheduler.context import JobContext
from app.services import search_index


async def reindex_search(ctx: JobContext, *, force: bool = False) -> dict[str, Any]:
    """Bring the search vectors to SEARCH_TEXT_CONFIG (a job: `run-job reindex-search`).

    Args:
        force: rebuild every vector even when the configuration is unchanged.
    """
    return await search_index.reindex(
        ctx.sessionmaker, ctx.settings.SEARCH_TEXT_CONFIG, force=force
    )
