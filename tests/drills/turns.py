"""Client side of the drills: threads, streamed turns that never raise, and latency figures."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.sse import Event, iter_events

TURN_TIMEOUT_SECONDS = 60.0


def client_for(base_url: str, *, timeout: float = TURN_TIMEOUT_SECONDS) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=128, max_keepalive_connections=64)
    return httpx.AsyncClient(base_url=base_url, timeout=timeout, limits=limits)


async def create_thread(
    client: httpx.AsyncClient, headers: dict[str, str], title: str | None = None
) -> str:
    response = await client.post("/api/threads", json={"title": title}, headers=headers)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


@dataclass
class TurnOutcome:
    """What a client saw of one turn: status, the events it got, and how long it took."""

    text: str
    status: int = 0  # 0: no HTTP status (connection failed before the response)
    events: list[Event] = field(default_factory=list)
    seconds: float = 0.0
    body: Any = None  # the JSON error body of a non-200 response
    transport_error: str | None = None

    def first(self, kind: str) -> Any:
        return next((e.data for e in self.events if e.event == kind), None)

    @property
    def user_message(self) -> dict[str, Any] | None:
        """The saved user message: its arrival means the server confirmed (committed) it."""
        return self.first("user_message")  # type: ignore[no-any-return]

    @property
    def assistant_message(self) -> dict[str, Any] | None:
        return self.first("assistant_message")  # type: ignore[no-any-return]

    @property
    def reply(self) -> str | None:
        message = self.assistant_message
        return None if message is None else str(message["content"])

    @property
    def ok(self) -> bool:
        done = self.first("done")
        return (
            self.status == 200
            and self.assistant_message is not None
            and done is not None
            and done.get("status") == "completed"
        )

    def describe(self) -> str:
        error = self.first("error")
        kinds = [e.event for e in self.events]
        return (
            f"{self.text!r}: status={self.status} events={kinds} error_event={error} "
            f"body={self.body} transport={self.transport_error} after {self.seconds:.2f}s"
        )


async def stream_turn(
    client: httpx.AsyncClient,
    thread_id: str,
    text: str,
    headers: dict[str, str],
    *,
    limit_seconds: float = TURN_TIMEOUT_SECONDS,
    on_event: Callable[[Event], None] | None = None,
) -> TurnOutcome:
    """Send one message and read its SSE stream to the end; failures are recorded, not raised."""
    outcome = TurnOutcome(text=text)
    began = time.perf_counter()
    try:
        async with (
            asyncio.timeout(limit_seconds),
            client.stream(
                "POST",
                f"/api/threads/{thread_id}/messages",
                json={"text": text},
                headers=headers,
            ) as response,
        ):
            outcome.status = response.status_code
            if response.status_code != 200:
                outcome.body = _json_or_text(await response.aread())
                return outcome
            async for event in iter_events(response):
                outcome.events.append(event)
                if on_event is not None:
                    on_event(event)
    except (httpx.HTTPError, TimeoutError, json.JSONDecodeError) as e:
        outcome.transport_error = f"{type(e).__name__}: {e}"
    finally:
        outcome.seconds = time.perf_counter() - began
    return outcome


async def turn_with_retry(
    client: httpx.AsyncClient,
    thread_id: str,
    text: str,
    headers: dict[str, str],
    *,
    retry_statuses: frozenset[int],
    within: float,
    pause: float = 1.0,
) -> tuple[TurnOutcome, int]:
    """Retry a turn while it is answered with one of `retry_statuses`, for at most `within` s.

    Returns:
        The last outcome and how many attempts it took.
    """
    deadline = time.monotonic() + within
    attempts = 0
    while True:
        attempts += 1
        outcome = await stream_turn(client, thread_id, text, headers)
        if outcome.status not in retry_statuses or time.monotonic() >= deadline:
            return outcome, attempts
        await asyncio.sleep(pause)


def _json_or_text(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")


def is_error_body(body: Any) -> bool:
    """The one error shape of the API: {"error": <kind>, "detail": <message>, ...}."""
    return (
        isinstance(body, dict)
        and isinstance(body.get("error"), str)
        and isinstance(body.get("detail"), str)
    )


def percentile(values: list[float], q: int) -> float:
    """The q-th percentile (1..99) of at least two values; the one value when only one."""
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def latency_summary(seconds: list[float]) -> str:
    return (
        f"p50 {percentile(seconds, 50) * 1000:.0f} ms, "
        f"p95 {percentile(seconds, 95) * 1000:.0f} ms, "
        f"max {max(seconds, default=float('nan')) * 1000:.0f} ms"
    )
