"""W10's growth ratios: the same requests on the full database and on one holding one user.

What a user does most (list their threads, open a thread, scroll back, send a message) must
not slow down as *other* users' data grows. Both databases hold a user of 100 threads x 20
messages; the full one also holds everyone else (W10's 100,000 threads). Both apps run in
this process (HTTP in process, auth, JSON) and take turns request by request, so the noise of
the machine hits both alike; each measure is reported as p95(full) / p95(empty). Stats and the
cleanup job's dry run (a count of what it would delete) are timed the same way: their cost
should follow what they touch, not the size of the tables.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

from bench.env import UNLIMITED
from bench.report import Row
from bench.stats import percentile, ratio, raw_ms

GROWTH_TARGET = 1.2
MEASURES = (
    "list threads, 1st page",
    "list threads, deep page",
    "messages, 1st page",
    "messages, deep page",
    "turn (offline model)",
    "memory stats (admin)",
    "cleanup dry run",
)


@asynccontextmanager
async def _client(url: str, data_dir: Path, secret: str) -> AsyncIterator[Any]:
    import httpx
    from asgi_lifespan import LifespanManager

    from app.config import load_settings
    from app.main import create_app

    settings = load_settings(
        DATABASE_URL=url,
        **UNLIMITED,
        DATA_DIR=data_dir,
        SCHEDULER_ENABLED=False,
        AUTH_JWT_SECRET=secret,
        LOG_LEVEL="WARNING",
        MODEL_PROVIDER="offline",
    )
    async with LifespanManager(create_app(settings)) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://w10") as client:
            yield client


class _Side:
    """One database: its client, the measured user's threads, and their samples."""

    def __init__(self, client: Any, user: dict[str, str], admin: dict[str, str]) -> None:
        self.client, self.user, self.admin = client, user, admin
        self.threads: list[str] = []
        self.samples: dict[str, list[float]] = {m: [] for m in MEASURES}

    async def setup(self) -> None:
        after = None
        while True:  # every thread of the user, page by page
            params = {"limit": 100, **({"after": after} if after else {})}
            page = (await self.client.get("/api/threads", params=params, headers=self.user)).json()
            self.threads += [t["id"] for t in page["data"]]
            after = page.get("after")
            if not after:
                return

    async def _timed(self, measure: str, method: str, url: str, **kwargs: Any) -> Any:
        start = time.perf_counter()
        response = await self.client.request(method, url, **kwargs)
        self.samples[measure].append(time.perf_counter() - start)
        response.raise_for_status()
        return response

    async def round(self, rng: random.Random) -> None:
        thread = rng.choice(self.threads)
        deep_thread = self.threads[len(self.threads) * 4 // 5]
        await self._timed("list threads, 1st page", "GET", "/api/threads", headers=self.user)
        await self._timed(
            "list threads, deep page",
            "GET",
            "/api/threads",
            params={"after": deep_thread, "limit": 20},
            headers=self.user,
        )
        first = await self._timed(
            "messages, 1st page",
            "GET",
            f"/api/threads/{thread}/messages",
            params={"limit": 5},
            headers=self.user,
        )
        deep = first.json().get("after")
        await self._timed(
            "messages, deep page",
            "GET",
            f"/api/threads/{thread}/messages",
            params={"limit": 5, **({"after": deep} if deep else {})},
            headers=self.user,
        )
        text = f"remember that w10 is {rng.randint(1, 99)}"
        await self._timed(
            "turn (offline model)",
            "POST",
            f"/api/threads/{thread}/messages",
            json={"text": text},
            headers=self.user,
        )
        await self._timed(
            "memory stats (admin)", "GET", "/api/admin/sessions/stats", headers=self.admin
        )
        await self._timed(
            "cleanup dry run",
            "POST",
            "/api/admin/sessions/cleanup",
            params={"dry_run": "true"},
            headers=self.admin,
        )


async def growth(full_url: str, empty_url: str, root: Path, user: int, reps: int) -> dict:
    """Interleaved rounds on both databases; per measure the p95 of each and their ratio."""
    from app.auth import TokenService
    from app.config import load_settings

    secret = uuid.uuid4().hex * 2
    tokens = TokenService.from_settings(load_settings(AUTH_JWT_SECRET=secret))
    user_headers = {"Authorization": f"Bearer {tokens.issue(f'w10-user-{user}')}"}
    admin = {"Authorization": f"Bearer {tokens.issue('w10-admin', admin=True)}"}
    async with AsyncExitStack() as stack:
        sides = {}
        for name, url in (("full", full_url), ("empty", empty_url)):
            client = await stack.enter_async_context(_client(url, root / f"growth-{name}", secret))
            sides[name] = _Side(client, user_headers, admin)
            await sides[name].setup()
        rng = random.Random(17)
        for k in range(reps + 1):  # the first round warms both up and is dropped
            for side in sides.values() if k % 2 else reversed(sides.values()):
                await side.round(rng)
            if k == 0:
                for side in sides.values():
                    side.samples = {m: [] for m in MEASURES}
    return {
        measure: {
            name: {
                "p95_ms": percentile(s.samples[measure], 95) * 1000,
                "ms": raw_ms(s.samples[measure]),
            }
            for name, s in sides.items()
        }
        for measure in MEASURES
    }


def growth_rows(figures: dict[str, Any], threads: int) -> list[Row]:
    rows = []
    for measure, sides in figures.items():
        full, empty = sides["full"]["p95_ms"], sides["empty"]["p95_ms"]
        row = Row("10", f"{measure}", "T", p95_ms=full, value=f"empty db p95 {empty:.2f} ms")
        row.ratio, row.ratio_of = ratio(full, empty), "p95/empty"
        row.target = f"<= {GROWTH_TARGET:g}x at {threads:,} thr"
        row.met = row.ratio <= GROWTH_TARGET
        rows.append(row)
    return rows
