"""Drill: what an unauthenticated client can hold, and hundreds of slow turns on one worker.

- A 50 MB `Authorization` header used to cost ~200 MB of RSS and stall the loop for seconds;
  now a request head over HTTP_MAX_HEADER_BYTES is a 431 (JSON) and the connection closes.
- Unfinished headers used to be held for minutes; now the connection closes after
  HTTP_HEADER_TIMEOUT_SECONDS.
- 300 slow turns at once on one worker used to run the PostgreSQL pool dry (503s after the
  user message was committed, failed lease renewals): a turn now holds no connection while
  its model works and one statement renews every lease.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.drills.conftest import ServerFactory
from tests.drills.harness import bearer, report
from tests.drills.turns import client_for, create_thread, stream_turn

HEADER_TIMEOUT_SECONDS = 2
HUGE_HEADER_BYTES = 50 * 1024 * 1024
CONCURRENT_TURNS = 300


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def send_raw(port: int, chunks, *, read_timeout: float = 10.0) -> tuple[bytes, float]:
    """Send `chunks` on a fresh connection; return what came back and when it closed."""
    began = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=read_timeout) as sock:
        try:
            for chunk in chunks:
                sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server closed the connection while we were still sending
        received = b""
        try:
            while data := sock.recv(65536):
                received += data
        except (ConnectionResetError, TimeoutError):
            pass
    return received, time.monotonic() - began


def huge_header_chunks():
    yield b"GET /api/threads HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
    block = b"a" * (1024 * 1024)
    for _ in range(HUGE_HEADER_BYTES // len(block)):
        yield block
    yield b"\r\n\r\n"


class TestHostileHttp:
    @pytest.mark.drill
    async def test_huge_and_unfinished_headers_are_cut_off(
        self, server_factory: ServerFactory, record_property
    ) -> None:
        server = server_factory(HTTP_HEADER_TIMEOUT_SECONDS=str(HEADER_TIMEOUT_SECONDS))
        server.start()
        assert server.proc is not None
        before = rss_mb(server.proc.pid)
        answer, huge_seconds = await asyncio.to_thread(send_raw, server.port, huge_header_chunks())
        after = rss_mb(server.proc.pid)
        head, _, body = answer.partition(b"\r\n\r\n")
        partial, slow_seconds = await asyncio.to_thread(
            send_raw, server.port, [b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Slow: "]
        )
        idle, idle_seconds = await asyncio.to_thread(send_raw, server.port, [])
        async with client_for(server.base_url) as http:
            still_fine = (await http.get("/health/live")).status_code
        server.stop()
        status_line = head.split(b"\r\n")[0].decode()
        report(
            record_property,
            "hostile_http_figures",
            f"50 MB header: {status_line} after {huge_seconds:.2f} s, "
            f"RSS {before:.0f} -> {after:.0f} MB; unfinished headers closed after "
            f"{slow_seconds:.1f} s; a silent connection closed after {idle_seconds:.1f} s",
        )
        assert head.startswith(b"HTTP/1.1 431")
        assert json.loads(body)["error"] == "RequestHeaderFieldsTooLarge"
        assert after - before < 20
        assert partial == b""
        assert HEADER_TIMEOUT_SECONDS - 0.5 <= slow_seconds <= HEADER_TIMEOUT_SECONDS + 2
        assert idle == b""
        assert idle_seconds <= HEADER_TIMEOUT_SECONDS + 2
        assert still_fine == 200

    @pytest.mark.drill
    async def test_three_hundred_slow_turns_on_one_worker(
        self, server_factory: ServerFactory, record_property
    ) -> None:
        # Each reply streams for ~6 s; leases of 6 s are renewed twice during every turn.
        server = server_factory(
            OFFLINE_MODEL_DELAY_MS="250", TURN_LEASE_SECONDS="6", LOG_LEVEL="WARNING"
        )
        server.start()
        run = uuid.uuid4().hex[:8]
        limits = httpx.Limits(max_connections=CONCURRENT_TURNS + 16)
        async with httpx.AsyncClient(base_url=server.base_url, timeout=120, limits=limits) as http:
            refs = []
            for n in range(CONCURRENT_TURNS):
                headers = bearer(f"crowd-{run}-{n % 60}")
                refs.append((await create_thread(http, headers), headers))
            began = time.monotonic()
            outcomes = await asyncio.gather(
                *(stream_turn(http, t, "help", h, limit_seconds=120) for t, h in refs)
            )
            seconds = time.monotonic() - began
        server.stop()
        log = server.log_path.read_text(errors="replace")
        failed = [o.describe()[:300] for o in outcomes if not o.ok]
        report(
            record_property,
            "crowd_figures",
            f"{CONCURRENT_TURNS} slow turns at once on one worker: {len(failed)} failed, "
            f"all done in {seconds:.1f} s; lease renewal failures logged: "
            f"{log.count('Could not renew')}",
        )
        assert failed == []
        assert "Could not renew" not in log
