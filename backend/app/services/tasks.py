"""The example agent's tasks. Every function takes the owner's id: no cross-user access."""

from __future__ import annotations

import uuid

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.errors import NotFoundError
from app.models import Task
from app.models.base import utc_now


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
