"""`python -m bench.load_process SPEC`: streamed turns driven from a process of its own.

W8 and W9 measure the service and the bare SDK with the load outside the measured process and
outside the bench's own loop: one of these processes per side. The "svc" side is an HTTP client
of a running server (it creates threads and posts messages, reading each SSE stream to `done`);
the "sdk" side *is* the bare SDK (`Runner.run_streamed` with the service's todo agent on the
stock `OpenAIChatCompletionsModel`, every event consumed, no session, no HTTP server), so the
parent measures its CPU as the SDK's. Commands arrive as JSON lines on stdin and every answer
is one JSON line on stdout; W9's arrivals also print `{"inflight": ...}` lines while they run.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

PROGRESS_INTERVAL_S = 0.25
TURN_TIMEOUT_S = 120.0


def text_for(tokens: int, k: int) -> str:
    """A message asking the scripted model server for a reply of `tokens` tokens."""
    return f"please answer at length, turn {k} [tokens={tokens}]"


@dataclass
class Sample:
    """One turn as its client saw it: start, first delta, gaps between deltas, outcome."""

    started: float
    ttfd_s: float | None = None
    gaps_s: list[float] = field(default_factory=list)
    deltas: int = 0
    total_s: float = 0.0
    error: str | None = None

    def delta(self) -> None:
        now = time.perf_counter()
        if self.ttfd_s is None:
            self.ttfd_s = now - self.started
        else:
            self.gaps_s.append(now - self._last)
        self._last, self.deltas = now, self.deltas + 1

    def as_json(self) -> dict[str, Any]:
        return {
            "ttfd_s": self.ttfd_s,
            "gaps_s": [round(g, 6) for g in self.gaps_s],
            "deltas": self.deltas,
            "total_s": round(self.total_s, 6),
            "error": self.error,
        }


class ServiceSide:
    """HTTP client of a running server: one user token per lane, threads made in `prepare`."""

    def __init__(self, spec: dict[str, Any]) -> None:
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
        self.http = httpx.AsyncClient(
            base_url=spec["url"], limits=limits, timeout=httpx.Timeout(TURN_TIMEOUT_S)
        )
        self.tokens: list[str] = spec["tokens"]
        self.prepared: list[tuple[int, str]] = []

    def _auth(self, i: int) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[i % len(self.tokens)]}"}

    async def new_thread(self, i: int) -> str:
        response = await self.http.post(
            "/api/threads", json={"title": "bench"}, headers=self._auth(i)
        )
        response.raise_for_status()
        return str(response.json()["id"])

    async def prepare(self, count: int, warm_turns: int, tokens: int) -> None:
        async def one(i: int) -> tuple[int, str]:
            thread = await self.new_thread(i)
            for k in range(warm_turns):
                await self.turn((i, thread), text_for(tokens, k), Sample(time.perf_counter()))
            return i, thread

        self.prepared = list(await asyncio.gather(*(one(i) for i in range(count))))

    async def turn(self, conv: tuple[int, str], text: str, sample: Sample) -> None:
        i, thread = conv
        url = f"/api/threads/{thread}/messages"
        async with self.http.stream("POST", url, json={"text": text}, headers=self._auth(i)) as r:
            if r.status_code != 200:
                body = (await r.aread()).decode(errors="replace")[:200]
                raise RuntimeError(f"HTTP {r.status_code}: {body}")
            event, done = "", False
            async for line in r.aiter_lines():
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    if event == "text_delta":
                        sample.delta()
                    elif event == "error":
                        raise RuntimeError(f"error event: {line[5:].strip()[:200]}")
                    elif event == "done":
                        done = True
            if not done:
                raise RuntimeError("stream ended without a done event")

    async def arrival(self, i: int, tokens: int, sample: Sample) -> None:
        thread = await self.new_thread(i)
        sample.started = time.perf_counter()  # the turn, not the thread's creation
        await self.turn((i, thread), text_for(tokens, 0), sample)

    async def aclose(self) -> None:
        await self.http.aclose()


class SdkSide:
    """The bare SDK: the same agent on the stock chat-completions model, no session."""

    def __init__(self, spec: dict[str, Any]) -> None:
        import openai
        from agents import OpenAIChatCompletionsModel, RunConfig

        from app.assistant.todo import build_agent
        from app.config import load_settings

        client = openai.AsyncOpenAI(
            base_url=spec["base_url"],
            api_key="unused",
            timeout=TURN_TIMEOUT_S,
            max_retries=0,
            http_client=openai.DefaultAsyncHttpxClient(
                limits=httpx.Limits(max_connections=None, max_keepalive_connections=None)
            ),
        )
        model = OpenAIChatCompletionsModel(spec.get("model", "gpt-5-mini"), client)
        settings = load_settings(AUTH_JWT_SECRET="x" * 48, APP_ENV="development")
        self.agent = build_agent(settings, model)
        self.config = RunConfig(workflow_name="bench", tracing_disabled=True)
        self.prepared: list[list[Any]] = []

    async def prepare(self, count: int, warm_turns: int, tokens: int) -> None:
        async def one() -> list[Any]:
            history: list[Any] = []
            for k in range(warm_turns):
                history = await self._run(history, text_for(tokens, k), Sample(0.0))
            return history

        self.prepared = list(await asyncio.gather(*(one() for _ in range(count))))

    async def _run(self, history: list[Any], text: str, sample: Sample) -> list[Any]:
        from agents import Runner

        message = {"role": "user", "content": text}
        result = Runner.run_streamed(self.agent, [*history, message], run_config=self.config)
        async for event in result.stream_events():
            data = getattr(event, "data", None)
            if getattr(data, "type", None) == "response.output_text.delta":
                sample.delta()
        if not result.final_output:
            raise RuntimeError("empty reply")
        return result.to_input_list()

    async def turn(self, conv: list[Any], text: str, sample: Sample) -> None:
        await self._run(conv, text, sample)

    async def arrival(self, i: int, tokens: int, sample: Sample) -> None:
        sample.started = time.perf_counter()
        await self._run([], text_for(tokens, 0), sample)

    async def aclose(self) -> None:
        pass


async def _timed(coro: Any, sample: Sample) -> Sample:
    try:
        async with asyncio.timeout(TURN_TIMEOUT_S):
            await coro
    except Exception as e:  # a failed turn is a result
        sample.error = f"{type(e).__name__}: {e}"[:300]
    sample.total_s = time.perf_counter() - sample.started
    return sample


async def batch(side: Any, tokens: int, concurrency: int) -> dict[str, Any]:
    """One turn on every prepared conversation, `concurrency` at a time."""
    queue = list(enumerate(side.prepared))
    samples: list[Sample] = []

    async def lane() -> None:
        while queue:
            k, conv = queue.pop()
            sample = Sample(time.perf_counter())
            samples.append(await _timed(side.turn(conv, text_for(tokens, 100 + k), sample), sample))

    await asyncio.gather(*(lane() for _ in range(concurrency)))
    return {"samples": [s.as_json() for s in samples]}


async def arrivals(side: Any, rate: float, total: int, tokens: int) -> dict[str, Any]:
    """Start `total` conversations at `rate` per second, on schedule whatever is in flight."""
    began = time.perf_counter()
    tasks: list[asyncio.Task[Sample]] = []
    inflight = 0

    async def one(i: int) -> Sample:
        nonlocal inflight
        sample = Sample(time.perf_counter())
        inflight += 1
        try:
            return await _timed(side.arrival(i, tokens, sample), sample)
        finally:
            inflight -= 1

    async def report() -> None:
        while True:
            _send({"inflight": inflight, "started": len(tasks)})
            await asyncio.sleep(PROGRESS_INTERVAL_S)

    reporter = asyncio.create_task(report())
    lateness: list[float] = []
    for i in range(total):
        due = began + i / rate
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        lateness.append(time.perf_counter() - due)
        tasks.append(asyncio.create_task(one(i)))
    samples = await asyncio.gather(*tasks)
    reporter.cancel()
    return {
        "samples": [s.as_json() for s in samples],
        "arrival_lateness_max_s": max(lateness, default=0.0),
        "wall_s": time.perf_counter() - began,
    }


def _send(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def serve(spec: dict[str, Any]) -> None:
    side: Any = ServiceSide(spec) if spec["side"] == "svc" else SdkSide(spec)
    _send({"ready": True})
    try:
        while line := await asyncio.to_thread(sys.stdin.readline):
            command = json.loads(line)
            op = command.pop("op")
            if op == "quit":
                break
            try:
                if op == "prepare":
                    await side.prepare(**command)
                    result: dict[str, Any] = {}
                elif op == "batch":
                    result = await batch(side, **command)
                else:
                    result = await arrivals(side, **command)
                _send({"result": result})
            except Exception as e:
                _send({"failed": f"{type(e).__name__}: {e}"[:500]})
    finally:
        await side.aclose()


def main() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    spec = json.loads(sys.argv[1])
    try:
        import uvloop

        uvloop.run(serve(spec))
    except ImportError:
        asyncio.run(serve(spec))


if __name__ == "__main__":
    main()
