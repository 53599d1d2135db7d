"""The run context every agent's tools receive: who is asking, in which thread, and the database.

A tool declares `ctx: RunContextWrapper[TurnContext]` as its first parameter and reads
`ctx.context`. The ids come from the authenticated request, never from the model's arguments,
so a tool can only ever act for its caller:

    @function_tool
    async def count_messages(ctx: RunContextWrapper[TurnContext]) -> str:
        async with session_scope(ctx.context.sessionmaker) as db:
            thread = await threads.get_thread(
                db, user_id=ctx.context.user_id, thread_id=ctx.context.thread_id
            )
            return str(thread.message_count)

Each `session_scope` is one PostgreSQL transaction that commits when the block ends, so what a
tool reports as done is saved, whatever happens to the rest of the turn.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from app.db import SessionMaker


@dataclass(frozen=True)
class TurnContext:
    """What tools may know about the turn.

    Attributes:
        user_id: The user who sent the message (their tasks, threads and rows only).
        thread_id: The thread the turn runs in (the caller's own).
        sessionmaker: Opens PostgreSQL sessions: `async with session_scope(sessionmaker) as db`.
    """

    user_id: uuid.UUID
    thread_id: uuid.UUID
    sessionmaker: SessionMaker
