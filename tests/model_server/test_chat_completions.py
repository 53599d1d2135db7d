"""Chat Completions through the real `openai` client and the SDK's `OpenAIChatCompletionsModel`."""

from __future__ import annotations

import itertools
import json
import time

import httpx

from tests.model_server import Text, ToolCall
from tests.model_server.sdk import MODEL, Adder, agent, run_streamed

HELLO = [{"role": "user", "content": "hello there"}]  # 11 characters: 3 prompt tokens


async def stream_chunks(client, **kwargs):
    stream = await client.chat.completions.create(
        model=MODEL, messages=HELLO, stream=True, **kwargs
    )
    return [chunk async for chunk in stream]


class TestStreamedText:
    async def test_deltas_concatenate_to_the_reply(self, model_server, model_client) -> None:
        model_server.enqueue(Text("one two three four", tokens=2))
        chunks = await stream_chunks(model_client)
        deltas = [c.choices[0].delta.content for c in chunks if c.choices[0].delta.content]
        assert deltas == ["one two", " three four"]
        assert chunks[0].choices[0].delta.role == "assistant"
        assert [c.choices[0].finish_reason for c in chunks][-1] == "stop"
        assert len({c.id for c in chunks}) == 1

    async def test_without_include_usage_no_chunk_carries_usage(
        self, model_server, model_client
    ) -> None:
        model_server.enqueue(Text("four five six"))
        chunks = await stream_chunks(model_client)
        assert all(chunk.choices for chunk in chunks)
        assert [chunk.usage for chunk in chunks] == [None] * len(chunks)

    async def test_include_usage_adds_a_last_chunk_with_empty_choices_and_the_usage(
        self, model_server, model_client
    ) -> None:
        model_server.enqueue(Text("four five six"))  # 13 characters: 4 completion tokens
        chunks = await stream_chunks(model_client, stream_options={"include_usage": True})
        *content, last = chunks
        assert last.choices == []
        assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (3, 4)
        assert last.usage.total_tokens == 7
        assert [chunk.usage for chunk in content] == [None] * len(content)

    async def test_usage_key_is_null_with_include_usage_and_absent_without(
        self, model_server
    ) -> None:
        async def raw_chunks(body: dict) -> list[dict]:
            async with (
                httpx.AsyncClient(base_url=model_server.base_url) as http,
                http.stream("POST", "/chat/completions", json=body) as response,
            ):
                lines = [line async for line in response.aiter_lines() if line.startswith("data:")]
            assert lines[-1] == "data: [DONE]"
            return [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]

        model_server.enqueue(Text("four five six"), Text("four five six"))
        body = {"model": MODEL, "messages": HELLO, "stream": True}
        without = await raw_chunks(body)
        with_usage = await raw_chunks({**body, "stream_options": {"include_usage": True}})
        assert not any("usage" in chunk for chunk in without)
        assert [chunk["usage"] for chunk in with_usage[:-1]] == [None] * (len(with_usage) - 1)
        assert with_usage[-1]["usage"]["completion_tokens"] == 4

    async def test_token_delay_spaces_the_deltas(self, model_server, model_client) -> None:
        model_server.enqueue(Text.of_tokens(3, delay=0.2))
        stream = await model_client.chat.completions.create(
            model=MODEL, messages=HELLO, stream=True
        )
        arrivals = []
        async for chunk in stream:
            if chunk.choices[0].delta.content:
                arrivals.append((chunk.choices[0].delta.content, time.monotonic()))
        assert [delta for delta, _ in arrivals] == ["tok1", " tok2", " tok3"]
        times = [at for _, at in arrivals]
        gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
        # 0.2 s apart on the server; arrival times jitter with scheduling on a shared machine,
        # so allow 50 ms: deltas sent together would arrive microseconds apart.
        assert [gap > 0.15 for gap in gaps] == [True, True]


class TestToolCalls:
    async def test_a_call_streams_id_and_name_first_then_its_arguments_in_pieces(
        self, model_server, model_client
    ) -> None:
        model_server.enqueue(ToolCall("add_task", {"title": "buy milk"}, call_id="call_1"))
        chunks = await stream_chunks(model_client)
        calls = [c.choices[0].delta.tool_calls[0] for c in chunks if c.choices[0].delta.tool_calls]
        first, *pieces = calls
        assert (first.id, first.type, first.function.name) == ("call_1", "function", "add_task")
        assert first.function.arguments == ""
        assert [p.id for p in pieces] == [None, None, None]
        assert "".join(p.function.arguments for p in pieces) == '{"title":"buy milk"}'
        assert chunks[-1].choices[0].finish_reason == "tool_calls"

    async def test_parallel_calls_each_get_their_index_and_id(
        self, model_server, model_client
    ) -> None:
        model_server.enqueue(
            [
                ToolCall("add", {"a": 1}, call_id="call_a"),
                ToolCall("add", {"a": 2}, call_id="call_b"),
            ]
        )
        calls: dict[int, dict[str, str]] = {}
        for chunk in await stream_chunks(model_client):
            for delta in chunk.choices[0].delta.tool_calls or []:
                call = calls.setdefault(delta.index, {"id": "", "arguments": ""})
                call["id"] += delta.id or ""
                call["arguments"] += delta.function.arguments or ""
        assert calls == {
            0: {"id": "call_a", "arguments": '{"a":1}'},
            1: {"id": "call_b", "arguments": '{"a":2}'},
        }

    async def test_a_non_streamed_completion_carries_the_calls_and_the_usage(
        self, model_server, model_client
    ) -> None:
        model_server.enqueue(ToolCall("add", {"a": 1}, call_id="call_a"))
        completion = await model_client.chat.completions.create(model=MODEL, messages=HELLO)
        (choice,) = completion.choices
        assert choice.finish_reason == "tool_calls"
        assert choice.message.content is None
        ((call_id, name, arguments),) = [
            (c.id, c.function.name, c.function.arguments) for c in choice.message.tool_calls
        ]
        assert (call_id, name, arguments) == ("call_a", "add", '{"a":1}')
        assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (3, 3)


class TestRecording:
    async def test_each_request_body_is_recorded_under_the_request_id_it_was_answered_with(
        self, model_server, model_client
    ) -> None:
        raw = await model_client.chat.completions.with_raw_response.create(
            model=MODEL, messages=HELLO, temperature=0.5
        )
        (recorded,) = model_server.requests
        assert recorded.body == {"model": MODEL, "messages": HELLO, "temperature": 0.5}
        assert recorded.headers["authorization"] == "Bearer sk-test-model-server"
        assert raw.headers["x-request-id"] == recorded.request_id


class TestSdkChatCompletionsModel:
    async def test_streamed_deltas_concatenate_to_the_final_output(
        self, model_server, chat_model
    ) -> None:
        model_server.enqueue(Text("the quick brown fox"))
        run = await run_streamed(agent(chat_model), "hi")
        assert run.deltas == ["the", " quick", " brown", " fox"]
        assert run.result.final_output == "the quick brown fox"

    async def test_a_tool_call_round_trip_pairs_the_call_id_with_its_output(
        self, model_server, chat_model
    ) -> None:
        adder = Adder()
        model_server.enqueue(ToolCall("add", {"a": 2, "b": 3}, call_id="call_42"), Text("5"))
        run = await run_streamed(agent(chat_model, tools=[adder.tool()]), "add 2 and 3")
        assert run.result.final_output == "5"
        assert adder.calls == [(2, 3)]
        first, second = model_server.model_requests
        assert [t["function"]["name"] for t in first.body["tools"]] == ["add"]
        *_, assistant, tool = second.body["messages"]
        assert [call["id"] for call in assistant["tool_calls"]] == ["call_42"]
        assert (tool["role"], tool["tool_call_id"], tool["content"]) == ("tool", "call_42", "5")

    async def test_parallel_calls_all_come_back_paired(self, model_server, chat_model) -> None:
        adder = Adder()
        model_server.enqueue(
            [
                ToolCall("add", {"a": 1, "b": 2}, call_id="call_a"),
                ToolCall("add", {"a": 3, "b": 4}, call_id="call_b"),
            ],
            Text("3 and 7"),
        )
        run = await run_streamed(agent(chat_model, tools=[adder.tool()]), "two sums")
        assert run.result.final_output == "3 and 7"
        assert sorted(adder.calls) == [(1, 2), (3, 4)]
        outputs = [
            m for m in model_server.model_requests[1].body["messages"] if m["role"] == "tool"
        ]
        assert [(m["tool_call_id"], m["content"]) for m in outputs] == [
            ("call_a", "3"),
            ("call_b", "7"),
        ]

    async def test_usage_reaches_the_sdk_only_when_include_usage_is_set(
        self, model_server, chat_model
    ) -> None:
        # "Be brief." + "hello there" = 20 characters: 5 tokens; "hi there": 2 tokens.
        model_server.enqueue(Text("hi there"), Text("hi there"))
        default = await run_streamed(agent(chat_model), "hello there")
        opted_in = await run_streamed(agent(chat_model, include_usage=True), "hello there")
        # Off api.openai.com the SDK sends no stream_options unless include_usage is set.
        first, second = model_server.model_requests
        assert "stream_options" not in first.body
        assert second.body["stream_options"] == {"include_usage": True}
        assert (
            default.usage.requests,
            default.usage.input_tokens,
            default.usage.output_tokens,
        ) == (1, 0, 0)
        assert (opted_in.usage.input_tokens, opted_in.usage.output_tokens) == (5, 2)
