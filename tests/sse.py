"""A small SSE reader for tests: the events of a response as (event, id, data) records."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass(frozen=True)
class Event:
    event: str
    id: str | None
    data: Any


async def iter_events(response: httpx.Response) -> AsyncIterator[Event]:
    event, event_id, data_lines = "message", None, []
    async for line in response.aiter_lines():
        if line == "":
            if data_lines:
                yield Event(event, event_id, json.loads("\n".join(data_lines)))
            event, event_id, data_lines = "message", None, []
        elif line.startswith(":"):
            continue
        else:
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "event":
                event = value
            elif name == "id":
                event_id = value
            elif name == "data":
                data_lines.append(value)


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
