"""The todo agent: the default example of an agent factory (`AGENTS=todo=app.assistant.todo:build_agent`).

A factory is called once at startup with the settings and the model they chose, and returns
an SDK `Agent` whose tools take the `TurnContext` run context.
"""

from __future__ import annotations

from agents import Agent
from agents.models.interface import Model

from app.assistant.context import TurnContext
from app.assistant.tools import TASK_TOOLS
from app.config import Settings

INSTRUCTIONS = """\
You are Threadkeeper's todo assistant. You keep the user's todo list with your tools:
add_task, list_tasks, update_task, complete_task and delete_task. To change or remove a task,
call list_tasks first and use the task's id from its output; never invent ids. Confirm what you
did in one short sentence. You remember the thread: when the user asks about something
said earlier, answer from the thread history. Be brief."""

AGENT_NAME = "Threadkeeper"


def build_agent(settings: Settings, model: Model) -> Agent[TurnContext]:
    """The todo agent on `model` (`settings` are unused: the todo agent needs none)."""
    del settings
    return Agent[TurnContext](
        name=AGENT_NAME,
        handoff_description="Keeps the user's todo list: adds, lists, renames, completes and "
        "deletes tasks.",
        instructions=INSTRUCTIONS,
        model=model,
        tools=list(TASK_TOOLS),
    )
