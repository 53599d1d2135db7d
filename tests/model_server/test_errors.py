"""Failures as callers see them: `openai` exception classes, codes, request ids, headers.

Clients are built with `max_retries=0` (the `model_client` fixture), so each scripted step
answers exactly one request; the SDK does not wrap these errors, so a `Runner` raises the
same classes the client does.
"""

from __future__ import annotations

import json
from dataclasses import replace

import openai
import pytest
from agents.exceptions import ModelBehaviorError

from tests.model_server import Drop, EndsEarly, Hang, HttpError, Malformed, Text
from tests.model_server.fixtures import TEST_API_KEY
from tests.model_server.sdk import MODEL, MODEL_FACTORIES, agent, run_streamed

APIS = list(MODEL_FACTORIES)
SCRIPTED_ERRORS = [
    pytest.param(HttpError.context_length_exceeded(), openai.BadRequestError, id="400"),
    pytest.param(HttpError.invalid_api_key(), openai.AuthenticationError, id="401"),
    pytest.param(HttpError.model_not_found("gpt-9"), openai.NotFoundError, id="404"),
    pytest.param(HttpError.rate_limited(retry_after=7), openai.RateLimitError, id="429"),
    pytest.param(HttpError.server_error(), openai.InternalServerError, id="500"),
    pytest.param(HttpError.unavailable(), openai.InternalServerError, id="503"),
]


async def call(client: openai.AsyncOpenAI, api: str, *, stream: bool, model: str = MODEL) -> None:
    """One request of `api`, consumed to the end."""
    if api == "chat_completions":
        messages = [{"role": "user", "content": "hi"}]
        result = await client.chat.completions.create(model=model, messages=messages, stream=stream)
    else:
        result = await client.responses.create(model=model, input="hi", stream=stream)
    if stream:
        async for _ in result:
            pass


class TestScriptedHttpErrors:
    @pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
    @pytest.mark.parametrize("api", APIS)
    @pytest.mark.parametrize(("error", "exception"), SCRIPTED_ERRORS)
    async def test_each_error_surfaces_as_its_openai_class(
        self, model_server, model_client, api, stream, error, exception
    ) -> None:
        model_server.enqueue(error)
        with pytest.raises(exception) as caught:
            await call(model_client, api, stream=stream)
        assert type(caught.value) is exception
        assert caught.value.status_code == error.status
        assert (caught.value.code, caught.value.type) == (error.code, error.type)
        assert caught.value.body == error.body()["error"]
        assert caught.value.request_id == model_server.requests[-1].request_id

    async def test_a_429_carries_retry_after_and_the_scripted_request_id(
        self, model_server, model_client
    ) -> None:
        model_server.enqueue(HttpError.rate_limited(retry_after=7, request_id="req_rate"))
        with pytest.raises(openai.RateLimitError) as caught:
            await call(model_client, "chat_completions", stream=True)
        assert caught.value.request_id == "req_rate"
        assert caught.value.response.headers["retry-after"] == "7"

    @pytest.mark.parametrize("api", APIS)
    async def test_the_sdk_runner_raises_the_same_class(
        self, model_server, model_client, api
    ) -> None:
        model_server.enqueue(HttpError.context_length_exceeded(limit=8192, used=9000))
        with pytest.raises(openai.BadRequestError) as caught:
            await run_streamed(agent(MODEL_FACTORIES[api](model_client)), "hi")
        assert caught.value.code == "context_length_exceeded"
        assert "maximum context length is 8192 tokens" in caught.value.message

    async def test_a_client_with_retries_honours_retry_after_ms_and_then_succeeds(
        self, model_server
    ) -> None:
        unavailable = replace(HttpError.unavailable(), headers={"retry-after-ms": "10"})
        model_server.enqueue(unavailable, Text("back"))
        async with openai.AsyncOpenAI(
            base_url=model_server.base_url, api_key=TEST_API_KEY, max_retries=1
        ) as client:
            reply = await client.responses.create(model=MODEL, input="hi")
        assert reply.output_text == "back"
        assert len(model_server.model_requests) == 2


class TestRules:
    @pytest.mark.parametrize("api", APIS)
    async def test_an_unknown_model_is_404_and_leaves_the_script_alone(
        self, model_server, model_client, api
    ) -> None:
        model_server.enqueue(Text("kept"))
        with pytest.raises(openai.NotFoundError) as caught:
            await call(model_client, api, stream=True, model="gpt-9")
        assert caught.value.code == "model_not_found"
        assert caught.value.message.endswith(
            "The model `gpt-9` does not exist or you do not have access to it."
        )
        assert model_server.pending == 1

    async def test_a_wrong_api_key_is_401_on_every_endpoint(self, model_server) -> None:
        model_server.configure(api_key="sk-right")
        async with openai.AsyncOpenAI(
            base_url=model_server.base_url, api_key="sk-wrong-key", max_retries=0
        ) as wrong:
            for request in (
                call(wrong, "chat_completions", stream=False),
                wrong.models.retrieve(MODEL),
                wrong.conversations.create(),
            ):
                with pytest.raises(openai.AuthenticationError) as caught:
                    await request
                assert caught.value.code == "invalid_api_key"
        async with openai.AsyncOpenAI(
            base_url=model_server.base_url, api_key="sk-right", max_retries=0
        ) as right:
            assert (await right.models.retrieve(MODEL)).id == MODEL

    async def test_a_prompt_over_the_context_window_is_400(
        self, model_server, model_client
    ) -> None:
        model_server.configure(context_window=2)  # "hi there you": 12 characters, 3 tokens
        with pytest.raises(openai.BadRequestError) as caught:
            await model_client.responses.create(model=MODEL, input="hi there you")
        assert caught.value.code == "context_length_exceeded"
        assert "maximum context length is 2 tokens" in caught.value.message
        assert "resulted in 3 tokens" in caught.value.message


@pytest.mark.parametrize("api", APIS)
class TestBrokenStreams:
    @pytest.mark.parametrize(
        ("step", "exception"),
        [
            pytest.param(Malformed(after_tokens=2), json.JSONDecodeError, id="truncated-json"),
            pytest.param(Malformed(2, kind="garbage"), json.JSONDecodeError, id="garbage"),
            pytest.param(Drop(after_tokens=2), openai.APIConnectionError, id="dropped"),
        ],
    )
    async def test_a_broken_stream_raises_after_the_good_deltas(
        self, model_server, model_client, api, step, exception
    ) -> None:
        model_server.enqueue(step)
        deltas: list[str] = []
        with pytest.raises(exception) as caught:
            await run_streamed(agent(MODEL_FACTORIES[api](model_client)), "hi", deltas=deltas)
        assert type(caught.value) is exception
        assert deltas == ["tok1", " tok2"]

    async def test_a_hung_stream_times_out_on_the_client(
        self, model_server, model_client, api
    ) -> None:
        model_server.enqueue(Hang(after_tokens=1))
        with pytest.raises(openai.APITimeoutError):
            await call(model_client.with_options(timeout=0.3), api, stream=True)
        assert len(model_server.model_requests) == 1


class TestStreamsThatEndEarly:
    async def test_chat_completions_accepts_a_cut_stream_as_a_complete_reply(
        self, model_server, chat_model
    ) -> None:
        # Off api.openai.com the SDK does not require a finish_reason: a proxy that cuts the
        # stream cleanly yields a silently truncated reply, not an error.
        model_server.enqueue(EndsEarly(after_tokens=2))
        run = await run_streamed(agent(chat_model), "hi")
        assert run.result.final_output == "tok1 tok2"

    async def test_responses_raises_without_response_completed(
        self, model_server, responses_model
    ) -> None:
        model_server.enqueue(EndsEarly(after_tokens=2))
        with pytest.raises(ModelBehaviorError, match="did not produce a final response"):
            await run_streamed(agent(responses_model), "hi")


class TestProviderOutage:
    async def test_a_stopped_server_refuses_and_a_restart_answers_on_the_same_url(
        self, model_server, model_client
    ) -> None:
        base_url = model_server.base_url
        model_server.stop()
        with pytest.raises(openai.APIConnectionError):
            await call(model_client, "responses", stream=True)
        model_server.start()
        model_server.enqueue(Text("back again"))
        reply = await model_client.responses.create(model=MODEL, input="hi")
        assert (model_server.base_url, reply.output_text) == (base_url, "back again")
