"""Every provider failure, as the scripted OpenAI-compatible server really sends it, reaches the
user as a class they can act on: the stream's `error` event, the JSON variant's status and
Retry-After, and one log line with the provider's status, request id and base URL (never the
key, never the provider's message text)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import timedelta
from email.utils import format_datetime
from typing import Any

import openai
import pytest
from sqlmodel import col, select

from app.assistant.provider_errors import FailureKind, classify
from app.models import Task
from app.models.base import utc_now
from tests.conftest import start_app
from tests.factories import create_thread, logged, memory_items
from tests.logs import app_logs, lines
from tests.model_server import (
    Drop,
    EndsEarly,
    Hang,
    HttpError,
    Malformed,
    ModelServer,
    Step,
    ToolCall,
)
from tests.model_server.fixtures import MODEL, TEST_API_KEY
from tests.model_server.history import chat_items, responses_items
from tests.sse import iter_events, send

APIS = ["chat_completions", "responses"]
UNAVAILABLE = "The model provider is unavailable; try again shortly"
NOT_RETRYABLE = {"retryable": False}


@dataclass(frozen=True)
class Case:
    """One provider answer and what the user and the operator must see."""

    step: Step | None  # answers each of the two turns; None: `setup` causes the failure
    error: dict[str, Any]  # the SSE error event
    json_status: int
    retry_after: str | None  # the JSON variant's Retry-After header
    status: str  # in the log line
    cause: str  # in the log line
    secret: str | None  # provider text that must not reach the log
    settings: dict[str, Any] = field(default_factory=dict)
    setup: Callable[[ModelServer], None] | None = None
    request_id: str | None = None  # the provider's own, when the script sets one


def unavailable(status: str, cause: str, step: Step | None = None, **kwargs: Any) -> Case:
    error = {"code": "model_unavailable", "message": UNAVAILABLE, "retryable": True}
    return Case(step, error, 503, "5", status, cause, None, **kwargs)


def misconfigured(setting: str, status: str, cause: str, **kwargs: Any) -> Case:
    error = {
        "code": "model_misconfigured",
        "message": "The model provider refused this server's configuration "
        f"(check {setting}); an operator has to fix it",
        "retryable": False,
        "setting": setting,
    }
    return Case(
        error=error, json_status=502, retry_after=None, status=status, cause=cause, **kwargs
    )


QUOTA = HttpError(
    429,
    "You exceeded your current quota, please check your plan and billing details.",
    type="insufficient_quota",
    code="insufficient_quota",
)
BAD_TEMPERATURE = HttpError(
    400, "Invalid 'temperature': 3.5 is above the maximum of 2.", param="temperature"
)
OLD_SERVER = HttpError(
    400, "Unrecognized request argument supplied: stream_options", param="stream_options"
)

CASES = {
    "400-context-too-long": Case(
        HttpError.context_length_exceeded(),
        {
            "code": "model_context_too_long",
            "message": "This conversation is too long for the model; retrying will not help: "
            "start a new thread",
            **NOT_RETRYABLE,
        },
        502,
        None,
        "400",
        "BadRequestError",
        "maximum context length",
    ),
    "400-bad-request": Case(
        BAD_TEMPERATURE,
        {
            "code": "model_bad_request",
            "message": "The model provider refused this request; retrying will not help",
            **NOT_RETRYABLE,
        },
        502,
        None,
        "400",
        "BadRequestError",
        "temperature",
    ),
    "400-stream-options": misconfigured(
        "OPENAI_INCLUDE_USAGE", "400", "BadRequestError", step=OLD_SERVER, secret="Unrecognized"
    ),
    "401-bad-key": misconfigured(
        "OPENAI_API_KEY",
        "401",
        "AuthenticationError",
        step=None,
        secret="Incorrect API key",
        setup=lambda server: server.configure(api_key="sk-the-right-one"),
    ),
    "404-unknown-model": misconfigured(
        "MODEL",
        "404",
        "NotFoundError",
        step=None,
        secret="does not exist",
        settings={"MODEL": "gpt-9"},
    ),
    "404-wrong-url": misconfigured(
        "OPENAI_BASE_URL",
        "404",
        "NotFoundError",
        step=None,
        secret="Invalid URL",
        settings={"OPENAI_BASE_URL": "{base}/v1"},
    ),
    "429-rate-limited": Case(
        HttpError.rate_limited(retry_after=7, request_id="req_rate"),
        {
            "code": "model_rate_limited",
            "message": "The model provider is rate limiting this server; try again in 7 s",
            "retryable": True,
            "retry_after_seconds": 7,
        },
        503,
        "7",
        "429",
        "RateLimitError",
        "Rate limit reached",
        request_id="req_rate",
    ),
    "429-quota": misconfigured(
        "OPENAI_API_KEY", "429", "RateLimitError", step=QUOTA, secret="exceeded your current quota"
    ),
    "500": unavailable("500", "InternalServerError", HttpError.server_error()),
    "503": unavailable("503", "InternalServerError", HttpError.unavailable()),
    "connection-refused": unavailable(
        "-", "APIConnectionError/ConnectError", setup=lambda server: server.stop()
    ),
    "hang": unavailable(
        "200",
        "APITimeoutError/ReadTimeout",
        Hang(after_tokens=1),
        settings={"OPENAI_TIMEOUT_SECONDS": 1},
    ),
    "dropped": unavailable("200", "APIConnectionError/RemoteProtocolError", Drop(after_tokens=2)),
    "malformed-json": unavailable("200", "malformed stream (not JSON)", Malformed(after_tokens=2)),
    "garbage": unavailable("200", "malformed stream (not JSON)", Malformed(2, kind="garbage")),
    "ends-early": unavailable(
        "200", "stream ended before the reply was complete", EndsEarly(after_tokens=2)
    ),
}


def settings_for(case: Case, model_server: ModelServer) -> dict[str, Any]:
    return {
        name: value.format(base=model_server.base_url) if isinstance(value, str) else value
        for name, value in case.settings.items()
    }


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("name", list(CASES))
async def test_each_failure_reaches_the_user_as_its_class(
    provider_settings, model_server, alice, api, name
) -> None:
    case = CASES[name]
    settings = provider_settings(api, **settings_for(case, model_server))
    if case.step is not None:
        model_server.enqueue(case.step, case.step)
    async with start_app(settings) as running, running.client() as client:
        thread_id = await create_thread(client, alice)
        if case.setup is not None:
            case.setup(model_server)
        with app_logs() as records:
            events = await send(client, thread_id, "add task buy milk", alice)
        response = await client.post(
            f"/api/threads/{thread_id}/messages",
            json={"text": "add task buy milk"},
            headers={**alice, "Accept": "application/json"},
        )
        items = await memory_items(running, alice, thread_id)
        log = await logged(client, alice, thread_id)
    # The stream: the class, then done; nothing half-said is kept in either store.
    assert [e.event for e in events][-2:] == ["error", "done"]
    assert events[-2].data == case.error
    # What streamed before a stream broke was shown; it is not saved as a reply.
    streamed = "".join(e.data["delta"] for e in events if e.event == "text_delta")
    assert streamed in ("", "tok1", "tok1 tok2")
    assert log == [("user", "add task buy milk")] * 2
    assert items == [{"role": "user", "content": "add task buy milk"}] * 2
    # The JSON variant: 503 + Retry-After when a retry may help, 502 when it cannot.
    assert response.status_code == case.json_status
    assert response.headers.get("retry-after") == case.retry_after
    body = response.json()
    assert (body["error"], body["detail"]) == ("TurnFailed", case.error["message"])
    assert {key: body[key] for key in case.error if key != "message"} == {
        key: value for key, value in case.error.items() if key != "message"
    }
    assert body["turn"]["error"] == case.error
    # The log: one line with what an operator needs, nothing a user wrote or a key.
    (line,) = [line for line in lines(records) if " failed: " in line]
    request_id = case.request_id or (
        "-" if case.status == "-" else model_server.requests[0].request_id
    )
    assert line.endswith(
        f"failed: {case.error['code']} (provider status={case.status} "
        f"request_id={request_id} base_url={settings.OPENAI_BASE_URL} cause={case.cause})"
    )
    everything = "\n".join(lines(records))
    assert TEST_API_KEY not in everything
    assert "buy milk" not in everything
    if case.secret is not None:
        assert case.secret not in everything


async def test_a_failed_turn_leaves_the_thread_ready_for_the_next(
    provider_settings, model_server, alice
) -> None:
    model_server.enqueue(HttpError.rate_limited(retry_after=3))
    async with start_app(provider_settings()) as running, running.client() as client:
        thread_id = await create_thread(client, alice)
        failed = await send(client, thread_id, "remember that the door code is 1234", alice)
        events = await send(client, thread_id, "what did I ask you to remember?", alice)
    assert failed[-2].data["code"] == "model_rate_limited"
    (reply,) = [e.data for e in events if e.event == "assistant_message"]
    # The failed turn's message stays in the history the provider is sent.
    assert reply["content"] == "You asked me to remember: that the door code is 1234."


class TestRetryAfter:
    async def _rate_limited(self, model_server, model_client, headers: dict[str, str]) -> Any:
        model_server.enqueue(replace(HttpError.rate_limited(), headers=headers))
        with pytest.raises(openai.RateLimitError) as caught:
            await model_client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "hi"}]
            )
        failure = classify(caught.value)
        assert failure is not None
        assert failure.kind == FailureKind.RATE_LIMITED
        return failure.retry_after_s

    async def test_milliseconds_round_up_to_whole_seconds(self, model_server, model_client) -> None:
        assert await self._rate_limited(model_server, model_client, {"retry-after-ms": "1500"}) == 2

    async def test_an_http_date_is_the_seconds_until_then(self, model_server, model_client) -> None:
        when = format_datetime(utc_now() + timedelta(seconds=120), usegmt=True)
        seconds = await self._rate_limited(model_server, model_client, {"retry-after": when})
        assert seconds in (119, 120)  # the header has whole seconds; now has more

    async def test_without_a_header_there_is_no_promise(self, model_server, model_client) -> None:
        assert await self._rate_limited(model_server, model_client, {}) is None


@pytest.mark.parametrize("api", APIS)
async def test_a_tool_call_then_a_failure_is_not_repeated_on_retry(
    provider_settings, model_server, alice, api
) -> None:
    """A retry of a turn that failed after a tool ran continues from what it did."""
    model_server.enqueue(ToolCall("add_task", {"title": "buy milk"}), HttpError.server_error())
    async with start_app(provider_settings(api)) as running, running.client() as client:
        thread_id = await create_thread(client, alice)
        first = await send(client, thread_id, "add task buy milk", alice)
        assert [e.event for e in first if e.event.startswith("tool")] == [
            "tool_call",
            "tool_result",
        ]
        assert first[-2].data["code"] == "model_unavailable"
        user_message_id = first[0].data["id"]
        async with client.stream(
            "POST",
            f"/api/threads/{thread_id}/messages/{user_message_id}/retry",
            headers=alice,
        ) as response:
            assert response.status_code == 200, await response.aread()
            retried = [e async for e in iter_events(response)]
        me = await running.user_id(alice)
        async with running.sessionmaker() as db:
            titles = (await db.exec(select(Task.title).where(col(Task.user_id) == me))).all()
    (reply,) = [e.data for e in retried if e.event == "assistant_message"]
    assert reply["content"] == 'Added "buy milk" to your tasks.'
    assert titles == ["buy milk"]  # added once, by the first attempt
    assert [e.data["name"] for e in retried if e.event == "tool_call"] == []
    # The retry showed the provider the call the failed attempt made, once.
    sent = items_sent(model_server.model_requests[-1].body)
    assert [i["name"] for i in sent if i.get("type") == "function_call"] == ["add_task"]


def items_sent(body: dict[str, Any]) -> list[dict[str, Any]]:
    """A request's conversation as Responses-style items, whichever API carried it."""
    if "messages" in body:
        return chat_items(body["messages"])
    return responses_items(body["input"])
