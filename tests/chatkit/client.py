"""A ChatKit client for tests, built on the official `chatkit.types`: every request is one of
its request models, and every response and event is parsed with its models (a response that
does not validate fails the test)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from chatkit.types import (
    AssistantMessageItem,
    BaseReq,
    ErrorEvent,
    InferenceOptions,
    ItemFeedbackParams,
    ItemsFeedbackReq,
    ItemsListParams,
    ItemsListReq,
    Page,
    Thread,
    ThreadAddUserMessageParams,
    ThreadCreatedEvent,
    ThreadCreateParams,
    ThreadDeleteParams,
    ThreadGetByIdParams,
    ThreadItem,
    ThreadItemDoneEvent,
    ThreadListParams,
    ThreadRetryAfterItemParams,
    ThreadsAddUserMessageReq,
    ThreadsCreateReq,
    ThreadsDeleteReq,
    ThreadsGetByIdReq,
    ThreadsListReq,
    ThreadsRetryAfterItemReq,
    ThreadStreamEvent,
    ThreadsUpdateReq,
    ThreadUpdateParams,
    UserMessageInput,
    UserMessageItem,
    UserMessageTextContent,
)
from httpx_sse import EventSource
from pydantic import TypeAdapter

from app.errors import ErrorPublic

T = TypeVar("T")
EVENT: TypeAdapter[ThreadStreamEvent] = TypeAdapter(ThreadStreamEvent)
THREAD_PAGE: TypeAdapter[Page[Thread]] = TypeAdapter(Page[Thread])
ITEM_PAGE: TypeAdapter[Page[ThreadItem]] = TypeAdapter(Page[ThreadItem])


def user_input(text: str) -> UserMessageInput:
    return UserMessageInput(
        content=[UserMessageTextContent(text=text)],
        attachments=[],
        inference_options=InferenceOptions(),
    )


def body_of(request: BaseReq) -> bytes:
    return request.model_dump_json().encode()


@dataclass
class ChatKitClient:
    """One user's ChatKit client over the app's `POST /chatkit`."""

    http: httpx.AsyncClient
    headers: dict[str, str]

    async def post(self, request: BaseReq | bytes) -> httpx.Response:
        content = request if isinstance(request, bytes) else body_of(request)
        return await self.http.post(
            "/chatkit",
            content=content,
            headers={**self.headers, "content-type": "application/json"},
        )

    async def call(self, request: BaseReq, model: TypeAdapter[T] | type[T]) -> T:
        """A non-streaming request's answer, parsed with a ChatKit model."""
        response = await self.post(request)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("application/json")
        adapter = model if isinstance(model, TypeAdapter) else TypeAdapter(model)
        return adapter.validate_json(response.content)

    async def empty(self, request: BaseReq) -> None:
        """A non-streaming request whose answer is ChatKit's empty object."""
        response = await self.post(request)
        assert response.status_code == 200, response.text
        assert response.json() == {}

    async def refused(self, request: BaseReq | bytes, status: int) -> ErrorPublic:
        """A non-streaming request refused with the API's error shape and `status`."""
        response = await self.post(request)
        assert response.status_code == status, response.text
        return ErrorPublic.model_validate_json(response.content)

    async def stream(self, request: BaseReq) -> list[ThreadStreamEvent]:
        """Every event of a streaming request, each parsed as a ChatKit stream event."""
        async with self.http.stream(
            "POST",
            "/chatkit",
            content=body_of(request),
            headers={**self.headers, "content-type": "application/json"},
        ) as response:
            assert response.status_code == 200, await response.aread()
            assert response.headers["content-type"].startswith("text/event-stream")
            return [
                EVENT.validate_json(sse.data) async for sse in EventSource(response).aiter_sse()
            ]

    async def stream_error(self, request: BaseReq) -> ErrorEvent:
        """A streaming request refused: its stream is exactly one ChatKit error."""
        events = await self.stream(request)
        (event,) = events
        assert isinstance(event, ErrorEvent), events
        return event

    # The requests a ChatKit UI makes, by name.

    async def create(self, text: str) -> list[ThreadStreamEvent]:
        return await self.stream(
            ThreadsCreateReq(params=ThreadCreateParams(input=user_input(text)))
        )

    async def send(self, thread_id: str, text: str) -> list[ThreadStreamEvent]:
        params = ThreadAddUserMessageParams(thread_id=thread_id, input=user_input(text))
        return await self.stream(ThreadsAddUserMessageReq(params=params))

    async def retry(self, thread_id: str, item_id: str) -> list[ThreadStreamEvent]:
        params = ThreadRetryAfterItemParams(thread_id=thread_id, item_id=item_id)
        return await self.stream(ThreadsRetryAfterItemReq(params=params))

    async def thread(self, thread_id: str) -> Thread:
        params = ThreadGetByIdParams(thread_id=thread_id)
        return await self.call(ThreadsGetByIdReq(params=params), Thread)

    async def threads(self, **params: Any) -> Page[Thread]:
        return await self.call(ThreadsListReq(params=ThreadListParams(**params)), THREAD_PAGE)

    async def items(self, thread_id: str, **params: Any) -> Page[ThreadItem]:
        request = ItemsListReq(params=ItemsListParams(thread_id=thread_id, **params))
        return await self.call(request, ITEM_PAGE)

    async def all_items(self, thread_id: str) -> list[ThreadItem]:
        return (await self.items(thread_id, order="asc", limit=100)).data

    async def rename(self, thread_id: str, title: str) -> Thread:
        params = ThreadUpdateParams(thread_id=thread_id, title=title)
        return await self.call(ThreadsUpdateReq(params=params), Thread)

    async def delete(self, thread_id: str) -> None:
        await self.empty(ThreadsDeleteReq(params=ThreadDeleteParams(thread_id=thread_id)))

    async def feedback(self, thread_id: str, item_ids: list[str], kind: str) -> None:
        params = ItemFeedbackParams(thread_id=thread_id, item_ids=item_ids, kind=kind)  # type: ignore[arg-type]
        await self.empty(ItemsFeedbackReq(params=params))


def created_thread_id(events: list[ThreadStreamEvent]) -> str:
    (created,) = [e for e in events if isinstance(e, ThreadCreatedEvent)]
    return created.thread.id


def done_items(events: list[ThreadStreamEvent]) -> list[ThreadItem]:
    return [e.item for e in events if isinstance(e, ThreadItemDoneEvent)]


def reply_of(events: list[ThreadStreamEvent]) -> AssistantMessageItem:
    (reply,) = [i for i in done_items(events) if isinstance(i, AssistantMessageItem)]
    return reply


def reply_text(events: list[ThreadStreamEvent]) -> str:
    return "".join(c.text for c in reply_of(events).content)


def user_item_of(events: list[ThreadStreamEvent]) -> UserMessageItem:
    (item,) = [i for i in done_items(events) if isinstance(i, UserMessageItem)]
    return item


def texts(items: list[ThreadItem]) -> list[tuple[str, str]]:
    """(type, text) of each message item, like the REST `logged` helper."""
    out = []
    for item in items:
        if isinstance(item, UserMessageItem):
            out.append(("user", "".join(getattr(c, "text", "") for c in item.content)))
        elif isinstance(item, AssistantMessageItem):
            out.append(("assistant", "".join(c.text for c in item.content)))
        else:
            out.append((item.type, ""))
    return out


def errors_in(events: list[ThreadStreamEvent]) -> list[ErrorEvent]:
    return [e for e in events if isinstance(e, ErrorEvent)]
