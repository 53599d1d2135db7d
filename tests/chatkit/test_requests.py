"""Every ChatKit request type against the real app, answers parsed with `chatkit.types`."""

from __future__ import annotations

import base64
import uuid

from chatkit.actions import Action
from chatkit.types import (
    ActiveStatus,
    AttachmentCreateParams,
    AttachmentDeleteParams,
    AttachmentsCreateReq,
    AttachmentsDeleteReq,
    ClosedStatus,
    InferenceOptions,
    InputTranscribeParams,
    InputTranscribeReq,
    StructuredInputSubmission,
    Thread,
    ThreadAddClientToolOutputParams,
    ThreadAddStructuredInputParams,
    ThreadCreateParams,
    ThreadCustomActionParams,
    ThreadsAddClientToolOutputReq,
    ThreadsAddStructuredInputReq,
    ThreadsCreateReq,
    ThreadsCustomActionReq,
    ThreadsSyncCustomActionReq,
    ThreadUpdatedEvent,
    UserMessageInput,
    UserMessageTagContent,
    UserMessageTextContent,
)

from tests.chatkit.client import (
    ChatKitClient,
    created_thread_id,
    reply_of,
    reply_text,
    user_input,
    user_item_of,
)
from tests.conftest import start_app
from tests.factories import logged, memory_items


class TestThreadsCreate:
    async def test_creates_a_thread_answers_and_titles_it_after_the_first_message(
        self, client, alice, alice_kit
    ) -> None:
        events = await alice_kit.create("add task buy milk")
        assert [type(e).__name__ for e in events[:3]] == [
            "ThreadCreatedEvent",
            "ThreadItemDoneEvent",
            "StreamOptionsEvent",
        ]
        thread_id = created_thread_id(events)
        uuid.UUID(thread_id)  # a thread id is a UUID, like every thread's
        assert user_item_of(events).content == [UserMessageTextContent(text="add task buy milk")]
        assert reply_text(events) == 'Added "buy milk" to your tasks.'
        (updated,) = [e for e in events if isinstance(e, ThreadUpdatedEvent)]
        assert updated.thread.title == "add task buy milk"
        # The same thread, messages and title through REST.
        thread = (await client.get(f"/api/threads/{thread_id}", headers=alice)).json()
        assert (thread["title"], thread["message_count"]) == ("add task buy milk", 2)
        assert await logged(client, alice, thread_id) == [
            ("user", "add task buy milk"),
            ("assistant", 'Added "buy milk" to your tasks.'),
        ]

    async def test_a_long_first_message_titles_the_thread_with_its_first_line_shortened(
        self, alice_kit
    ) -> None:
        events = await alice_kit.create("remember that " + "x" * 80 + "\nsecond line")
        thread = await alice_kit.thread(created_thread_id(events))
        assert thread.title == "remember that " + "x" * 45 + "\u2026"


class TestAddUserMessage:
    async def test_a_message_with_tags_and_a_quote_is_kept_as_sent_and_the_agent_reads_it(
        self, running, client, alice, alice_kit
    ) -> None:
        thread_id = created_thread_id(await alice_kit.create("hello"))
        message = UserMessageInput(
            content=[
                UserMessageTextContent(text="remember that "),
                UserMessageTagContent(id="t1", text="release", data={"v": 3}),
                UserMessageTextContent(text=" is friday"),
            ],
            attachments=[],
            quoted_text="the plan",
            inference_options=InferenceOptions(model="any"),
        )
        from chatkit.types import ThreadAddUserMessageParams, ThreadsAddUserMessageReq

        events = await alice_kit.stream(
            ThreadsAddUserMessageReq(
                params=ThreadAddUserMessageParams(thread_id=thread_id, input=message)
            )
        )
        sent = user_item_of(events)
        (read,) = [i for i in await alice_kit.all_items(thread_id) if i.id == sent.id]
        assert read == sent  # lossless: tags, quote and options come back as they were sent
        text = "> the plan\n\nremember that @release is friday"
        assert (await logged(client, alice, thread_id))[-2] == ("user", text)
        memory = await memory_items(running, alice, thread_id)
        assert {"role": "user", "content": text} in memory


class TestThreadsGetByIdAndList:
    async def test_get_by_id_returns_the_thread_with_its_first_items(self, alice_kit) -> None:
        events = await alice_kit.create("list tasks")
        thread = await alice_kit.thread(created_thread_id(events))
        assert isinstance(thread, Thread)
        assert thread.status == ActiveStatus()
        assert [i.id for i in thread.items.data] == [
            user_item_of(events).id,
            f"tools_{reply_of(events).id.removeprefix('reply_')}",
            reply_of(events).id,
        ]
        assert thread.items.has_more is False

    async def test_list_pages_by_recent_activity_in_both_orders(
        self, client, alice, alice_kit
    ) -> None:
        ids = [created_thread_id(await alice_kit.create(f"hello {n}")) for n in range(3)]
        newest_first = await alice_kit.threads(limit=2)
        assert [t.id for t in newest_first.data] == ids[::-1][:2]
        assert (newest_first.has_more, newest_first.after) == (True, ids[1])
        rest = await alice_kit.threads(limit=2, after=newest_first.after)
        assert ([t.id for t in rest.data], rest.has_more) == ([ids[0]], False)
        oldest_first = await alice_kit.threads(limit=10, order="asc")
        assert [t.id for t in oldest_first.data] == ids
        # An archived thread (REST) is a closed one in ChatKit; restoring it reopens it.
        await client.patch(f"/api/threads/{ids[0]}", json={"status": "archived"}, headers=alice)
        assert (await alice_kit.thread(ids[0])).status == ClosedStatus(reason="archived")
        await client.patch(f"/api/threads/{ids[0]}", json={"status": "active"}, headers=alice)
        assert (await alice_kit.thread(ids[0])).status == ActiveStatus()

    async def test_an_unknown_cursor_is_refused(self, alice_kit) -> None:
        from chatkit.types import ThreadListParams, ThreadsListReq

        for after in ("nope", str(uuid.uuid4())):
            error = await alice_kit.refused(
                ThreadsListReq(params=ThreadListParams(after=after)), 400
            )
            assert error.detail == f"Unknown cursor 'after={after}'"


class TestItemsList:
    async def test_pages_never_repeat_or_skip_items_in_either_order(self, alice_kit) -> None:
        thread_id = created_thread_id(await alice_kit.create("add task a"))
        await alice_kit.send(thread_id, "list tasks")
        await alice_kit.send(thread_id, "hello")
        every = await alice_kit.all_items(thread_id)
        assert [i.type for i in every] == [
            "user_message",
            "workflow",
            "assistant_message",
            "user_message",
            "workflow",
            "assistant_message",
            "user_message",
            "assistant_message",
        ]
        for order, expected in (("asc", every), ("desc", every[::-1])):
            seen, after = [], None
            while True:
                page = await alice_kit.items(thread_id, limit=3, order=order, after=after)
                seen += page.data
                if not page.has_more:
                    break
                after = page.after
            assert [i.id for i in seen] == [i.id for i in expected]

    async def test_an_unknown_cursor_or_a_bad_limit_is_refused(self, alice_kit) -> None:
        from chatkit.types import ItemsListParams, ItemsListReq

        thread_id = created_thread_id(await alice_kit.create("hello"))
        unknown = ItemsListReq(params=ItemsListParams(thread_id=thread_id, after="msg_nope"))
        assert (await alice_kit.refused(unknown, 400)).detail == "Unknown cursor 'after=msg_nope'"
        negative = ItemsListReq(params=ItemsListParams(thread_id=thread_id, limit=-1))
        assert (await alice_kit.refused(negative, 422)).detail == "limit must be at least 1, not -1"


class TestThreadsUpdate:
    async def test_rename_is_seen_by_rest_and_keeps_status_and_metadata(
        self, client, alice, alice_kit
    ) -> None:
        thread_id = created_thread_id(await alice_kit.create("hello"))
        await client.patch(
            f"/api/threads/{thread_id}",
            json={"status": "archived", "metadata": {"pinned": True}},
            headers=alice,
        )
        renamed = await alice_kit.rename(thread_id, "  Errands  ")
        assert (renamed.title, renamed.status) == ("Errands", ClosedStatus(reason="archived"))
        thread = (await client.get(f"/api/threads/{thread_id}", headers=alice)).json()
        assert (thread["title"], thread["status"], thread["metadata"]) == (
            "Errands",
            "archived",
            {"pinned": True},
        )

    async def test_a_title_over_the_limit_is_refused_and_changes_nothing(
        self, client, alice, alice_kit
    ) -> None:
        from chatkit.types import ThreadsUpdateReq, ThreadUpdateParams

        thread_id = created_thread_id(await alice_kit.create("hello"))
        request = ThreadsUpdateReq(params=ThreadUpdateParams(thread_id=thread_id, title="t" * 201))
        error = await alice_kit.refused(request, 422)
        assert error.detail == "title is 201 characters; the limit is 200"
        assert (await alice_kit.thread(thread_id)).title == "hello"


class TestThreadsDelete:
    async def test_delete_removes_both_views_and_the_memory_file(
        self, running, client, alice, alice_kit
    ) -> None:
        thread_id = created_thread_id(await alice_kit.create("remember that x is 1"))
        user_id = await running.user_id(alice)
        path = running.memory_store.path_for(user_id, uuid.UUID(thread_id))
        assert path.exists()
        await alice_kit.delete(thread_id)
        assert not path.exists()
        assert (await client.get(f"/api/threads/{thread_id}", headers=alice)).status_code == 404
        from chatkit.types import ThreadGetByIdParams, ThreadsGetByIdReq

        gone = ThreadsGetByIdReq(params=ThreadGetByIdParams(thread_id=thread_id))
        assert (await alice_kit.refused(gone, 404)).detail == f"Thread {thread_id} not found"


class TestItemsFeedback:
    async def test_feedback_is_kept_in_the_message_metadata_rest_shows(
        self, client, alice, alice_kit
    ) -> None:
        events = await alice_kit.create("hello")
        thread_id = created_thread_id(events)
        await alice_kit.feedback(thread_id, [reply_of(events).id], "positive")
        await alice_kit.feedback(thread_id, [reply_of(events).id], "negative")
        messages = (await client.get(f"/api/threads/{thread_id}/messages", headers=alice)).json()[
            "data"
        ]
        assert [m["metadata"].get("feedback") for m in messages] == [None, "negative"]

    async def test_one_unknown_item_and_no_feedback_is_written(
        self, client, alice, alice_kit
    ) -> None:
        from chatkit.types import ItemFeedbackParams, ItemsFeedbackReq

        events = await alice_kit.create("hello")
        thread_id = created_thread_id(events)
        request = ItemsFeedbackReq(
            params=ItemFeedbackParams(
                thread_id=thread_id, item_ids=[reply_of(events).id, "msg_nope"], kind="positive"
            )
        )
        error = await alice_kit.refused(request, 404)
        assert error.detail == "Item msg_nope not found among the messages"
        messages = (await client.get(f"/api/threads/{thread_id}/messages", headers=alice)).json()[
            "data"
        ]
        assert [m["metadata"].get("feedback") for m in messages] == [None, None]


class TestWhatThisAgentDoesNotOffer:
    """Clear ChatKit errors, nothing written, for what the example agent has no use for."""

    async def test_client_tool_output_structured_input_and_actions(
        self, client, alice, alice_kit
    ) -> None:
        events = await alice_kit.create("hello")
        thread_id, user_id = created_thread_id(events), user_item_of(events).id
        action = Action(type="archive", payload={})
        refusals = [
            (
                ThreadsAddClientToolOutputReq(
                    params=ThreadAddClientToolOutputParams(thread_id=thread_id, result={"ok": True})
                ),
                "This agent has no client tools: no client tool call is pending in "
                f"thread {thread_id}",
            ),
            (
                ThreadsAddStructuredInputReq(
                    params=ThreadAddStructuredInputParams(
                        thread_id=thread_id, item_id=user_id, input=StructuredInputSubmission()
                    )
                ),
                "This agent asks for no structured input",
            ),
            (
                ThreadsCustomActionReq(
                    params=ThreadCustomActionParams(thread_id=thread_id, action=action)
                ),
                "This agent has no actions: action 'archive' is not supported",
            ),
        ]
        for request, message in refusals:
            error = await alice_kit.stream_error(request)
            assert (error.code, error.message, error.allow_retry) == ("custom", message, False)
        sync = ThreadsSyncCustomActionReq(
            params=ThreadCustomActionParams(thread_id=thread_id, action=action)
        )
        refused = await alice_kit.refused(sync, 400)
        assert (refused.error, refused.detail) == (
            "NotSupportedError",
            "This agent has no actions: action 'archive' is not supported",
        )
        assert len(await logged(client, alice, thread_id)) == 2

    async def test_attachments_and_dictation(self, client, alice, alice_kit) -> None:
        create = AttachmentsCreateReq(
            params=AttachmentCreateParams(name="a.png", size=3, mime_type="image/png")
        )
        delete = AttachmentsDeleteReq(params=AttachmentDeleteParams(attachment_id="atc_1"))
        for request in (create, delete):
            error = await alice_kit.refused(request, 400)
            assert error.detail == "Attachments are not supported by this server"
        audio = base64.b64encode(b"RIFF").decode()
        transcribe = InputTranscribeReq(
            params=InputTranscribeParams(audio_base64=audio, mime_type="audio/webm")
        )
        error = await alice_kit.refused(transcribe, 400)
        assert error.detail == "Dictation (input.transcribe) is not supported by this server"
        # A message that carries an attachment is refused before a thread is created.
        with_file = user_input("look")
        with_file.attachments = ["atc_1"]
        before = (await client.get("/api/threads", headers=alice)).json()["data"]
        error = await alice_kit.stream_error(
            ThreadsCreateReq(params=ThreadCreateParams(input=with_file))
        )
        assert error.message == "Attachments are not supported by this server"
        assert (await client.get("/api/threads", headers=alice)).json()["data"] == before


class TestBadInput:
    async def test_a_body_that_is_not_a_chatkit_request_is_422_naming_the_problem(
        self, alice_kit
    ) -> None:
        cases = {
            b"{not json": "The body is not JSON: ",
            b'{"type": "threads.nope", "params": {}}': "Not a ChatKit request: ",
            b'{"type": "threads.get_by_id", "params": {}}': (
                "Not a ChatKit request: threads.get_by_id.params.thread_id: Field required"
            ),
            b'{"type": "threads.get_by_id", "params": {"thread_id": "a\\u0000b"}}': (
                "request: must not contain NUL characters (\\u0000)"
            ),
        }
        for body, detail in cases.items():
            error = await alice_kit.refused(body, 422)
            assert error.detail.startswith(detail), error.detail

    async def test_empty_or_too_long_text_is_a_chatkit_error_and_creates_nothing(
        self, client, alice, alice_kit, settings
    ) -> None:
        limit = settings.MAX_MESSAGE_CHARS
        for text, message in (
            ("   ", "text must not be empty"),
            ("x" * (limit + 1), f"text is {limit + 1} characters; the limit is {limit}"),
        ):
            error = await alice_kit.stream_error(
                ThreadsCreateReq(params=ThreadCreateParams(input=user_input(text)))
            )
            assert (error.message, error.allow_retry) == (message, False)
        assert (await client.get("/api/threads", headers=alice)).json()["data"] == []

    async def test_no_token_is_401(self, client) -> None:
        response = await client.post("/chatkit", json={"type": "threads.list", "params": {}})
        assert response.status_code == 401
        assert response.json()["error"] == "UnauthorizedError"


class TestAgentChoice:
    """`threads.create` picks the thread's agent from the request's `metadata.agent`, as
    `POST /api/threads` does from its body's `agent`."""

    AGENTS = "todo=app.assistant.todo:build_agent,support=tests.agent_plugin.support:build_agent"

    async def test_metadata_agent_names_the_agent_and_an_unknown_one_creates_nothing(
        self, settings_factory, alice
    ) -> None:
        async with (
            start_app(settings_factory(AGENTS=self.AGENTS)) as running,
            running.client() as client,
        ):
            kit = ChatKitClient(client, alice)
            default = created_thread_id(await kit.create("hello"))
            chosen = created_thread_id(
                await kit.stream(
                    ThreadsCreateReq(
                        params=ThreadCreateParams(input=user_input("hello")),
                        metadata={"agent": "support"},
                    )
                )
            )
            agents = {
                t["id"]: t["agent"]
                for t in (await client.get("/api/threads", headers=alice)).json()["data"]
            }
            assert agents == {default: "todo", chosen: "support"}
            error = await kit.stream_error(
                ThreadsCreateReq(
                    params=ThreadCreateParams(input=user_input("hello")),
                    metadata={"agent": "nobody"},
                )
            )
            assert (error.message, error.allow_retry) == (
                "agent: unknown agent 'nobody'; choose one of: todo, support",
                False,
            )
            listed = (await client.get("/api/threads", headers=alice)).json()["data"]
            assert len(listed) == 2
