"""A real Threadkeeper server in a subprocess, and one streamed turn through it over HTTP.

The service is measured as it is deployed: `python -m app serve --workers N` (uvicorn) bound
to 127.0.0.1 on a free port, its own scratch DATA_DIR, the offline model, and a process group
of its own so that it and its workers are always killed at the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench import procs, progress
from bench.env import UNLIMITED

REPO_ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT_S = 90.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """A running server: its URL, process and log file."""

    workers: int
    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def log_tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""


def server_env(data_dir: Path, port: int, database_url: str, secret: str) -> dict[str, str]:
    """The environment of one server: nothing is inherited that could point elsewhere."""
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    env.update(
        PYTHONPATH=os.pathsep.join(filter(None, ["backend", env.get("PYTHONPATH")])),
        DATABASE_URL=database_url,
        DATA_DIR=str(data_dir),
        AGENT_SESSION_DIR=str(data_dir / "sessions"),
        HOST="127.0.0.1",
        PORT=str(port),
        APP_ENV="development",
        AUTH_JWT_SECRET=secret,
        SCHEDULER_ENABLED="false",
        LOG_LEVEL="WARNING",
        MODEL_PROVIDER="offline",
    )
    env.update(UNLIMITED)
    return env


@contextlib.contextmanager
def running_server(
    workers: int,
    data_dir: Path,
    database_url: str,
    secret: str,
    extra_env: dict[str, str] | None = None,
) -> Iterator[Server]:
    """Start `python -m app serve --workers N`, wait until ready, always kill it at the end."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = data_dir / "server.log"
    with log.open("wb") as out:
        proc = procs.spawn(  # its own process group: workers die with it
            [sys.executable, "-m", "app", "serve", "--workers", str(workers)],
            cwd=REPO_ROOT,
            env={**server_env(data_dir, port, database_url, secret), **(extra_env or {})},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = Server(workers, f"http://127.0.0.1:{port}", proc, log)
    try:
        _wait_ready(server)
        progress.log(f"server up: {workers} worker(s) at {server.url} (pid {proc.pid})")
        yield server
    finally:
        stop(proc)


def _wait_ready(server: Server) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"server exited with {server.proc.returncode}:\n{server.log_tail()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{server.url}/health/ready", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise TimeoutError(f"server not ready after {READY_TIMEOUT_S:.0f} s:\n{server.log_tail()}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group, then SIGKILL whatever is left after 15 s."""
    procs.stop(proc)


async def create_thread(client: httpx.AsyncClient) -> str:
    response = await client.post("/api/threads", json={"title": "bench"})
    response.raise_for_status()
    return str(response.json()["id"])


async def streamed_turn(client: httpx.AsyncClient, thread_id: str, text: str) -> str | None:
    """POST a message and read the SSE stream to its `done` event.

    Returns:
        None when the turn completed; otherwise what went wrong.
    """
    async with client.stream(
        "POST", f"/api/threads/{thread_id}/messages", json={"text": text}
    ) as response:
        if response.status_code != 200:
            body = (await response.aread()).decode(errors="replace")[:200]
            return f"HTTP {response.status_code}: {body}"
        event, outcome = None, "stream ended without a done event"
        async for line in response.aiter_lines():  # read to the end: keeps the connection
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:") and event == "error":
                outcome = f"error event: {json.loads(line[5:]).get('code')}"
            elif line.startswith("data:") and event == "done" and outcome.startswith("stream"):
                data = json.loads(line[5:])
                outcome = "" if data.get("status") == "completed" else f"done: {data}"
    return outcome or None
