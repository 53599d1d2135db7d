"""Task endpoints: the example agent's todo list, for front ends that show it beside the chat.

The same rows the agent's tools change, scoped to the caller exactly like threads: another
user's task is a 404, indistinguishable from one that does not exist.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status

from app.api.deps import CurrentUserDep, DbSessionDep
from app.errors import ERROR_RESPONSES, ErrorPublic
from app.models import TaskCreate, TaskPublic, TasksPublic, TaskUpdate
from app.services import tasks
from app.services.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE

_RESPONSES: dict[int | str, dict[str, Any]] = {
    **ERROR_RESPONSES,
    404: {"description": "No such task for this user", "model": ErrorPublic},
}
router = APIRouter(prefix="/tasks", tags=["tasks"], responses=_RESPONSES)


@router.get("", response_model=TasksPublic)
async def list_tasks(
    *,
    db: DbSessionDep,
    user: CurrentUserDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
    after: uuid.UUID | None = None,
    include_done: bool = True,
) -> TasksPublic:
    """The caller's tasks, oldest first (the agent's numbering); pass `after` for the next page."""
    page = await tasks.list_tasks_page(
        db, user_id=user.id, limit=limit, after=after, include_done=include_done
    )
    data = [TaskPublic.model_validate(t) for t in page.data]
    return TasksPublic(data=data, has_more=page.has_more, after=data[-1].id if data else None)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=TaskPublic)
async def create_task(*, db: DbSessionDep, user: CurrentUserDep, body: TaskCreate) -> TaskPublic:
    """Add a task to the caller's list."""
    task = await tasks.add_task(db, user_id=user.id, title=body.title, notes=body.notes)
    return TaskPublic.model_validate(task)


@router.get("/{task_id}", response_model=TaskPublic)
async def get_task(*, db: DbSessionDep, user: CurrentUserDep, task_id: uuid.UUID) -> TaskPublic:
    """One of the caller's tasks."""
    return TaskPublic.model_validate(await tasks.get_task(db, user_id=user.id, task_id=task_id))


@router.patch("/{task_id}", response_model=TaskPublic)
async def update_task(
    *, db: DbSessionDep, user: CurrentUserDep, task_id: uuid.UUID, body: TaskUpdate
) -> TaskPublic:
    """Change a task's title, notes or done flag (omitted fields keep their value)."""
    task = await tasks.update_task(
        db, user_id=user.id, task_id=task_id, title=body.title, notes=body.notes, done=body.done
    )
    return TaskPublic.model_validate(task)


@router.delete("/{task_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_task(*, db: DbSessionDep, user: CurrentUserDep, task_id: uuid.UUID) -> Response:
    """Delete one of the caller's tasks."""
    await tasks.delete_task(db, user_id=user.id, task_id=task_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
