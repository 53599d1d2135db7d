"""A plugged-in agent: `AGENTS=...,support=tests.agent_plugin.support:build_agent`.

Its one tool reports what the run context told it (the caller, the thread) and what it read
from PostgreSQL through the context's sessionmaker, so a test can check all three.
"""

from __future__ import annotations

import json

from agents import Agent, RunContextWrapper, function_tool
from agents.models.interface import Model

from app.assistant.context import TurnContext
from app.config import Settings
from app.db import session_scope
from app.services import threads

BUILT: list[tuple[Settings, Model]] = []
"""Every (settings, model) the factory was called with, oldest first."""


@function_tool
async def whoami(ctx: RunContextWrapper[TurnContext]) -> str:
    """Who is asking, in which thread, and how many messages that thread has."""
    async with session_scope(ctx.context.sessionmaker) as db:
        thread = await threads.get_thread(
            db, user_id=ctx.context.user_id, thread_id=ctx.context.thread_id
        )
    return json.dumps(
        {
            "user_id": str(ctx.context.user_id),
            "thread_id": str(ctx.context.thread_id),
            "agent": thread.agent,
            "messages": thread.message_count,
        }
    )


def build_agent(settings: Settings, model: Model) -> Agent[TurnContext]:
    BUILT.append((settings, model))
    return Agent[TurnContext](
        name="Support", instructions="Help the user.", model=model, tools=[whoami]
    )
