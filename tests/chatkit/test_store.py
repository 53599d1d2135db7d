"""The ChatKit store keeps every ChatKit item type losslessly, beside the message log, and
one thread is one thread through both APIs."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from chatkit.store import NotFoundError
from chatkit.types import (
    Annotation,
    AssistantMessageContent,
    AssistantMessageItem,
    ClientToolCallItem,
    CustomTask,
    EndOfTurnItem,
    GeneratedImage,
    GeneratedImageItem,
    HiddenContextItem,
    SDKHiddenContextItem,
    StructuredInputFreeform,
    StructuredInputItem,
    TaskItem,
    ThoughtTask,
    ThreadItem,
    URLSource,
    WidgetItem,
    Workflow,
    WorkflowItem,
)
from chatkit.widgets import Card, Text

from app.chatkit.context import ChatKitContext
from app.chatkit.store import ThreadkeeperStore
from app.errors import UnprocessableError
from tests.chatkit.client import ChatKitClient, created_thread_id, reply_of, texts, user_item_of
from tests.factories import create_thread, logged
from tests.sse import send


async def store_as(running, headers: dict[str, str]) -> tuple[ThreadkeeperStore, ChatKitContext]:
    """The ChatKit store and the request context it gets when this user calls `/chatkit`."""
    context = ChatKitContext(
        user_id=await running.user_id(headers),
        settings=running.app.state.settings,
        sessionmaker=running.sessionmaker,
        runner=running.turn_runner,
        memory_store=running.memory_store,
        agents=running.state["agents"],
    )
    return ThreadkeeperStore(), context


def every_kind_of_item(thread_id: str) -> list[ThreadItem]:
    at = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    common = {"thread_id": thread_id, "created_at": at}
    return [
        WidgetItem(
            id="msg_widget", widget=Card(children=[Text(value="hi")]), copy_text="hi", **common
        ),
        WorkflowItem(
            id="wf_1",
            workflow=Workflow(type="reasoning", tasks=[ThoughtTask(content="hmm")], expanded=True),
            **common,
        ),
        TaskItem(id="tsk_1", task=CustomTask(title="a task", content="done"), **common),
        ClientToolCallItem(
            id="tc_1", call_id="call_1", name="pick_color", arguments={"a": [1, 2]}, **common
        ),
        HiddenContextItem(id="hc_1", content={"any": ["json", 1]}, **common),
        SDKHiddenContextItem(id="shcx_1", content="for the model", **common),
        EndOfTurnItem(id="eot_1", **common),
        GeneratedImageItem(
            id="img_1", image=GeneratedImage(id="g", url="https://x/y.png"), **common
        ),
        StructuredInputItem(
            id="si_1", inputs=[StructuredInputFreeform(id="q", question="Why?")], **common
        ),
        AssistantMessageItem(
            id="msg_said_elsewhere",
            content=[
                AssistantMessageContent(
                    text="cited",
                    annotations=[Annotation(source=URLSource(title="t", url="https://a"), index=2)],
                )
            ],
            **common,
        ),
    ]


class TestEveryItemType:
    async def test_items_are_stored_whole_in_order_and_only_chatkit_lists_them(
        self, running, client, alice
    ) -> None:
        kit = ChatKitClient(client, alice)
        events = await kit.create("hello")
        thread_id = created_thread_id(events)
        store, context = await store_as(running, alice)
        items = every_kind_of_item(thread_id)
        for item in items:
            await store.add_thread_item(thread_id, item, context)
        for item in items:
            assert await store.load_item(thread_id, item.id, context) == item
        # ChatKit lists them after the messages, in the order they were stored (hidden
        # context is for the server: ChatKit's own server leaves it out of items.list).
        listed = await kit.all_items(thread_id)
        visible = [i for i in items if i.type not in ("hidden_context_item", "sdk_hidden_context")]
        assert listed[2:] == visible
        assert [i.id for i in listed[:2]] == [user_item_of(events).id, reply_of(events).id]
        # The REST log shows the messages only; the agent's memory never sees ChatKit items.
        assert [role for role, _ in await logged(client, alice, thread_id)] == ["user", "assistant"]
        # Replace and delete work on stored items.
        changed = items[2].model_copy(update={"task": CustomTask(title="renamed")})
        await store.save_item(thread_id, changed, context)
        assert await store.load_item(thread_id, "tsk_1", context) == changed
        await store.delete_thread_item(thread_id, "tsk_1", context)
        with pytest.raises(NotFoundError):
            await store.load_item(thread_id, "tsk_1", context)

    async def test_log_messages_cannot_be_replaced_or_deleted_one_by_one(
        self, running, client, alice
    ) -> None:
        kit = ChatKitClient(client, alice)
        events = await kit.create("hello")
        thread_id = created_thread_id(events)
        store, context = await store_as(running, alice)
        user = user_item_of(events)
        with pytest.raises(UnprocessableError, match="is a message of the log"):
            await store.delete_thread_item(thread_id, user.id, context)
        with pytest.raises(UnprocessableError, match="is a message of the log"):
            await store.save_item(thread_id, user, context)
        assert [role for role, _ in await logged(client, alice, thread_id)] == ["user", "assistant"]

    async def test_a_retry_drops_the_chatkit_items_stored_after_the_retried_message(
        self, running, client, alice
    ) -> None:
        kit = ChatKitClient(client, alice)
        events = await kit.create("remember that a is 1")
        thread_id = created_thread_id(events)
        store, context = await store_as(running, alice)
        widget = every_kind_of_item(thread_id)[0]
        await store.add_thread_item(thread_id, widget, context)
        await kit.retry(thread_id, user_item_of(events).id)
        assert [i.type for i in await kit.all_items(thread_id)] == [
            "user_message",
            "assistant_message",
        ]


class TestOneThreadTwoApis:
    async def test_rest_messages_are_chatkit_items_with_their_tool_calls(
        self, client, alice
    ) -> None:
        kit = ChatKitClient(client, alice)
        thread_id = await create_thread(client, alice, "From REST")
        sent = await send(client, thread_id, "add task buy milk", alice)
        user_id = sent[0].data["id"]
        turn_id = uuid.UUID(sent[0].data["turn_id"])
        thread = await kit.thread(thread_id)
        assert thread.title == "From REST"
        user, tools, reply = thread.items.data
        assert user.id == user_id
        assert texts([user, reply]) == [
            ("user", "add task buy milk"),
            ("assistant", 'Added "buy milk" to your tasks.'),
        ]
        assert (tools.id, reply.id) == (f"tools_{turn_id.hex}", f"reply_{turn_id.hex}")
        assert isinstance(tools, WorkflowItem)
        (task,) = tools.workflow.tasks
        assert task.title == "add_task"
        assert task.content.startswith('Arguments: {"title":"buy milk"}\n\nResult: {"id": ')
        # A ChatKit thread is a REST thread, with its messages.
        made = created_thread_id(await kit.create("list tasks"))
        listed = (await client.get("/api/threads", headers=alice)).json()["data"]
        assert [t["id"] for t in listed] == [made, thread_id]

    async def test_a_rest_delete_removes_the_chatkit_view(self, client, alice) -> None:
        kit = ChatKitClient(client, alice)
        thread_id = created_thread_id(await kit.create("hello"))
        assert (await client.delete(f"/api/threads/{thread_id}", headers=alice)).status_code == 204
        assert thread_id not in [t.id for t in (await kit.threads()).data]
        from chatkit.types import ItemsListParams, ItemsListReq

        gone = ItemsListReq(params=ItemsListParams(thread_id=thread_id))
        assert (await kit.refused(gone, 404)).detail == f"Thread {thread_id} not found"
