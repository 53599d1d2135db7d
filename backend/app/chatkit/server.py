"""`ChatKitServer` on the turn service: every request type, answered or clearly refused.

The official `ChatKitServer.process` routes every request. Before it does, `process` here
checks what the library would otherwise half-do (a refusal must leave nothing written) or
leave to a 500: input limits, requests for features this agent does not have (attachments,
dictation, actions, client tools, structured input), and for a retry, that the item is one of
the caller's user messages. Refusals of a streaming request are raised inside its stream,
where the endpoint turns them into ChatKit's `ErrorEvent`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from chatkit.actions import Action
from chatkit.errors import CustomStreamError
from chatkit.server import ChatKitServer, NonStreamingResult, StreamingResult
from chatkit.types import (
    AttachmentsCreateReq,
    AttachmentsDeleteReq,
    AudioInput,
    ChatKitReq,
    FeedbackKind,
    InputTranscribeReq,
    StreamingReq,
    SyncCustomActionResponse,
    ThreadItem,
    ThreadMetadata,
    ThreadsAddClientToolOutputReq,
    ThreadsAddStructuredInputReq,
    ThreadsAddUserMessageReq,
    ThreadsCreateReq,
    ThreadsCustomActionReq,
    ThreadsRetryAfterItemReq,
    ThreadsSyncCustomActionReq,
    ThreadStreamEvent,
    TranscriptionResult,
    UserMessageInput,
    UserMessageItem,
    WidgetItem,
    is_streaming_req,
)
from pydantic import TypeAdapter, ValidationError

from app.chatkit.context import ChatKitContext
from app.chatkit.errors import NotSupportedError, as_app_error, error_event
from app.chatkit.ids import parse_item_id
from app.chatkit.items import input_text, title_from, typed_text
from app.chatkit.queries import find_message, owned_thread
from app.chatkit.starting import start_retry
from app.chatkit.store import ATTACHMENTS_UNSUPPORTED, ThreadkeeperStore
from app.chatkit.translate import follow_turn
from app.db import session_scope
from app.errors import NotFoundError, UnprocessableError
from app.models import MessageRole
from app.models.text import unstorable_in
from app.services.messages import check_message_text

_REQUEST: TypeAdapter[ChatKitReq] = TypeAdapter(ChatKitReq)
NO_ACTIONS = "This agent has no actions: {what} is not supported"


class ThreadkeeperChatKitServer(ChatKitServer[ChatKitContext]):
    """ChatKit's server over Threadkeeper's threads, log, memory and turns."""

    def __init__(self) -> None:
        super().__init__(ThreadkeeperStore())

    async def process(
        self, request: str | bytes | bytearray, context: ChatKitContext
    ) -> StreamingResult | NonStreamingResult:
        """Check, then let the library route the request.

        This is `ChatKitServer.process` with the request parsed by an adapter built once:
        the library builds a new `TypeAdapter(ChatKitReq)` for every request, and its schema
        build costs 5-13 ms, more than everything else ChatKit adds to a turn (w8 in
        `make bench`). The routing itself is the library's (`_process_streaming`,
        `_process_non_streaming` of the pinned version; every request type is tested).

        Raises:
            UnprocessableError: the body is not a ChatKit request (says what is wrong).
            AppError, chatkit.store.NotFoundError: a refused non-streaming request.
        """
        parsed = parse_request(request)
        if is_streaming_req(parsed):
            return StreamingResult(self._checked_stream(parsed, context))
        await self._check(parsed, context)
        return NonStreamingResult(await self._process_non_streaming(parsed, context))

    async def _checked_stream(
        self, parsed: StreamingReq, context: ChatKitContext
    ) -> AsyncGenerator[bytes, None]:
        await self._check(parsed, context)
        async for chunk in self._process_streaming(parsed, context):
            yield chunk

    async def respond(
        self,
        thread: ThreadMetadata,
        input_user_message: UserMessageItem | None,
        context: ChatKitContext,
    ) -> AsyncIterator[ThreadStreamEvent]:
        """Follow the turn this request started (a retry starts it here), as ChatKit events."""
        if context.turn is None:
            if input_user_message is None or context.retry_item_id is None:
                raise CustomStreamError("This agent answers user messages only")
            try:
                await start_retry(context, thread.id, input_user_message)
            except Exception as e:
                if as_app_error(e) is None:
                    raise
                refusal = error_event(e)
                raise CustomStreamError(
                    str(refusal.message), allow_retry=refusal.allow_retry
                ) from e
        elif context.created_thread and thread.title is None and input_user_message is not None:
            # A new thread is titled after its first message (the library saves the change
            # and tells the client with `thread.updated`).
            thread.title = title_from(
                typed_text(input_user_message), context.settings.MAX_TITLE_CHARS
            )
        assert context.turn is not None
        async for event in follow_turn(context.turn):
            yield event

    async def handle_stream_cancelled(
        self, thread: ThreadMetadata, pending_items: list[ThreadItem], context: ChatKitContext
    ) -> None:
        """ChatKit's stop: the turn ends and keeps its partial reply in both stores, as a REST
        stop does (no hidden "cancelled" item: memory holds what the user saw)."""
        context.stop_turn()

    async def add_feedback(
        self, thread_id: str, item_ids: list[str], feedback: FeedbackKind, context: ChatKitContext
    ) -> None:
        """Feedback lands in the messages' metadata (`feedback`), where REST shows it."""
        store = self.store
        assert isinstance(store, ThreadkeeperStore)
        await store.save_feedback(thread_id, item_ids, feedback, context)

    async def transcribe(
        self, audio_input: AudioInput, context: ChatKitContext
    ) -> TranscriptionResult:
        raise NotSupportedError("Dictation (input.transcribe) is not supported by this server")

    def action(
        self,
        thread: ThreadMetadata,
        action: Action[str, Any],
        sender: WidgetItem | None,
        context: ChatKitContext,
    ) -> AsyncIterator[ThreadStreamEvent]:
        raise CustomStreamError(NO_ACTIONS.format(what=f"action '{action.type}'"))

    async def sync_action(
        self,
        thread: ThreadMetadata,
        action: Action[str, Any],
        sender: WidgetItem | None,
        context: ChatKitContext,
    ) -> SyncCustomActionResponse:
        raise NotSupportedError(NO_ACTIONS.format(what=f"action '{action.type}'"))

    async def _check(self, request: ChatKitReq, context: ChatKitContext) -> None:
        """Refuse before anything is written (another user's thread first: not found)."""
        match request:
            case ThreadsCreateReq():
                context.created_thread = True
                agent = request.metadata.get("agent")
                if agent is not None and not isinstance(agent, str):
                    raise UnprocessableError("metadata.agent: must be the name of an agent")
                context.new_thread_agent = context.agents.choose(agent)
                check_input(request.params.input, context)
            case ThreadsAddUserMessageReq():
                await self.store.load_thread(request.params.thread_id, context)
                check_input(request.params.input, context)
            case ThreadsRetryAfterItemReq():
                await _check_retry(request.params.thread_id, request.params.item_id, context)
                context.retry_item_id = request.params.item_id
            case ThreadsAddClientToolOutputReq():
                await self.store.load_thread(request.params.thread_id, context)
                raise NotSupportedError(
                    "This agent has no client tools: no client tool call is pending in "
                    f"thread {request.params.thread_id}"
                )
            case ThreadsAddStructuredInputReq():
                item = request.params
                await self.store.load_item(item.thread_id, item.item_id, context)
                raise NotSupportedError("This agent asks for no structured input")
            case ThreadsCustomActionReq() | ThreadsSyncCustomActionReq():
                params = request.params
                await self.store.load_thread(params.thread_id, context)
                if params.item_id is not None:
                    await self.store.load_item(params.thread_id, params.item_id, context)
                raise NotSupportedError(NO_ACTIONS.format(what=f"action '{params.action.type}'"))
            case AttachmentsCreateReq() | AttachmentsDeleteReq():
                raise NotSupportedError(ATTACHMENTS_UNSUPPORTED)
            case InputTranscribeReq():
                raise NotSupportedError(
                    "Dictation (input.transcribe) is not supported by this server"
                )
            case _:
                pass


def parse_request(request: str | bytes | bytearray) -> ChatKitReq:
    """The ChatKit request in a body.

    Raises:
        UnprocessableError: not JSON, text PostgreSQL cannot store, or not a ChatKit request;
            the message says where.
    """
    try:
        body = json.loads(request)
    except (ValueError, UnicodeDecodeError) as e:
        raise UnprocessableError(f"The body is not JSON: {e}") from e
    problem = unstorable_in(body)
    if problem is not None:
        raise UnprocessableError(f"request: {problem}")
    try:
        return _REQUEST.validate_python(body)
    except ValidationError as e:
        parts = [
            f"{'.'.join(str(p) for p in error['loc']) or 'body'}: {error['msg']}"
            for error in e.errors(include_url=False)
        ]
        raise UnprocessableError("Not a ChatKit request: " + "; ".join(parts)) from e


def check_input(message: UserMessageInput, context: ChatKitContext) -> None:
    """A user message a turn can take: no attachments, text within MAX_MESSAGE_CHARS."""
    if message.attachments:
        raise NotSupportedError(ATTACHMENTS_UNSUPPORTED)
    check_message_text(
        input_text(message.content, message.quoted_text), context.settings.MAX_MESSAGE_CHARS
    )


async def _check_retry(thread_id: str, item_id: str, context: ChatKitContext) -> None:
    """The item must be one of the thread's user messages, named as ChatKit was told."""
    async with session_scope(context.sessionmaker) as db:
        thread = await owned_thread(db, context.user_id, thread_id)
        message = await find_message(db, thread.id, parse_item_id(item_id))
    if message is None:
        raise NotFoundError(f"Item {item_id} not found")
    if message.role != MessageRole.USER:
        raise UnprocessableError(f"Item {item_id} is not a user message; retry one of those")
