"""The turn-aligned prune of one thread's memory in PostgreSQL (the `postgres` backend).

The same rule as `pruning.plan_cut` for the SQLite files, in SQL: count the items (the
summary at the head pinned, uncounted), find the oldest turn start inside the newest
`down_to` items, and delete what precedes it, all in the caller's transaction, which holds
the session's row lock, so no writer on any node sees half a prune. A newest turn that alone
is over the cap is kept whole; memory with no turn boundary is left as it is.
"""

from __future__ import annotations

from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from app.memory.pg_rows import turn_starts
from app.memory.pruning import PruneResult


async def prune_session(
    conn: AsyncConnection, session_id: str, max_items: int, down_to: int | None, pinned: int | None
) -> PruneResult:
    """`pruning.prune_rows` for PostgreSQL, inside the caller's transaction."""
    params = {"s": session_id, "p": pinned}
    not_pinned = "(CAST(:p AS bigint) IS NULL OR id <> :p)"
    total = int(
        (
            await conn.execute(
                sa.text(
                    "SELECT count(*) FROM sdk_agent_session_messages "
                    f"WHERE session_id = :s AND {not_pinned}"
                ),
                params,
            )
        ).scalar_one()
    )
    extra = 0 if pinned is None else 1
    if total <= max_items:
        return PruneResult(removed=0, kept=total + extra, oversized_turn=False)
    budget = min(max_items, max_items if down_to is None else down_to)
    window = (
        await conn.execute(
            sa.text(
                "SELECT min(id) FROM (SELECT id FROM sdk_agent_session_messages "
                f"WHERE session_id = :s AND {not_pinned} ORDER BY id DESC LIMIT :n) AS w"
            ),
            {**params, "n": budget},
        )
    ).scalar_one()
    keep_from: int | None = None
    # The newest turn start in the window... the oldest one in it is what to keep from.
    async for row_id, _item in turn_starts(conn, session_id, newest_first=True):
        if row_id < window:
            if keep_from is None:  # the newest turn alone is over the cap: keep it whole
                keep_from = row_id
            break
        keep_from = row_id
    oversized = keep_from is None or keep_from < window
    if keep_from is None:  # no turn boundary at all: no cut would be valid
        return PruneResult(removed=0, kept=total + extra, oversized_turn=True)
    result = await conn.execute(
        sa.text(
            "DELETE FROM sdk_agent_session_messages "
            f"WHERE session_id = :s AND id < :k AND {not_pinned}"
        ),
        {**params, "k": keep_from},
    )
    removed = int(cast(Any, result).rowcount)
    return PruneResult(removed=removed, kept=total + extra - removed, oversized_turn=oversized)
