"""Node incarnations in PostgreSQL: registering a start, and freeing what a crash left held.

See `app.node` for what a node and an incarnation are. A node that starts a new incarnation
knows every earlier incarnation of the same node is dead (no process of the node was alive),
so the leases they hold can be given back at once, and their turns marked failed
(`interrupted`); other nodes' leases still expire by time.
"""

from __future__ import annotations

import logging
import uuid

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.db import SessionMaker, session_scope
from app.models import NodeIncarnation, Thread, Turn, TurnStatus
from app.node import NodeIdentity

logger = logging.getLogger(__name__)


async def register_incarnation(sessionmaker: SessionMaker, identity: NodeIdentity) -> int:
    """Record this incarnation; on a fresh one, free the node's earlier incarnations' leases.

    Returns:
        How many leases were freed.
    """
    async with session_scope(sessionmaker) as db:
        await db.exec(
            insert(NodeIncarnation)
            .values(id=identity.incarnation, node_id=identity.node_id)
            .on_conflict_do_nothing()
        )
        if not identity.fresh:
            return 0
        earlier = select(NodeIncarnation.id).where(
            col(NodeIncarnation.node_id) == identity.node_id,
            col(NodeIncarnation.id) != identity.incarnation,
        )
        freed = (
            await db.exec(
                select(Thread.id, Thread.active_turn_id)
                .where(
                    col(Thread.active_turn_incarnation).in_(earlier),
                    col(Thread.active_turn_id).is_not(None),
                )
                .with_for_update()
            )
        ).all()
        if not freed:
            return 0
        await _free(db, [row[0] for row in freed], [row[1] for row in freed if row[1]])
    logger.warning(
        "Freed %d thread leases held by this node's previous start (node %s)",
        len(freed),
        identity.node_id,
    )
    return len(freed)


async def _free(db: AsyncSession, thread_ids: list[uuid.UUID], holders: list[uuid.UUID]) -> None:
    await db.exec(
        sa.update(Thread)
        .where(col(Thread.id).in_(thread_ids))
        .values(active_turn_id=None, active_turn_expires_at=None, active_turn_incarnation=None)
    )
    # The holders that were turns: they ended when the node died.
    await db.exec(
        sa.update(Turn)
        .where(col(Turn.id).in_(holders), col(Turn.status) == TurnStatus.RUNNING)
        .values(status=TurnStatus.FAILED, error_code="interrupted", finished_at=sa.func.now())
    )
    await db.exec(
        sa.update(Thread)
        .where(col(Thread.last_turn_id).in_(holders), col(Thread.last_turn_status) == "running")
        .values(last_turn_status=TurnStatus.FAILED)
    )
