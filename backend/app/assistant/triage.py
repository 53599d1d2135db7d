"""A second example agent: a front desk that answers about the thread and hands tasks to the todo agent.

Serve it with `AGENTS=triage=app.assistant.triage:build_agent,todo=app.assistant.todo:build_agent`
(threads then start with triage by default; `{"agent": "todo"}` picks the todo agent directly).
It shows the two halves of the extension point:

- a tool that uses the run context: `thread_info` reads the caller's current thread from
  PostgreSQL with `ctx.context.user_id`, `ctx.context.thread_id` and `ctx.context.sessionmaker`;
- an SDK handoff: task requests go to the todo agent (`transfer_to_todo`), which answers
  in the same run with its own tools. The handoff's call and output are kept in memory and in
  the reply's `tool_calls`, like any tool call.
"""

from __future__ import annotations

import json

from agents import Agent, RunContextWrapper, function_tool, handoff
from agents.models.interface import Model

from app.assistant import todo
from app.assistant.context import TurnContext
from app.config import Settings
from app.db import session_scope
from app.services import threads

INSTRUCTIONS = """\
You are Threadkeeper's front desk. Anything about the user's tasks or todo list (adding,
listing, completing, renaming, deleting) is the todo agent's job: hand off to it with
transfer_to_todo. When asked about this conversation (its title, how long it is), call
thread_info. Answer anything else yourself, briefly, from the thread history."""

HANDOFF_TOOL = "transfer_to_todo"


@function_tool
async def thread_info(ctx: RunContextWrapper[TurnContext]) -> str:
    """Facts about the current conversation: its title, message count and when it began."""
    async with session_scope(ctx.context.sessionmaker) as db:
        thread = await threads.get_thread(
            db, user_id=ctx.context.user_id, thread_id=ctx.context.thread_id
        )
        return json.dumps(
            {
                "title": thread.title,
                "messages": thread.message_count,
                "started": thread.created_at.date().isoformat(),
            }
        )


def build_agent(settings: Settings, model: Model) -> Agent[TurnContext]:
    """The triage agent on `model`, with the todo agent (same model) behind a handoff."""
    todo_agent = todo.build_agent(settings, model)
    return Agent[TurnContext](
        name="Triage",
        instructions=INSTRUCTIONS,
        model=model,
        tools=[thread_info],
        handoffs=[handoff(todo_agent, tool_name_override=HANDOFF_TOOL)],
    )
