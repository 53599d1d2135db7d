"""Users never see each other over ChatKit: for every request type, another user's thread or
item is ChatKit's not-found error, answered exactly as for ids that do not exist, and the
owner's thread is left exactly as it was.

The request types are not listed by hand: every member of `chatkit.types.ChatKitReq` must be
covered here, so a request type added by a newer `openai-chatkit` fails this test until it is.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from typing import get_args

import httpx
from chatkit.actions import Action
from chatkit.types import (
    AttachmentCreateParams,
    AttachmentDeleteParams,
    AttachmentsCreateReq,
    AttachmentsDeleteReq,
    BaseReq,
    ChatKitReq,
    ErrorEvent,
    InputTranscribeParams,
    InputTranscribeReq,
    ItemFeedbackParams,
    ItemsFeedbackReq,
    ItemsListParams,
    ItemsListReq,
    StructuredInputSubmission,
    ThreadAddClientToolOutputParams,
    ThreadAddStructuredInputParams,
    ThreadAddUserMessageParams,
    ThreadCreateParams,
    ThreadCustomActionParams,
    ThreadDeleteParams,
    ThreadGetByIdParams,
    ThreadListParams,
    ThreadRetryAfterItemParams,
    ThreadsAddClientToolOutputReq,
    ThreadsAddStructuredInputReq,
    ThreadsAddUserMessageReq,
    ThreadsCreateReq,
    ThreadsCustomActionReq,
    ThreadsDeleteReq,
    ThreadsGetByIdReq,
    ThreadsListReq,
    ThreadsRetryAfterItemReq,
    ThreadsSyncCustomActionReq,
    ThreadsUpdateReq,
    ThreadUpdateParams,
)

from tests.chatkit.client import (
    EVENT,
    ChatKitClient,
    created_thread_id,
    reply_of,
    user_input,
    user_item_of,
)
from tests.factories import logged, memory_items

Ids = tuple[str, str, str]  # thread, user item, reply item
ACTION = Action(type="archive", payload={})
AUDIO = base64.b64encode(b"RIFF").decode()

REQUESTS: dict[str, Callable[[Ids], BaseReq]] = {
    "threads.get_by_id": lambda i: ThreadsGetByIdReq(params=ThreadGetByIdParams(thread_id=i[0])),
    "threads.list": lambda i: ThreadsListReq(params=ThreadListParams(after=i[0])),
    "items.list": lambda i: ItemsListReq(params=ItemsListParams(thread_id=i[0])),
    "threads.update": lambda i: ThreadsUpdateReq(
        params=ThreadUpdateParams(thread_id=i[0], title="mine now")
    ),
    "threads.delete": lambda i: ThreadsDeleteReq(params=ThreadDeleteParams(thread_id=i[0])),
    "items.feedback": lambda i: ItemsFeedbackReq(
        params=ItemFeedbackParams(thread_id=i[0], item_ids=[i[2]], kind="negative")
    ),
    "threads.sync_custom_action": lambda i: ThreadsSyncCustomActionReq(
        params=ThreadCustomActionParams(thread_id=i[0], item_id=i[2], action=ACTION)
    ),
    "threads.create": lambda i: ThreadsCreateReq(
        params=ThreadCreateParams(input=user_input("list tasks"))
    ),
    "threads.add_user_message": lambda i: ThreadsAddUserMessageReq(
        params=ThreadAddUserMessageParams(thread_id=i[0], input=user_input("list tasks"))
    ),
    "threads.retry_after_item": lambda i: ThreadsRetryAfterItemReq(
        params=ThreadRetryAfterItemParams(thread_id=i[0], item_id=i[1])
    ),
    "threads.add_client_tool_output": lambda i: ThreadsAddClientToolOutputReq(
        params=ThreadAddClientToolOutputParams(thread_id=i[0], result="x")
    ),
    "threads.add_structured_input": lambda i: ThreadsAddStructuredInputReq(
        params=ThreadAddStructuredInputParams(
            thread_id=i[0], item_id=i[1], input=StructuredInputSubmission()
        )
    ),
    "threads.custom_action": lambda i: ThreadsCustomActionReq(
        params=ThreadCustomActionParams(thread_id=i[0], item_id=i[2], action=ACTION)
    ),
    "attachments.create": lambda i: AttachmentsCreateReq(
        params=AttachmentCreateParams(name="a.txt", size=1, mime_type="text/plain")
    ),
    "attachments.delete": lambda i: AttachmentsDeleteReq(
        params=AttachmentDeleteParams(attachment_id=i[2])
    ),
    "input.transcribe": lambda i: InputTranscribeReq(
        params=InputTranscribeParams(audio_base64=AUDIO, mime_type="audio/webm")
    ),
}


def request_types() -> set[str]:
    union = get_args(get_args(ChatKitReq)[0])
    return {model.model_fields["type"].default for model in union}


async def answer(http: httpx.AsyncClient, headers: dict[str, str], request: BaseReq) -> tuple:
    """(status, the answer) with every response parsed: ChatKit events for a stream."""
    async with http.stream(
        "POST",
        "/chatkit",
        content=request.model_dump_json(),
        headers={**headers, "content-type": "application/json"},
    ) as response:
        body = await response.aread()
    if response.headers["content-type"].startswith("text/event-stream"):
        frames = [line[6:] for line in body.decode().splitlines() if line.startswith("data: ")]
        return response.status_code, [EVENT.validate_json(f) for f in frames]
    return response.status_code, response.json()


def normalized(value: object, ids: Ids, alias: Ids) -> str:
    text = str(value)
    for real, stand_in in zip(ids, alias, strict=True):
        text = text.replace(real, stand_in)
    return text


async def snapshot(running, http, headers, kit: ChatKitClient, thread_id: str) -> tuple:
    return (
        (await http.get(f"/api/threads/{thread_id}", headers=headers)).json(),
        await logged(http, headers, thread_id),
        [i.model_dump() for i in await kit.all_items(thread_id)],
        await memory_items(running, headers, thread_id),
    )


class TestEveryRequestType:
    def test_every_chatkit_request_type_is_covered(self) -> None:
        assert set(REQUESTS) == request_types()

    async def test_another_users_thread_is_not_found_and_left_as_it_was(
        self, running, client, alice, bob, alice_kit, bob_kit
    ) -> None:
        events = await alice_kit.create("add task keep me")
        alices: Ids = (
            created_thread_id(events),
            user_item_of(events).id,
            reply_of(events).id,
        )
        missing: Ids = (str(uuid.uuid4()), "msg_" + uuid.uuid4().hex, "reply_" + uuid.uuid4().hex)
        before = await snapshot(running, client, alice, alice_kit, alices[0])
        for kind, build in REQUESTS.items():
            got = await answer(client, bob, build(alices))
            status, body = got
            if kind == "threads.create":  # names no thread: makes one of Bob's own
                assert alices[0] not in str(body)
                continue
            expected = await answer(client, bob, build(missing))
            assert normalized(got, alices, missing) == normalized(expected, missing, missing), kind
            if kind in ("attachments.create", "attachments.delete", "input.transcribe"):
                continue  # names no thread: refused alike for everyone
            if kind == "threads.list":
                assert (status, body["detail"]) == (400, f"Unknown cursor 'after={alices[0]}'")
            elif isinstance(body, list):
                (error,) = body
                assert isinstance(error, ErrorEvent), kind
                assert error.message == f"Thread {alices[0]} not found", kind
            else:
                assert (status, body["error"], body["detail"]) == (
                    404,
                    "NotFoundError",
                    f"Thread {alices[0]} not found",
                ), kind
        assert await snapshot(running, client, alice, alice_kit, alices[0]) == before
        # Bob's own list never shows Alice's thread.
        assert alices[0] not in [t.id for t in (await bob_kit.threads(limit=100)).data]

    async def test_another_users_items_are_not_found_in_ones_own_thread(
        self, running, client, alice, bob, alice_kit, bob_kit
    ) -> None:
        events = await alice_kit.create("remember that a is 1")
        alice_user, alice_reply = user_item_of(events).id, reply_of(events).id
        bobs = created_thread_id(await bob_kit.create("hello"))
        feedback = ItemsFeedbackReq(
            params=ItemFeedbackParams(thread_id=bobs, item_ids=[alice_reply], kind="positive")
        )
        assert (await bob_kit.refused(feedback, 404)).detail == (
            f"Item {alice_reply} not found among the messages"
        )
        retry = ThreadsRetryAfterItemReq(
            params=ThreadRetryAfterItemParams(thread_id=bobs, item_id=alice_user)
        )
        assert (await bob_kit.stream_error(retry)).message == f"Item {alice_user} not found"
        items = ItemsListReq(params=ItemsListParams(thread_id=bobs, after=alice_reply))
        assert (await bob_kit.refused(items, 400)).detail == f"Unknown cursor 'after={alice_reply}'"
        action = ThreadsCustomActionReq(
            params=ThreadCustomActionParams(thread_id=bobs, item_id=alice_reply, action=ACTION)
        )
        assert (await bob_kit.stream_error(action)).message == f"Item {alice_reply} not found"
        messages = (await client.get(f"/api/threads/{bobs}/messages", headers=bob)).json()
        assert [(m["role"], m["metadata"].get("feedback")) for m in messages["data"]] == [
            ("user", None),
            ("assistant", None),
        ]
        assert [m[1] for m in await logged(client, alice, created_thread_id(events))] == [
            "remember that a is 1",
            "Got it \u2014 I'll remember that a is 1.",
        ]
        del running
