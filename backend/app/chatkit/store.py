"""ChatKit's `Store` over the same threads and messages the REST API serves.

Every method is scoped to the request's user (`ChatKitContext.user_id`): another user's thread
or item is ChatKit's `NotFoundError`, exactly like one that does not exist. Each call is one
PostgreSQL transaction of its own (a streamed request outlives its handler).

Where items live:

- User and assistant messages are the log's `messages` rows, written by the turn service: a
  user message added here *is* the start of a turn (`TurnRunner.prepare`: the thread's lease,
  memory reconciled, the message logged with its ChatKit item, committed, then the turn
  runs); the reply and its tool calls are saved by the turn, so adding their items here is a
  no-op. The log is not edited item by item: a message cannot be deleted or replaced alone
  (retry rewinds both stores instead).
- Any other item (widgets, workflows, tasks, client tool calls, hidden context, end of
  turn, ...) is stored whole in `chatkit_items`.
"""

from __future__ import annotations

import uuid

from chatkit.store import NotFoundError as ChatKitNotFoundError, Store, StoreItemType
from chatkit.types import (
    ActiveStatus,
    Attachment,
    ClosedStatus,
    FeedbackKind,
    Page as ChatKitPage,
    ThreadItem,
    ThreadMetadata,
    UserMessageItem,
)

from app.chatkit.context import ChatKitContext
from app.chatkit.errors import NotSupportedError
from app.chatkit.ids import new_item_id, parse_item_id
from app.chatkit.items import THREAD_ITEM, LoggedMessage, message_items
from app.chatkit.queries import (
    Order,
    find_message,
    find_stored,
    item_key,
    owned_thread,
    page_items,
    page_threads,
    save_stored,
)
from app.chatkit.starting import start_turn
from app.db import session_scope
from app.errors import BadRequestError, UnprocessableError
from app.models import Message, Thread, ThreadStatus
from app.models.chatkit_item import MAX_CHATKIT_ITEM_ID_CHARS
from app.models.text import make_storable_json
from app.services import threads
from app.services.pagination import MAX_PAGE_SIZE

ATTACHMENTS_UNSUPPORTED = "Attachments are not supported by this server"
ARCHIVED = "archived"  # the reason a ChatKit client sees on an archived thread (closed)


class ThreadkeeperStore(Store[ChatKitContext]):
    """ChatKit's store on PostgreSQL: the REST API's threads and messages, and ChatKit items."""

    def generate_thread_id(self, context: ChatKitContext) -> str:
        """A new thread's id: a UUID, like every thread's (written by the next `save_thread`)."""
        context.new_thread_id = str(uuid.uuid4())
        return context.new_thread_id

    def generate_item_id(
        self, item_type: StoreItemType, thread: ThreadMetadata, context: ChatKitContext
    ) -> str:
        """ChatKit's prefixes with a whole UUID, so ids never collide within a thread."""
        return new_item_id(item_type)

    async def load_thread(self, thread_id: str, context: ChatKitContext) -> ThreadMetadata:
        """The caller's thread (ChatKit's NotFoundError for anyone else's), read once per
        request (the checks before the library's own routing read it first)."""
        loaded = context.threads.get(thread_id)
        if loaded is None:
            async with session_scope(context.sessionmaker) as db:
                row = await owned_thread(db, context.user_id, thread_id)
            loaded = context.threads[thread_id] = thread_metadata(row)
            context.thread_rows[thread_id] = row
        return loaded.model_copy(deep=True)

    async def save_thread(self, thread: ThreadMetadata, context: ChatKitContext) -> None:
        """Create the thread `threads.create` named, or save title, status and metadata."""
        settings = context.settings
        title = threads.clean_title(thread.title, settings.MAX_TITLE_CHARS)
        metadata = threads.check_metadata(thread.metadata, settings.MAX_THREAD_METADATA_BYTES)
        thread.title = title  # the answer shows the title as stored (trimmed, blank: none)
        async with session_scope(context.sessionmaker) as db:
            if thread.id == context.new_thread_id:
                context.thread_rows[thread.id] = await threads.create_thread(
                    db,
                    user_id=context.user_id,
                    title=title,
                    agent=context.new_thread_agent or context.agents.default,
                    metadata=metadata,
                    thread_id=uuid.UUID(thread.id),
                )
                context.new_thread_id = None
                return
            row = await owned_thread(db, context.user_id, thread.id)
            status = _status_of(thread, row)
            await threads.update_thread(
                db, row, threads.ThreadChanges(title=title, status=status, metadata=metadata or {})
            )
        context.threads.pop(thread.id, None)
        context.thread_rows.pop(thread.id, None)

    async def load_threads(
        self, limit: int, after: str | None, order: str, context: ChatKitContext
    ) -> ChatKitPage[ThreadMetadata]:
        """The caller's threads by last activity (ChatKit's default order: most recent first)."""
        async with session_scope(context.sessionmaker) as db:
            page = await page_threads(
                db, context.user_id, limit=_page_size(limit), after=after, order=_order(order)
            )
        data = [thread_metadata(t) for t in page.data]
        return ChatKitPage(data=data, has_more=page.has_more, after=data[-1].id if data else None)

    async def load_thread_items(
        self, thread_id: str, after: str | None, limit: int, order: str, context: ChatKitContext
    ) -> ChatKitPage[ThreadItem]:
        """A page of the thread's items: its messages and its stored ChatKit items."""
        async with session_scope(context.sessionmaker) as db:
            thread = await owned_thread(db, context.user_id, thread_id)
            cursor = None
            if after is not None:
                cursor = await item_key(db, thread.id, after, parse_item_id(after))
            page = await page_items(
                db, thread.id, after=cursor, limit=_page_size(limit), order=_order(order)
            )
        data = page.data
        return ChatKitPage(data=data, has_more=page.has_more, after=data[-1].id if data else None)

    async def load_item(self, thread_id: str, item_id: str, context: ChatKitContext) -> ThreadItem:
        """One item of the caller's thread (ChatKit's NotFoundError otherwise)."""
        async with session_scope(context.sessionmaker) as db:
            thread = await owned_thread(db, context.user_id, thread_id)
            message = await find_message(db, thread.id, parse_item_id(item_id))
            if message is not None:
                for item in message_items(LoggedMessage.of_row(message)):
                    if item.id == item_id:
                        return item
            stored = await find_stored(db, thread.id, item_id)
            if stored is not None:
                return THREAD_ITEM.validate_python(stored.item)
        raise ChatKitNotFoundError(f"Item {item_id} not found")

    async def add_thread_item(
        self, thread_id: str, item: ThreadItem, context: ChatKitContext
    ) -> None:
        """Store a new item; a user message starts its turn (see the module docstring)."""
        if isinstance(item, UserMessageItem):
            await start_turn(context, thread_id, item)
            return
        await self._save(thread_id, item, context, replace=False)

    async def save_item(self, thread_id: str, item: ThreadItem, context: ChatKitContext) -> None:
        """Replace an item (ChatKit items only: the log's messages are not edited)."""
        await self._save(thread_id, item, context, replace=True)

    async def delete_thread(self, thread_id: str, context: ChatKitContext) -> None:
        """Delete the thread, its messages and items, and its memory file (409 mid-turn)."""
        async with session_scope(context.sessionmaker) as db:
            thread = await owned_thread(db, context.user_id, thread_id)
            await threads.delete_thread(
                db,
                thread,
                sessionmaker=context.sessionmaker,
                memory_store=context.memory_store,
                wait_s=context.settings.AGENT_SESSION_BUSY_TIMEOUT_MS / 1000,
            )

    async def delete_thread_item(
        self, thread_id: str, item_id: str, context: ChatKitContext
    ) -> None:
        """Delete a stored ChatKit item (an id nothing is stored under: nothing to do)."""
        async with session_scope(context.sessionmaker) as db:
            thread = await owned_thread(db, context.user_id, thread_id)
            if context.retry_item_id is not None:
                return  # the retry's rewind removes it, with the rest, in one transaction
            stored = await find_stored(db, thread.id, item_id)
            if stored is not None:
                await db.delete(stored)
                return
            if await find_message(db, thread.id, parse_item_id(item_id)) is not None:
                raise UnprocessableError(
                    f"Item {item_id} is a message of the log: it cannot be deleted alone "
                    "(retry an earlier user message to drop what follows it)"
                )

    async def save_feedback(
        self, thread_id: str, item_ids: list[str], kind: FeedbackKind, context: ChatKitContext
    ) -> None:
        """Record `kind` on each message named (in its metadata, where REST shows it).

        Every id is checked first: one unknown id and nothing is written.
        """
        async with session_scope(context.sessionmaker) as db:
            thread = await owned_thread(db, context.user_id, thread_id)
            targets: list[Message] = []
            for item_id in item_ids:
                message = await find_message(db, thread.id, parse_item_id(item_id))
                if message is None:
                    raise ChatKitNotFoundError(f"Item {item_id} not found among the messages")
                targets.append(message)
            for message in targets:
                message.meta = {**message.meta, "feedback": kind}
                db.add(message)

    async def save_attachment(self, attachment: Attachment, context: ChatKitContext) -> None:
        raise NotSupportedError(ATTACHMENTS_UNSUPPORTED)

    async def load_attachment(self, attachment_id: str, context: ChatKitContext) -> Attachment:
        raise NotSupportedError(ATTACHMENTS_UNSUPPORTED)

    async def delete_attachment(self, attachment_id: str, context: ChatKitContext) -> None:
        raise NotSupportedError(ATTACHMENTS_UNSUPPORTED)

    async def _save(
        self, thread_id: str, item: ThreadItem, context: ChatKitContext, *, replace: bool
    ) -> None:
        if len(item.id) > MAX_CHATKIT_ITEM_ID_CHARS:
            raise BadRequestError(f"Item ids are at most {MAX_CHATKIT_ITEM_ID_CHARS} characters")
        ref = parse_item_id(item.id)
        if ref.kind in ("reply", "tools"):
            return  # a reply and its tool calls: the turn saved them in the log
        async with session_scope(context.sessionmaker) as db:
            thread = await owned_thread(db, context.user_id, thread_id)
            if await find_message(db, thread.id, ref) is not None:
                raise UnprocessableError(
                    f"Item {item.id} is a message of the log: it cannot be replaced"
                )
            dumped = make_storable_json(item.model_dump(mode="json"))
            await save_stored(db, thread.id, dumped, replace=replace)


def thread_metadata(row: Thread) -> ThreadMetadata:
    """A thread as ChatKit sees it: an archived one is `closed` (reason "archived")."""
    archived = row.status == ThreadStatus.ARCHIVED
    return ThreadMetadata(
        id=str(row.id),
        title=row.title,
        created_at=row.created_at,
        status=ClosedStatus(reason=ARCHIVED) if archived else ActiveStatus(),
        metadata=dict(row.meta),
    )


def _status_of(thread: ThreadMetadata, row: Thread) -> ThreadStatus:
    """closed ↔ archived, active ↔ active; `locked` (not a state of ours) keeps the row's."""
    if thread.status.type == "closed":
        return ThreadStatus.ARCHIVED
    if thread.status.type == "active":
        return ThreadStatus.ACTIVE
    return ThreadStatus(row.status)


def _page_size(limit: int) -> int:
    if limit < 1:
        raise UnprocessableError(f"limit must be at least 1, not {limit}")
    return min(limit, MAX_PAGE_SIZE)


def _order(order: str) -> Order:
    return "asc" if order == "asc" else "desc"
