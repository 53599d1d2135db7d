"""The todo agent's function tools.

The acting user comes from the run context (`TurnContext`), never from the model's
arguments: a tool can only ever touch its caller's tasks. Each tool call is its own
PostgreSQL transaction, so a task the agent reports as added is really there.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from agents import FunctionTool, RunContextWrapper, function_tool

from app.assistant.context import TurnContext
from app.db import session_scope
from app.errors import NotFoundError
from app.models import Task
from app.models.task import MAX_TASK_TITLE_CHARS
from app.services import tasks

__all__ = ["TASK_TOOLS", "TurnContext"]


def _task_json(task: Task) -> dict[str, Any]:
    return {"id": str(task.id), "title": task.title, "notes": task.notes, "done": task.done}


def _error(message: str) -> str:
    return json.dumps({"error": message})


def _parse_id(task_id: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(task_id)
    except ValueError:
        return None


@function_tool
async def add_task(ctx: RunContextWrapper[TurnContext], title: str, notes: str = "") -> str:
    """Add a task to the user's todo list.

    Args:
        title: Short title of the task.
        notes: Optional longer notes.
    """
    title = title.strip()
    if not title or len(title) > MAX_TASK_TITLE_CHARS:
        return _error(f"title must be 1-{MAX_TASK_TITLE_CHARS} characters")
    async with session_scope(ctx.context.sessionmaker) as db:
        task = await tasks.add_task(db, user_id=ctx.context.user_id, title=title, notes=notes)
        return json.dumps(_task_json(task))


@function_tool
async def list_tasks(ctx: RunContextWrapper[TurnContext], include_done: bool = True) -> str:
    """List the user's tasks, oldest first.

    Args:
        include_done: Whether to include tasks that are already done.
    """
    async with session_scope(ctx.context.sessionmaker) as db:
        found = await tasks.list_tasks(db, user_id=ctx.context.user_id, include_done=include_done)
        return json.dumps({"tasks": [_task_json(t) for t in found]})


@function_tool
async def update_task(
    ctx: RunContextWrapper[TurnContext],
    task_id: str,
    title: str | None = None,
    notes: str | None = None,
) -> str:
    """Change a task's title and/or notes.

    Args:
        task_id: The task's id, as returned by list_tasks.
        title: New title, if it changes.
        notes: New notes, if they change.
    """
    if title is not None and not 0 < len(title.strip()) <= MAX_TASK_TITLE_CHARS:
        return _error(f"title must be 1-{MAX_TASK_TITLE_CHARS} characters")
    return await _change(ctx, task_id, title=title.strip() if title else None, notes=notes)


@function_tool
async def complete_task(ctx: RunContextWrapper[TurnContext], task_id: str) -> str:
    """Mark a task as done.

    Args:
        task_id: The task's id, as returned by list_tasks.
    """
    return await _change(ctx, task_id, done=True)


@function_tool
async def delete_task(ctx: RunContextWrapper[TurnContext], task_id: str) -> str:
    """Delete a task.

    Args:
        task_id: The task's id, as returned by list_tasks.
    """
    parsed = _parse_id(task_id)
    if parsed is None:
        return _error(f"no task with id {task_id!r}")
    try:
        async with session_scope(ctx.context.sessionmaker) as db:
            task = await tasks.delete_task(db, user_id=ctx.context.user_id, task_id=parsed)
    except NotFoundError:
        return _error(f"no task with id {task_id!r}")
    return json.dumps({"deleted": str(task.id), "title": task.title})


async def _change(ctx: RunContextWrapper[TurnContext], task_id: str, **changes: Any) -> str:
    parsed = _parse_id(task_id)
    if parsed is None:
        return _error(f"no task with id {task_id!r}")
    try:
        async with session_scope(ctx.context.sessionmaker) as db:
            task = await tasks.update_task(
                db, user_id=ctx.context.user_id, task_id=parsed, **changes
            )
            return json.dumps(_task_json(task))
    except NotFoundError:
        return _error(f"no task with id {task_id!r}")


TASK_TOOLS: list[FunctionTool] = [add_task, list_tasks, update_task, complete_task, delete_task]
