"""A stand-in for a host application on another origin, for the token handover tests.

It is a real HTTP server on loopback, not a routed fake: Chromium refuses to let a page whose
address it does not know embed a loopback server (Local Network Access), which is right, and
a real deployment has host and chat on the same kind of network anyway.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.drills.harness import free_port


@dataclass
class HostApp:
    port: int = field(default_factory=free_port)
    pages: dict[str, str] = field(default_factory=dict)

    @property
    def origin(self) -> str:
        """The origin the chat server trusts (listed in its CORS_ALLOW_ORIGINS)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def other_origin(self) -> str:
        """The same server under a name the chat server does not list."""
        return f"http://localhost:{self.port}"


@contextmanager
def serve_host_app() -> Iterator[HostApp]:
    host = HostApp()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = host.pages.get(self.path)
            if body is None:
                self.send_error(404)
                return
            data = body.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", host.port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield host
    finally:
        server.shutdown()
        server.server_close()
