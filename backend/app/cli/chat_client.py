"""A small terminal chat client for a running server (`make chat`, `python -m app chat`).

It talks to the server over HTTP only, like any other client: get a token, create or resume a
thread, and print the reply's text deltas as they stream in.
"""

from __future__ import annotations

import json
import sys
from typing import Any, TextIO

import httpx
from httpx_sse import EventSource

HELP = "Commands: /new (new thread), /threads (list), /use N, /help, /quit. Anything else is sent."


class ChatClient:
    def __init__(self, base_url: str, token: str, *, out: TextIO = sys.stdout) -> None:
        self._http = httpx.Client(
            base_url=base_url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=httpx.Timeout(10.0, read=330.0),
        )
        self._out = out
        self.thread_id: str | None = None

    def close(self) -> None:
        self._http.close()

    def threads(self) -> list[dict[str, Any]]:
        response = self._http.get("/api/threads", params={"limit": 20})
        response.raise_for_status()
        data: list[dict[str, Any]] = response.json()["data"]
        return data

    def new_thread(self, title: str | None = None) -> str:
        response = self._http.post("/api/threads", json={"title": title})
        response.raise_for_status()
        self.thread_id = str(response.json()["id"])
        return self.thread_id

    def resume_or_create(self) -> str:
        """Continue the most recently active thread, or start the first one."""
        threads = self.threads()
        if threads:
            self.thread_id = str(threads[0]["id"])
            return self.thread_id
        return self.new_thread("Terminal chat")

    def send(self, text: str) -> None:
        """Send `text` and print the reply as it streams."""
        assert self.thread_id is not None
        url = f"/api/threads/{self.thread_id}/messages"
        with self._http.stream("POST", url, json={"text": text}) as response:
            if response.status_code != 200:
                response.read()
                self._print(f"[{response.status_code}] {response.json().get('detail')}\n")
                return
            for sse in EventSource(response).iter_sse():
                self._render(sse.event, json.loads(sse.data))

    def _render(self, event: str, data: dict[str, Any]) -> None:
        if event == "text_delta":
            self._print(data["delta"])
        elif event == "tool_call":
            self._print(f"  · {data['name']}({data['arguments']})\n")
        elif event == "assistant_message":
            self._print("\n")
        elif event == "error":
            self._print(f"\n[error: {data['message']}{' (retry)' if data['retryable'] else ''}]\n")

    def _print(self, text: str) -> None:
        self._out.write(text)
        self._out.flush()


def run_repl(client: ChatClient, *, stdin: TextIO = sys.stdin) -> None:
    """Read lines and chat until EOF or /quit."""
    out = client._out
    out.write(f"Thread {client.thread_id}. {HELP}\n")
    while True:
        out.write("you> ")
        out.flush()
        line = stdin.readline()
        if not line:
            break
        text = line.strip()
        if not text:
            continue
        if text in ("/quit", "/exit"):
            break
        if not _command(client, text):
            out.write("bot> ")
            client.send(text)


def _command(client: ChatClient, text: str) -> bool:
    out = client._out
    if text == "/help":
        out.write(HELP + "\n")
    elif text == "/new":
        out.write(f"New thread {client.new_thread('Terminal chat')}\n")
    elif text == "/threads":
        for n, thread in enumerate(client.threads(), 1):
            mark = "*" if thread["id"] == client.thread_id else " "
            out.write(f"{mark}{n}. {thread['title'] or '(untitled)'}  {thread['id']}\n")
    elif text.startswith("/use "):
        threads = client.threads()
        index = int(text[5:]) - 1 if text[5:].strip().isdigit() else -1
        if 0 <= index < len(threads):
            client.thread_id = str(threads[index]["id"])
            out.write(f"Using thread {client.thread_id}\n")
        else:
            out.write("No such thread; see /threads\n")
    else:
        return False
    return True
