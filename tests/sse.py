"""SSE for tests: the events of a response, parsed by httpx-sse, with JSON data decoded."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
from httpx_sse import EventSource


@dataclass(frozen=True)
class Event:
    event: str
    id: str | None
    data: Any


async def iter_events(response: httpx.Response) -> AsyncIterator[Event]:
    """Every event of an SSE response (comments such as `: ping` are not events)."""
    async for sse in EventSource(response).aiter_sse():
        yield Event(sse.event, sse.id or None, json.loads(sse.data))


async def send(
    client: httpx.AsyncClient, thread_id: str, text: str, headers: dict[str, str]
) -> list[Event]:
    """Send a message and read the whole stream."""
    async with client.stream(
        "POST", f"/api/threads/{thread_id}/messages", json={"text": text}, headers=headers
    ) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        return [e async for e in iter_events(response)]


def reply_text(events: list[Event]) -> str:
    (final,) = [e for e in events if e.event == "assistant_message"]
    return str(final.data["content"])
