"""Starting a turn from ChatKit: the same three steps as a REST send or retry.

`TurnRunner.prepare` (or `prepare_retry`) claims the thread and writes the log, the request's
transaction commits (the user message, with its ChatKit item), then `start` runs the turn in
a task of its own. The steps are shielded: once the user message is committed its turn runs
whatever the client does (as for REST); a client that aborted meanwhile stops it in turn.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import sqlalchemy as sa
from chatkit.store import NotFoundError as ChatKitNotFoundError
from chatkit.types import UserMessageItem
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from app.chatkit.context import ChatKitContext
from app.chatkit.ids import parse_item_id
from app.chatkit.items import turn_text
from app.chatkit.queries import find_message, owned_thread
from app.models import Message, Thread
from app.turns.turn import RunningTurn

_Prepare = Callable[[AsyncSession, Thread], Awaitable[RunningTurn]]


async def start_turn(context: ChatKitContext, thread_id: str, item: UserMessageItem) -> None:
    """A turn for a new user message; the message keeps `item` (as its client sent it)."""

    async def prepare(db: AsyncSession, thread: Thread) -> RunningTurn:
        turn = await context.runner.prepare(
            db, thread, text=turn_text(item), exempt=context.is_admin
        )
        try:
            await db.exec(
                sa.update(Message)
                .where(col(Message.id) == turn.user_message.id)
                .values(chatkit_item=item.model_dump(mode="json"))
            )
        except BaseException:
            await context.runner.abandon(turn)
            raise
        return turn

    await _start(context, thread_id, prepare)


async def start_retry(context: ChatKitContext, thread_id: str, item: UserMessageItem) -> None:
    """A turn answering the user message `item` again: both stores rewound to it first."""

    async def prepare(db: AsyncSession, thread: Thread) -> RunningTurn:
        message = await find_message(db, thread.id, parse_item_id(item.id))
        if message is None:
            raise ChatKitNotFoundError(f"Item {item.id} not found")
        return await context.runner.prepare_retry(
            db, thread, message_id=message.id, exempt=context.is_admin
        )

    await _start(context, thread_id, prepare)


async def _start(context: ChatKitContext, thread_id: str, prepare: _Prepare) -> None:
    async def _open() -> RunningTurn:
        async with context.sessionmaker() as db:
            # Read (or created) by this request already; the lease claim checks the owner.
            thread = context.thread_rows.get(thread_id)
            if thread is None:
                thread = await owned_thread(db, context.user_id, thread_id)
            context.owned_thread = thread
            turn = await prepare(db, thread)
            try:
                await db.commit()
            except BaseException:
                await context.runner.abandon(turn)
                raise
        context.runner.start(turn)
        context.turn = turn
        return turn

    context.opening = asyncio.get_running_loop().create_task(_open(), name="chatkit-open-turn")
    await asyncio.shield(context.opening)
