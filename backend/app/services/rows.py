"""Inserting a table model's row with one Core INSERT, not through the ORM's unit of work.

A turn inserts two rows on its hot path (its `turns` row, each message). Adding them to the
session and flushing ran the unit of work (change tracking, dependency sort, identity map,
the object's refresh bookkeeping) for one row at a time: more of the worker's CPU than the
INSERT itself. The row is built as before (its Python defaults apply), then its mapped
columns are sent as they are; the object stays outside the session, which none of these
callers reads it through (the session does not expire on commit).
"""

from __future__ import annotations

from typing import Any, cast

import sqlalchemy as sa
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession


async def insert_row(db: AsyncSession, row: SQLModel) -> None:
    """INSERT `row` (every mapped column, as the object holds it) in the caller's transaction."""
    mapper = sa.inspect(type(row))
    table = cast(sa.Table, mapper.local_table)
    values: dict[str, Any] = {
        prop.columns[0].key: getattr(row, prop.key) for prop in mapper.column_attrs
    }
    await (await db.connection()).execute(table.insert(), values)
