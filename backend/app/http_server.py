"""The HTTP protocol the server runs: uvicorn's httptools protocol with two bounds added.

uvicorn (with httptools) puts no limit on a request's head and no deadline on receiving it:
one client sending a 50 MB `Authorization` header cost ~200 MB of memory and stalled the loop
for seconds, and unfinished headers were held for minutes. Here a request head over
`HTTP_MAX_HEADER_BYTES` is answered 431 (JSON, the service's error shape) and the connection
closed, and a client that has not sent a whole head within `HTTP_HEADER_TIMEOUT_SECONDS` of
connecting (or of its previous response) is disconnected.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.config import get_settings


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with a size limit and a deadline on request heads.

    uvicorn builds one per connection from the class alone (and pickles the class by name
    for its worker processes), so the limits are read from the cached settings.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings = get_settings()
        self.max_head_bytes = settings.HTTP_MAX_HEADER_BYTES
        self.head_timeout_s = float(settings.HTTP_HEADER_TIMEOUT_SECONDS)
        self._head_bytes = 0
        self._in_head = True  # waiting for (the rest of) a request head
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]  # uvicorn narrows BaseTransport
        super().connection_made(transport)
        self._arm_head_timer()

    def data_received(self, data: bytes) -> None:
        if not self._in_head:
            super().data_received(data)
            return
        room = self.max_head_bytes - self._head_bytes
        if len(data) <= room:
            self._head_bytes += len(data)
            super().data_received(data)
            return
        # Over the limit in this chunk: it may still hold a whole head and then body bytes.
        super().data_received(data[:room])
        self._head_bytes = self.max_head_bytes
        if self._in_head:
            self._reject_head()
        elif not self.transport.is_closing():
            super().data_received(data[room:])

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._cancel_head_timer()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # The next request's head starts now: count and time it afresh.
        self._in_head, self._head_bytes = True, 0
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def _arm_head_timer(self) -> None:
        self._cancel_head_timer()
        self._head_timer = self.loop.call_later(self.head_timeout_s, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._in_head and not self.transport.is_closing():
            self.transport.close()

    def _reject_head(self) -> None:
        self._cancel_head_timer()
        body = json.dumps(
            {
                "error": "RequestHeaderFieldsTooLarge",
                "detail": f"Request line and headers are over {self.max_head_bytes} bytes",
            }
        ).encode()
        head = (
            "HTTP/1.1 431 Request Header Fields Too Large\r\n"
            "content-type: application/json\r\n"
            f"content-length: {len(body)}\r\n"
            "connection: close\r\n\r\n"
        ).encode()
        if not self.transport.is_closing():
            self.transport.write(head + body)
            self.transport.close()
