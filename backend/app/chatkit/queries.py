"""PostgreSQL reads and writes of the ChatKit store, always within the caller's thread.

A thread's ChatKit items come from two tables, merged in one order: the log's messages
(each rendered as one or two items: see `items`) and `chatkit_items`. An item's place is
(stored at, table, row id, part); pages are keyset-paginated on it, so they never repeat or
skip items when new ones arrive.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa
from chatkit.store import NotFoundError as ChatKitNotFoundError
from chatkit.types import ThreadItem
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.chatkit.ids import ItemRef, parse_thread_id
from app.chatkit.items import THREAD_ITEM, LoggedMessage, message_items
from app.errors import BadRequestError
from app.models import ChatKitItem, Message, MessageRole, Thread
from app.services.pagination import Page

Order = Literal["asc", "desc"]
ItemKey = tuple[datetime, int, uuid.UUID, int]  # (stored at, 0 message | 1 item, row, part)
_MESSAGE, _STORED = 0, 1


async def owned_thread(db: AsyncSession, user_id: uuid.UUID, thread_id: str) -> Thread:
    """The caller's thread named by a ChatKit id.

    Raises:
        chatkit.store.NotFoundError: not a thread id, no such thread, or another user's.
    """
    row = (
        await db.exec(
            select(Thread).where(Thread.id == parse_thread_id(thread_id), Thread.user_id == user_id)
        )
    ).first()
    if row is None:
        raise ChatKitNotFoundError(f"Thread {thread_id} not found")
    return row


async def page_threads(
    db: AsyncSession, user_id: uuid.UUID, *, limit: int, after: str | None, order: Order
) -> Page[Thread]:
    """The caller's threads by last activity (`desc`: most recent first)."""
    key = sa.tuple_(Thread.last_activity_at, Thread.id)
    query = select(Thread).where(Thread.user_id == user_id)
    if after is not None:
        try:
            cursor = await owned_thread(db, user_id, after)
        except ChatKitNotFoundError as e:
            raise BadRequestError(f"Unknown cursor 'after={after}'") from e
        bound = sa.tuple_(sa.literal(cursor.last_activity_at), sa.literal(cursor.id))
        query = query.where(key < bound if order == "desc" else key > bound)
    columns = (col(Thread.last_activity_at), col(Thread.id))
    query = query.order_by(*(c.desc() if order == "desc" else c for c in columns))
    return Page.from_rows((await db.exec(query.limit(limit + 1))).all(), limit)


async def find_message(db: AsyncSession, thread_id: uuid.UUID, ref: ItemRef) -> Message | None:
    """The log message an item id names in this thread, if any."""
    query = select(Message).where(Message.thread_id == thread_id)
    if ref.kind in ("reply", "tools"):
        query = query.where(
            Message.role == MessageRole.ASSISTANT,
            sa.or_(col(Message.turn_id) == ref.anchor, col(Message.id) == ref.anchor),
        )
    elif ref.kind == "message":
        query = query.where(
            Message.id == ref.anchor,
            Message.role == MessageRole.USER,
            col(Message.chatkit_item).is_(None),
        )
    else:
        query = query.where(
            col(Message.chatkit_item).is_not(None),
            col(Message.chatkit_item)["id"].astext == ref.raw,
        )
    return (await db.exec(query.limit(1))).first()


async def find_stored(db: AsyncSession, thread_id: uuid.UUID, item_id: str) -> ChatKitItem | None:
    query = select(ChatKitItem).where(
        ChatKitItem.thread_id == thread_id, ChatKitItem.item_id == item_id
    )
    return (await db.exec(query)).first()


async def save_stored(
    db: AsyncSession, thread_id: uuid.UUID, item: dict[str, Any], *, replace: bool
) -> None:
    """Insert a ChatKit item (or with `replace`, update the one with its id)."""
    existing = await find_stored(db, thread_id, str(item["id"]))
    if existing is None:
        db.add(
            ChatKitItem(
                thread_id=thread_id, item_id=str(item["id"]), item_type=str(item["type"]), item=item
            )
        )
    elif replace:
        existing.item, existing.item_type = item, str(item["type"])
        db.add(existing)
    else:
        raise BadRequestError(f"Item {item['id']} already exists in this thread")
    await db.flush()


async def item_key(db: AsyncSession, thread_id: uuid.UUID, item_id: str, ref: ItemRef) -> ItemKey:
    """Where an item of this thread is, for a cursor.

    Raises:
        BadRequestError: no such item in this thread.
    """
    message = await find_message(db, thread_id, ref)
    if message is not None:
        for key, item in _expand_message(message):
            if item.id == item_id:
                return key
    stored = await find_stored(db, thread_id, item_id)
    if stored is not None:
        return (stored.created_at, _STORED, stored.id, 0)
    raise BadRequestError(f"Unknown cursor 'after={item_id}'")


async def page_items(
    db: AsyncSession, thread_id: uuid.UUID, *, after: ItemKey | None, limit: int, order: Order
) -> Page[ThreadItem]:
    """A page of the thread's ChatKit items after the item at `after`, in `order`.

    Each source yields its first `limit + 2` rows past the cursor (every row renders at least
    one item, and only the cursor's own row can be partly behind it), so the merged first
    `limit + 1` items are always among them.
    """
    rows = limit + 2
    messages = await db.exec(
        _bounded(select(Message), Message, _MESSAGE, thread_id, after, order).limit(rows)
    )
    stored = await db.exec(
        _bounded(select(ChatKitItem), ChatKitItem, _STORED, thread_id, after, order).limit(rows)
    )
    keyed = [pair for m in messages.all() for pair in _expand_message(m)]
    keyed += [
        ((s.created_at, _STORED, s.id, 0), THREAD_ITEM.validate_python(s.item)) for s in stored
    ]
    keyed.sort(key=lambda pair: pair[0], reverse=order == "desc")
    if after is not None:
        keyed = [p for p in keyed if (p[0] > after if order == "asc" else p[0] < after)]
    return Page.from_rows([item for _, item in keyed[: limit + 1]], limit)


def _expand_message(message: Message) -> list[tuple[ItemKey, ThreadItem]]:
    items = message_items(LoggedMessage.of_row(message))
    first_part = 2 - len(items)  # tools are part 0, the message itself part 1
    return [
        ((message.created_at, _MESSAGE, message.id, first_part + i), item)
        for i, item in enumerate(items)
    ]


def _bounded(
    query: Any,
    table: type[Message] | type[ChatKitItem],
    source: int,
    thread_id: uuid.UUID,
    after: ItemKey | None,
    order: Order,
) -> Any:
    """`query` over one table: the thread's rows from the cursor's row on, in `order`."""
    query = query.where(table.thread_id == thread_id)
    if after is not None:
        at, cursor_source, row_id, _ = after
        row_key = sa.tuple_(table.created_at, table.id)
        bound = sa.tuple_(sa.literal(at), sa.literal(row_id))
        created = col(table.created_at)
        if order == "asc":
            # Rows of a later source at the same instant come after the cursor's.
            same = row_key >= bound if source == cursor_source else None
            query = query.where(
                same
                if same is not None
                else (created > at if source < cursor_source else created >= at)
            )
        else:
            same = row_key <= bound if source == cursor_source else None
            query = query.where(
                same
                if same is not None
                else (created < at if source > cursor_source else created <= at)
            )
    columns = (col(table.created_at), col(table.id))
    return query.order_by(*(c.desc() if order == "desc" else c for c in columns))
