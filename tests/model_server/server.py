"""`ModelServer`: the scripted OpenAI-compatible server on uvicorn, in a background thread.

The server owns its listening socket, bound once to a free loopback port, so `stop()` then
`start()` comes back on the same port: a client keeps its base URL across a provider outage,
exactly as it would against a real provider that went down and came back.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable, Iterable
from typing import Any

import uvicorn

from tests.model_server.app import create_app
from tests.model_server.state import RecordedRequest, ServerConfig, ServerState
from tests.model_server.steps import Step, ToolCall
from tests.model_server.streaming import hide_drop_logs

HOST = "127.0.0.1"
START_TIMEOUT_S = 10.0
GRACEFUL_SHUTDOWN_S = 1
"""A stop waits this long for in-flight streams before cancelling them."""
BACKLOG = 2048
"""Pending connections the listener queues: a benchmark opens a thousand streams at once."""


class _Uvicorn(uvicorn.Server):
    """uvicorn that reports when it is listening, and binds the hang gate to its loop."""

    def __init__(
        self,
        state: ServerState,
        *,
        loop: str = "asyncio",
        on_ready: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(
            uvicorn.Config(
                create_app(state),
                log_level="warning",
                access_log=False,
                lifespan="off",
                loop=loop,
                backlog=BACKLOG,
                timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
            )
        )
        self.ready = threading.Event()
        self.state = state
        self.on_ready = on_ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        self.state.hangs.bind(asyncio.get_running_loop())
        await super().startup(sockets=sockets)
        self.ready.set()
        if self.on_ready is not None and not self.should_exit:
            self.on_ready()


class ModelServer:
    """A scripted OpenAI-compatible server for tests and benchmarks.

    Use it as a context manager (or call `start()`/`stop()`); `base_url` is what an
    `openai.AsyncOpenAI(base_url=...)` needs. `enqueue()` scripts the next replies; with no
    step queued, the server answers from its `ServerConfig` (the offline grammar by default).
    """

    def __init__(self, *, port: int = 0, keep: int | None = None, **config: Any) -> None:
        """Create a stopped server.

        Args:
            port: The port to listen on; 0 picks a free one (and keeps it across restarts).
            keep: Recorded requests and stored responses to keep; None keeps all.
            **config: `ServerConfig` fields: api_key, models, mode, tokens, token_delay,
                context_window.
        """
        self.state = ServerState(config=ServerConfig(**config), keep=keep)
        self.port = port
        self._server: _Uvicorn | None = None
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None
        hide_drop_logs()

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}/v1"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> ModelServer:
        """Start listening (again, on the same port after a `stop()`); return when ready."""
        if self.running:
            return self
        sock = _listening_socket(self.port)
        self.port = sock.getsockname()[1]
        self._server = _Uvicorn(self.state)
        self._failure = None
        self._thread = threading.Thread(
            target=self._serve,
            args=(self._server, sock),
            name=f"model-server-{self.port}",
            daemon=True,
        )
        self._thread.start()
        if not self._server.ready.wait(START_TIMEOUT_S) or self._failure is not None:
            self.stop()
            raise RuntimeError(
                f"the model server did not start on port {self.port}"
            ) from self._failure
        return self

    def _serve(self, server: _Uvicorn, sock: socket.socket) -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as e:  # a thread must not die silently: start() reports it
            self._failure = e
            server.ready.set()
        finally:
            sock.close()

    def stop(self) -> None:
        """Stop listening: new connections are refused until `start()`; hung streams end."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self.state.hangs.release()
        server.should_exit = True
        thread.join(START_TIMEOUT_S + GRACEFUL_SHUTDOWN_S)
        self._server = self._thread = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> ModelServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # Scripting and inspection, all safe to call from the test's thread.

    def enqueue(self, *steps: Step | Iterable[ToolCall]) -> None:
        """Queue replies for the next model requests (a list of ToolCalls is one reply)."""
        self.state.enqueue(*steps)

    def script(self, *steps: Step | Iterable[ToolCall]) -> None:
        """Replace the queue with exactly these replies."""
        while self.state.next_step() is not None:
            pass
        self.state.enqueue(*steps)

    def configure(self, **changes: Any) -> None:
        """Change `ServerConfig` fields until the next `reset()`."""
        self.state.configure(**changes)

    def reset(self) -> None:
        """Forget requests, traces, steps and stored history; restore the config."""
        self.state.reset()

    def release_hangs(self) -> None:
        """End every hanging stream now (by dropping its connection)."""
        self.state.hangs.release()

    @property
    def pending(self) -> int:
        return self.state.pending

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received, oldest first."""
        return self.state.requests

    @property
    def model_requests(self) -> list[RecordedRequest]:
        """The Chat Completions and Responses requests, oldest first."""
        return [request for request in self.state.requests if request.is_model_call]

    @property
    def traces(self) -> list[dict[str, Any]]:
        """Every trace-ingest upload body (`{"data": [...]}`), oldest first."""
        return self.state.traces

    def wait_for_requests(
        self, count: int, *, path: str | None = None, timeout: float = 10.0
    ) -> list[RecordedRequest]:
        """Block until `count` requests (to `path`, if given) have arrived; return them."""

        def matching() -> list[RecordedRequest]:
            return [r for r in self.state.requests if path is None or r.path == path]

        if not self.state.wait_until(lambda: len(matching()) >= count, timeout):
            raise TimeoutError(f"{len(matching())} of {count} requests arrived in {timeout}s")
        return matching()

    async def arrived(
        self, count: int, *, path: str | None = None, within: float = 10.0
    ) -> list[RecordedRequest]:
        """`wait_for_requests` for async tests: waits in a thread, never blocks the loop."""
        return await asyncio.to_thread(self.wait_for_requests, count, path=path, timeout=within)


def serve_forever(
    config: ServerConfig,
    *,
    host: str,
    port: int,
    keep: int | None,
    on_ready: Callable[[str], None],
) -> None:
    """Serve in this thread until SIGINT/SIGTERM (uvicorn's handlers); for the CLI."""
    sock = _listening_socket(port, host)
    base_url = f"http://{host}:{sock.getsockname()[1]}/v1"
    server = _Uvicorn(
        ServerState(config=config, keep=keep), loop="auto", on_ready=lambda: on_ready(base_url)
    )
    hide_drop_logs()
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()


def _listening_socket(port: int, host: str = HOST) -> socket.socket:
    # proto=IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted sockets only then, and
    # without it every response waits ~40 ms for a delayed ACK (Nagle).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(BACKLOG)
    sock.setblocking(False)
    return sock
