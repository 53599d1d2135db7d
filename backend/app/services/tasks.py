"""The example agent's tasks. Every function takes the owner's id: no cross-user access."""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.errors import BadRequestError, NotFoundError
from app.models import Task
from app.models.base import utc_now
from app.services.pagination import Page


async def add_task(db: AsyncSession, *, user_id: uuid.UUID, title: str, notes: str = "") -> Task:
    task = Task(user_id=user_id, title=title, notes=notes)
    db.add(task)
    await db.flush()
    return task


async def list_tasks(
    db: AsyncSession, *, user_id: uuid.UUID, include_done: bool = True
) -> list[Task]:
    """The user's tasks, oldest first (the order the assistant numbers them in)."""
    query = select(Task).where(Task.user_id == user_id)
    if not include_done:
        query = query.where(col(Task.done).is_(False))
    return list((await db.exec(query.order_by(col(Task.created_at), col(Task.id)))).all())


async def list_tasks_page(
    db: AsyncSession,
    *,
    user_id: uuid.UUID,
    limit: int,
    after: uuid.UUID | None,
    include_done: bool = True,
) -> Page[Task]:
    """One page of the user's tasks in `list_tasks` order, after the task `after`.

    Raises:
        BadRequestError: `after` is not one of the user's tasks.
    """
    key = sa.tuple_(Task.created_at, Task.id)
    query = select(Task).where(Task.user_id == user_id)
    if after is not None:
        cursor = (
            await db.exec(
                select(Task.created_at, Task.id).where(Task.id == after, Task.user_id == user_id)
            )
        ).first()
        if cursor is None:
            raise BadRequestError(f"Unknown cursor 'after={after}'")
        query = query.where(key > sa.tuple_(*cursor))
    if not include_done:
        query = query.where(col(Task.done).is_(False))
    query = query.order_by(col(Task.created_at), col(Task.id)).limit(limit + 1)
    return Page.from_rows((await db.exec(query)).all(), limit)


async def get_task(db: AsyncSession, *, user_id: uuid.UUID, task_id: uuid.UUID) -> Task:
    """Raises NotFoundError for a task that is not the user's."""
    task = (await db.exec(select(Task).where(Task.id == task_id, Task.user_id == user_id))).first()
    if task is None:
        raise NotFoundError(f"Task {task_id} not found")
    return task


async def update_task(
    db: AsyncSession,
    *,
    user_id: uuid.UUID,
    task_id: uuid.UUID,
    title: str | None = None,
    notes: str | None = None,
    done: bool | None = None,
) -> Task:
    task = await get_task(db, user_id=user_id, task_id=task_id)
    if title is not None:
        task.title = title
    if notes is not None:
        task.notes = notes
    if done is not None:
        task.done = done
    task.updated_at = utc_now()
    db.add(task)
    await db.flush()
    return task


async def delete_task(db: AsyncSession, *, user_id: uuid.UUID, task_id: uuid.UUID) -> Task:
    task = await get_task(db, user_id=user_id, task_id=task_id)
    await db.delete(task)
    await db.flush()
    return task
