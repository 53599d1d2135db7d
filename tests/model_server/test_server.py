"""The server itself: models, request ids, unknown routes, concurrency, and the CLI process."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest

from tests.model_server import DEFAULT_MODELS, Hang, ModelServer
from tests.model_server.sdk import MODEL

REPO_ROOT = Path(__file__).resolve().parents[2]


class TestModels:
    async def test_the_list_has_every_configured_model(self, model_server, model_client) -> None:
        assert [model.id async for model in model_client.models.list()] == list(DEFAULT_MODELS)
        model_server.configure(models=("local-a", "local-b"))
        assert [model.id async for model in model_client.models.list()] == ["local-a", "local-b"]

    async def test_retrieving_a_model_is_a_cheap_health_check(self, model_client) -> None:
        assert (await model_client.models.retrieve(MODEL)).id == MODEL
        with pytest.raises(openai.NotFoundError) as caught:
            await model_client.models.retrieve("gpt-9")
        assert caught.value.code == "model_not_found"


class TestEveryResponse:
    async def test_success_errors_and_unknown_routes_all_carry_a_request_id(
        self, model_server
    ) -> None:
        async with httpx.AsyncClient(base_url=model_server.base_url) as http:
            responses = [
                await http.get("/models"),
                await http.get("/models/gpt-9"),
                await http.post("/chat/completions", content=b"{not json"),
                await http.post("/embeddings", json={}),
            ]
        assert [r.status_code for r in responses] == [200, 404, 400, 404]
        ids = [r.headers["x-request-id"] for r in responses]
        assert ids == [recorded.request_id for recorded in model_server.requests]
        assert responses[3].json() == {
            "error": {
                "message": "Invalid URL (POST /v1/embeddings)",
                "type": "invalid_request_error",
                "param": None,
                "code": None,
            }
        }

    async def test_a_missing_required_field_is_named(self, model_client) -> None:
        with pytest.raises(openai.BadRequestError) as caught:
            await model_client.chat.completions.create(model=MODEL, messages=None)  # type: ignore[arg-type]
        assert (caught.value.code, caught.value.param) == ("missing_required_parameter", "messages")


class TestConcurrency:
    async def test_slow_streams_run_side_by_side(self, model_server) -> None:
        """Every stream has its first token before any stream ends: the server serves them
        side by side (one after another, the last would start after the first ended). An
        order, not a time limit, so a loaded machine cannot fail it."""
        streams, tokens, delay = 200, 5, 0.5
        model_server.configure(mode="fixed", tokens=tokens, token_delay=delay)
        limits = httpx.Limits(max_connections=streams)
        firsts: list[float] = []
        ends: list[float] = []
        async with httpx.AsyncClient(base_url=model_server.base_url, limits=limits) as http:

            async def one() -> int:
                body = {
                    "model": MODEL,
                    "messages": [{"role": "user", "content": "hi"}],
                    "stream": True,
                }
                count = 0
                async with http.stream("POST", "/chat/completions", json=body) as response:
                    async for line in response.aiter_lines():
                        if '"content":"' in line:
                            count += 1
                            if count == 2:  # the first token (after the role chunk's "")
                                firsts.append(time.monotonic())
                ends.append(time.monotonic())
                return count

            counts = await asyncio.gather(*(one() for _ in range(streams)))
        assert counts == [tokens + 1] * streams  # the role chunk's "" plus the tokens
        # Each stream lasts at least (tokens - 1) * delay = 2 s after its first token.
        assert max(firsts) < min(ends)


class TestFixedReplies:
    async def test_the_user_message_chooses_the_length(self, model_server, model_client) -> None:
        """One server serves the benchmark's several reply lengths: `[tokens=N]` asks for N."""
        model_server.configure(mode="fixed", tokens=2)
        asked = await model_client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "go [tokens=5]"}]
        )
        default = await model_client.responses.create(model=MODEL, input="go")
        assert asked.choices[0].message.content == "tok1 tok2 tok3 tok4 tok5"
        assert default.output_text == "tok1 tok2"

    async def test_the_first_token_waits_first_token_delay(
        self, model_server, model_client
    ) -> None:
        """A real model's time to first token, then the usual pace between deltas."""
        model_server.configure(mode="fixed", tokens=2, first_token_delay=0.3)
        began = time.monotonic()
        stream = await model_client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}], stream=True
        )
        arrivals = [
            time.monotonic() async for c in stream if c.choices and c.choices[0].delta.content
        ]
        assert len(arrivals) == 2
        assert arrivals[0] - began >= 0.3


class TestLifecycle:
    def test_a_context_manager_server_stops_listening_at_exit(self) -> None:
        with ModelServer(mode="fixed", tokens=2) as server:
            port = server.port
            reply = httpx.post(
                f"{server.base_url}/responses", json={"model": MODEL, "input": "hi"}
            ).json()
            assert reply["output"][0]["content"][0]["text"] == "tok1 tok2"
        assert not server.running
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{port}/v1/models")

    def test_keep_bounds_what_a_long_run_remembers(self) -> None:
        with ModelServer(keep=2) as server:
            client = openai.OpenAI(base_url=server.base_url, api_key="sk-any", max_retries=0)
            ids = [
                client.responses.create(model=MODEL, input=f"remember that n is {n}").id
                for n in range(3)
            ]
            assert [r.body["input"] for r in server.requests] == [
                "remember that n is 1",
                "remember that n is 2",
            ]
            with pytest.raises(openai.BadRequestError):
                client.responses.create(model=MODEL, input="hi", previous_response_id=ids[0])
            recall = client.responses.create(
                model=MODEL, input="what did I ask you to remember?", previous_response_id=ids[2]
            )
            assert recall.output_text == "You asked me to remember: that n is 2."

    def test_a_hung_stream_ends_when_the_server_stops(self, model_server) -> None:
        model_server.enqueue(Hang(after_tokens=1))
        with httpx.stream(
            "POST",
            f"{model_server.base_url}/chat/completions",
            json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": True},
        ) as response:
            lines = response.iter_lines()
            assert '"role":"assistant"' in next(line for line in lines if line)
            model_server.stop()
            with pytest.raises(httpx.RemoteProtocolError):
                list(lines)


class TestCommandLine:
    def test_the_process_prints_one_ready_line_and_serves_the_fixed_reply(self) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(["backend", "."])}
        command = [sys.executable, "-m", "tests.model_server", "--port", "0", "--mode", "fixed"]
        command += ["--tokens", "3", "--api-key", "sk-cli"]
        process = subprocess.Popen(
            command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, text=True
        )
        try:
            assert process.stdout is not None
            ready = process.stdout.readline().split()
            assert ready[0] == "ready"
            fields = dict(part.split("=", 1) for part in ready[1:])
            assert (fields["mode"], fields["tokens"], fields["token_delay"]) == (
                "fixed",
                "3",
                "0.0",
            )
            client = openai.OpenAI(base_url=fields["base_url"], api_key="sk-cli", max_retries=0)
            completion = client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "hi"}]
            )
            assert completion.choices[0].message.content == "tok1 tok2 tok3"
        finally:
            process.terminate()
            # uvicorn shuts down gracefully, then re-raises the signal it caught.
            assert process.wait(timeout=10) == -signal.SIGTERM
