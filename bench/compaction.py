"""Workload 8: what compaction costs per prune, and what a turn pays for it.

- Through the real service in this process (real PostgreSQL, real memory files, the offline
  model and its deterministic summarizer), one thread with a cap of 12 items, turns of 4
  items: each prune's compaction end to end (plan, summarize, apply) and the summarizer
  alone, and the turns' own latency with compaction off and on, interleaved.
- The model summarizer over real HTTP (the SDK's Chat Completions model against the scripted
  model server, which reports usage at ~4 characters per token): time and tokens of one
  summary, as the previous summary grows to the bound. With a real provider the time is the
  provider's (generation dominates); the tokens are what is billed.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

from bench.env import UNLIMITED, Database
from bench.report import Row
from bench.stats import raw_ms, summarize

CAP = 12
TURN_TEXTS = ("add task water the plants", "remember that the gate code is 4417")
SUMMARY_SIZES = (0, 2_000, 3_900)  # characters of the previous summary (bound: 4,000)


async def w13(root: Path, db: Database, turns: int, model_reps: int) -> tuple[list[Row], dict]:
    service = await _through_the_service(root, db, turns)
    model = await _model_summaries(model_reps)
    rows = service.pop("rows") + model.pop("rows")
    return rows, {**service, **model}


async def _through_the_service(root: Path, db: Database, turns: int) -> dict[str, Any]:
    """Paced turns (the compaction finishes before the next turn, as with a person typing),
    then back-to-back turns on a fresh thread (the worst case for a turn)."""
    paced: dict[str, list[float]] = {"off": [], "summary": []}
    rushed: dict[str, list[float]] = {"off": [], "summary": []}
    compactions: list[float] = []
    summarizing: list[float] = []
    outcomes: list[str] = []
    apps = {mode: await _App.start(root / mode, db, mode) for mode in paced}
    try:
        for app in apps.values():
            app.instrument(compactions, summarizing, outcomes)
        for latencies, wait in ((paced, True), (rushed, False)):
            for app in apps.values():
                await app.new_thread()
            for n in range(turns):
                for mode in ("off", "summary") if n % 2 == 0 else ("summary", "off"):
                    latencies[mode].append(await apps[mode].turn(TURN_TEXTS[n % 2]))
                    if wait:
                        await apps[mode].idle()
            if wait:
                paced_compactions, paced_outcomes = list(compactions), list(outcomes)
        await apps["summary"].idle()
    finally:
        for app in apps.values():
            await app.stop()
    c, s = summarize(paced_compactions), summarize(summarizing)
    rows = [
        Row(
            "13",
            "compaction per prune (paced turns)",
            "T",
            c["median_ms"],
            c["p95_ms"],
            value=f"{paced_outcomes.count('made')} made in {turns} turns",
        ),
        Row("13", "  of which summarizing (offline)", "T", s["median_ms"], s["p95_ms"]),
    ]
    for label, latencies in (("paced", paced), ("back to back", rushed)):
        off, on = summarize(latencies["off"]), summarize(latencies["summary"])
        rows.append(
            Row("13", f"turn {label}, compaction off", "T", off["median_ms"], off["p95_ms"])
        )
        rows.append(
            Row(
                "13",
                f"turn {label}, compaction on",
                "T",
                on["median_ms"],
                on["p95_ms"],
                ratio=on["median_ms"] / off["median_ms"],
                ratio_of="median/off",
            )
        )
    rows[-1].note = (
        "back to back on one thread, each turn may wait for the previous prune's critical "
        "section and shares the 2 CPUs with its compaction"
    )
    return {
        "rows": rows,
        "compaction_ms": raw_ms(paced_compactions),
        "summarize_ms": raw_ms(summarizing),
        "turn_paced_ms": {mode: raw_ms(v) for mode, v in paced.items()},
        "turn_back_to_back_ms": {mode: raw_ms(v) for mode, v in rushed.items()},
        "outcomes": outcomes,
    }


class _App:
    """The real app (lifespan, offline model) with one user and one thread."""

    def __init__(self, manager: Any, client: Any) -> None:
        self.manager, self.client, self.thread_id = manager, client, ""

    async def new_thread(self) -> None:
        self.thread_id = (await self.client.post("/api/threads", json={})).json()["id"]

    @classmethod
    async def start(cls, root: Path, db: Database, compaction: str) -> _App:
        import httpx
        from asgi_lifespan import LifespanManager

        from app.auth import TokenService
        from app.config import load_settings
        from app.main import create_app

        settings = load_settings(
            APP_ENV="test",
            **UNLIMITED,
            DATABASE_URL=db.url,
            DATA_DIR=root,
            SCHEDULER_ENABLED=False,
            MODEL_PROVIDER="offline",
            LOG_LEVEL="WARNING",
            METRICS_ENABLED=False,
            AUTH_JWT_SECRET="bench-secret-that-is-long-enough-for-hs256-0123456789",
            AGENT_SESSION_MAX_MESSAGES=CAP,
            AGENT_SESSION_COMPACTION=compaction,
        )
        manager = LifespanManager(create_app(settings))
        await manager.__aenter__()
        token = TokenService.from_settings(settings).issue(f"bench-{compaction}")
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app),
            base_url="http://bench",
            headers={"Authorization": f"Bearer {token}"},
        )
        return cls(manager, client)

    def instrument(
        self, compactions: list[float], summarizing: list[float], outcomes: list[str]
    ) -> None:
        compactor = self.manager._state["compactor"]
        if compactor is None:
            return
        compact, summarize_ = compactor.compact, compactor.summarizer.summarize

        async def timed_compact(*args: Any) -> str:
            started = time.perf_counter()
            outcome = await compact(*args)
            compactions.append(time.perf_counter() - started)
            outcomes.append(outcome)
            return outcome

        async def timed_summarize(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            made = await summarize_(*args, **kwargs)
            summarizing.append(time.perf_counter() - started)
            return made

        compactor.compact = timed_compact
        compactor.summarizer.summarize = timed_summarize

    async def turn(self, text: str) -> float:
        started = time.perf_counter()
        response = await self.client.post(
            f"/api/threads/{self.thread_id}/messages",
            json={"text": text},
            headers={"accept": "application/json"},
        )
        elapsed = time.perf_counter() - started
        if response.status_code != 200 or response.json()["error"] is not None:
            raise RuntimeError(f"turn failed: {response.status_code} {response.text[:200]}")
        return elapsed

    async def idle(self) -> None:
        compactor = self.manager._state["compactor"]
        if compactor is not None:
            await compactor.wait_idle()

    async def stop(self) -> None:
        await self.client.aclose()
        await self.manager.__aexit__(None, None, None)


async def _model_summaries(reps: int) -> dict[str, Any]:
    import openai
    from agents import OpenAIChatCompletionsModel

    from app.assistant.summarizer import LoggedMessage, ModelSummarizer
    from app.memory import SUMMARY_PREFIX
    from tests.model_server import ModelServer, Text

    rng = random.Random(8)
    pruned_turn = [
        LoggedMessage("user", "add task water the plants on the balcony"),
        LoggedMessage(
            "assistant",
            'Added "water the plants on the balcony" to your tasks.',
            {
                "tool_calls": [
                    {
                        "call_id": "c1",
                        "name": "add_task",
                        "arguments": '{"title":"water the plants on the balcony"}',
                        "output": '{"id":"8c1","title":"water the plants on the balcony",'
                        '"notes":null,"done":false}',
                    }
                ]
            },
        ),
    ]
    rows: list[Row] = []
    raw: dict[str, Any] = {}
    with ModelServer(keep=1_000) as server:
        client = openai.AsyncOpenAI(base_url=server.base_url, api_key="bench", max_retries=0)
        summarizer = ModelSummarizer(
            OpenAIChatCompletionsModel("gpt-5-mini", openai_client=client), max_chars=4_000
        )
        for size in SUMMARY_SIZES:
            previous = _summary_of(size, rng, SUMMARY_PREFIX) if size else None
            times, tokens = [], []
            for _ in range(reps):
                server.enqueue(Text(_summary_of(min(size + 300, 3_950), rng, "")))
                started = time.perf_counter()
                made = await summarizer.summarize(previous, pruned_turn, opening=None, omitted=0)
                times.append(time.perf_counter() - started)
                tokens.append((made.input_tokens, made.output_tokens))
            s = summarize(times)
            tokens_in, tokens_out = tokens[-1]
            rows.append(
                Row(
                    "13",
                    f"model summary, previous {size:,} chars",
                    "T",
                    s["median_ms"],
                    s["p95_ms"],
                    value=f"{tokens_in} in + {tokens_out} out tok",
                )
            )
            raw[f"model_summary_{size}"] = {"ms": raw_ms(times), "tokens": tokens}
        await client.close()
    rows[-1].note = (
        "local model server: the time is our overhead only (a provider adds generation: "
        "~1,000 output tokens at its speed); tokens at ~4 characters per token"
    )
    return {"rows": rows, **raw}


def _summary_of(chars: int, rng: random.Random, prefix: str) -> str:
    words = ("task", "remember", "gate", "code", "plants", "milk", "build", "id", "is", "42")
    lines, size = [prefix] if prefix else [], len(prefix)
    while size < chars:
        line = "- " + " ".join(rng.choice(words) for _ in range(8))
        lines.append(line)
        size += len(line) + 1
    return "\n".join(lines)[:chars]
