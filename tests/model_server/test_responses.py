"""The Responses API through the real `openai` client and the SDK's `OpenAIResponsesModel`.

Raw events are validated against the `openai` package's own pydantic types, so a shape the
client would only accept leniently (it parses without validating) still fails here.
"""

from __future__ import annotations

import json

import httpx
import openai
import pytest
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from tests.model_server import Text, ToolCall
from tests.model_server.sdk import MODEL, Adder, agent, run_streamed

EVENTS = TypeAdapter(ResponseStreamEvent)


async def raw_events(base_url: str, body: dict) -> list[dict]:
    """The stream's events as JSON, each checked against its `event:` line."""
    async with (
        httpx.AsyncClient(base_url=base_url) as http,
        http.stream("POST", "/responses", json={"stream": True, **body}) as response,
    ):
        lines = [line async for line in response.aiter_lines() if line]
    names = [line.removeprefix("event: ") for line in lines[0::2]]
    events = [json.loads(line.removeprefix("data: ")) for line in lines[1::2]]
    assert names == [event["type"] for event in events]
    return events


class TestResponsesStream:
    async def test_a_text_reply_has_the_real_event_order_and_valid_events(
        self, model_server
    ) -> None:
        model_server.enqueue(Text("one two three", tokens=2))
        events = await raw_events(model_server.base_url, {"model": MODEL, "input": "hello there"})
        assert [e["type"] for e in events] == [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed",
        ]
        for event in events:
            EVENTS.validate_python(event)
        assert [e["sequence_number"] for e in events] == list(range(len(events)))
        assert [e["delta"] for e in events if "delta" in e] == ["one two", " three"]
        completed = Response.model_validate(events[-1]["response"])
        assert completed.output_text == "one two three"
        assert completed.usage is not None
        assert (completed.usage.input_tokens, completed.usage.output_tokens) == (3, 4)

    async def test_a_tool_call_streams_its_arguments_in_pieces(self, model_server) -> None:
        model_server.enqueue(ToolCall("add", {"a": 1, "b": 2}, call_id="call_7"))
        events = await raw_events(model_server.base_url, {"model": MODEL, "input": "sum"})
        for event in events:
            EVENTS.validate_python(event)
        pieces = [
            e["delta"] for e in events if e["type"] == "response.function_call_arguments.delta"
        ]
        assert "".join(pieces) == '{"a":1,"b":2}'
        assert len(pieces) == 3
        (added,) = [e["item"] for e in events if e["type"] == "response.output_item.added"]
        assert (added["call_id"], added["name"], added["arguments"]) == ("call_7", "add", "")

    async def test_a_non_streamed_response_is_a_valid_response_with_usage(
        self, model_server, model_client
    ) -> None:
        model_server.enqueue(Text("four five six"))
        raw = await model_client.responses.with_raw_response.create(
            model=MODEL, input="hello there"
        )
        response = Response.model_validate(json.loads(raw.text))
        assert response.output_text == "four five six"
        assert response.usage is not None
        assert (response.usage.input_tokens, response.usage.output_tokens) == (3, 4)
        assert raw.headers["x-request-id"] == model_server.requests[-1].request_id


class TestSdkResponsesModel:
    async def test_streamed_deltas_concatenate_to_the_final_output(
        self, model_server, responses_model
    ) -> None:
        model_server.enqueue(Text("the quick brown fox", tokens=3))
        run = await run_streamed(agent(responses_model), "hello there")
        assert run.deltas == ["the quick", " brown", " fox"]
        assert run.result.final_output == "the quick brown fox"
        # "Be brief." + "hello there": 20 characters, 5 tokens; the reply: 19, 5 tokens.
        assert (run.usage.requests, run.usage.input_tokens, run.usage.output_tokens) == (1, 5, 5)

    async def test_a_tool_call_round_trip_pairs_the_call_id_with_its_output(
        self, model_server, responses_model
    ) -> None:
        adder = Adder()
        model_server.enqueue(ToolCall("add", {"a": 2, "b": 3}, call_id="call_42"), Text("5"))
        run = await run_streamed(agent(responses_model, tools=[adder.tool()]), "add 2 and 3")
        assert run.result.final_output == "5"
        assert adder.calls == [(2, 3)]
        first, second = model_server.model_requests
        assert [tool["name"] for tool in first.body["tools"]] == ["add"]
        call, output = second.body["input"][-2:]
        assert (call["type"], call["call_id"], call["name"]) == ("function_call", "call_42", "add")
        assert (output["type"], output["call_id"], output["output"]) == (
            "function_call_output",
            "call_42",
            "5",
        )


class TestServerSideHistory:
    async def test_previous_response_id_continues_the_stored_conversation(
        self, model_server, model_client
    ) -> None:
        first = await model_client.responses.create(
            model=MODEL, input="remember that the code is 7"
        )
        second = await model_client.responses.create(
            model=MODEL, input="what did I ask you to remember?", previous_response_id=first.id
        )
        assert second.output_text == "You asked me to remember: that the code is 7."

    async def test_an_unknown_previous_response_id_is_a_400(self, model_client) -> None:
        with pytest.raises(openai.BadRequestError) as caught:
            await model_client.responses.create(
                model=MODEL, input="hi", previous_response_id="resp_missing"
            )
        assert caught.value.code == "previous_response_not_found"

    async def test_a_conversation_collects_each_exchange_and_serves_it_as_history(
        self, model_server, model_client
    ) -> None:
        conversation = await model_client.conversations.create()
        for text in ("remember that the door code is 1234", "what did I ask you to remember?"):
            reply = await model_client.responses.create(
                model=MODEL, input=text, conversation=conversation.id
            )
        assert reply.output_text == "You asked me to remember: that the door code is 1234."
        items = [
            item
            async for item in model_client.conversations.items.list(conversation.id, order="asc")
        ]
        assert [(item.type, item.role) for item in items] == [
            ("message", "user"),
            ("message", "assistant"),
            ("message", "user"),
            ("message", "assistant"),
        ]
        assert items[-1].content[0].text == reply.output_text
