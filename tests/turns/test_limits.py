"""Fair use: each limit refuses exactly at its threshold with a 429 that says which limit and
when it resets, writes nothing for the refused turn, and admits again once its window passed
(an injected clock, no sleeps); the budget counts the usage the model provider reported."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import httpx
from agents.testing import ScriptedModel
from chatkit.types import ThreadAddUserMessageParams, ThreadsAddUserMessageReq
from sqlmodel import col, func, select

from app.config import Settings
from app.metrics import LIMIT_REFUSALS
from app.models import Message, Turn, UserLimit
from tests.chatkit.client import ChatKitClient, created_thread_id, user_input
from tests.conftest import RunningApp, start_app
from tests.factories import create_thread, logged, memory_items
from tests.gates import Gate
from tests.model_server.history import chat_instructions, chat_items, estimate_tokens, prompt_text

JSON = {"Accept": "application/json"}


class Clock:
    """The limiter's clock, moved by the test."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@asynccontextmanager
async def clocked_app(
    settings: Settings,
) -> AsyncIterator[tuple[RunningApp, httpx.AsyncClient, Clock]]:
    """The app and its client, with one clock the test moves for every limit (turns and
    stream slots)."""
    async with start_app(settings) as running, running.client() as client:
        clock = Clock()
        running.turn_runner.limiter.clock = clock
        running.turn_runner.stream_slots.clock = clock
        yield running, client, clock


async def post_turn(
    client: httpx.AsyncClient, thread_id: str, headers: dict[str, str], text: str = "help"
) -> httpx.Response:
    return await client.post(
        f"/api/threads/{thread_id}/messages", json={"text": text}, headers={**headers, **JSON}
    )


def admin_url(running: RunningApp, headers: dict[str, str], what: str) -> str:
    """The admin API's URL for `what` of the user `headers` names (by token subject)."""
    subject = running.state["token_service"].verify(headers["Authorization"].split()[1]).subject
    return f"/api/admin/users/{subject}/{what}"


def refusals(limit: str) -> float:
    return LIMIT_REFUSALS.labels(limit)._value.get()


async def stored_counts(running: RunningApp, headers: dict[str, str]) -> tuple[int, int, int]:
    """(messages, turns, window turns) PostgreSQL holds for the user."""
    user_id = await running.user_id(headers)
    async with running.sessionmaker() as db:
        thread_ids = select(Turn.thread_id).where(Turn.user_id == user_id)
        messages = (
            await db.exec(select(func.count()).where(col(Message.thread_id).in_(thread_ids)))
        ).one()
        turns = (await db.exec(select(func.count()).where(Turn.user_id == user_id))).one()
        row = await db.get(UserLimit, user_id)
    return messages, turns, row.window_turns if row else 0


class TestTurnsPerMinute:
    async def test_the_turn_past_the_limit_is_refused_until_the_window_passes(
        self, settings_factory, alice
    ) -> None:
        settings = settings_factory(LIMIT_TURNS_PER_MINUTE=3)
        async with clocked_app(settings) as (running, client, clock):
            started = clock.now
            thread_id = await create_thread(client, alice)
            for _ in range(3):
                assert (await post_turn(client, thread_id, alice)).status_code == 200
            before = refusals("turns_per_minute")
            log, memory = (
                await logged(client, alice, thread_id),
                await memory_items(running, alice, thread_id),
            )
            counts = await stored_counts(running, alice)

            refused = await post_turn(client, thread_id, alice)
            assert refused.status_code == 429
            assert refused.headers["Retry-After"] == "60"
            body = refused.json()
            assert body["error"] == "LimitExceeded"
            assert (body["limit"], body["value"]) == ("turns_per_minute", 3)
            assert datetime.fromisoformat(body["resets_at"]) == started + timedelta(minutes=1)
            assert body["retry_after_seconds"] == 60
            assert "3 turns per minute" in body["detail"]
            # Nothing written: no message, no turn, no memory, the window not counted.
            assert await logged(client, alice, thread_id) == log
            assert await memory_items(running, alice, thread_id) == memory
            assert await stored_counts(running, alice) == counts == (6, 3, 3)
            assert refusals("turns_per_minute") == before + 1

            clock.now = started + timedelta(seconds=59)
            late = await post_turn(client, thread_id, alice)
            assert (late.status_code, late.headers["Retry-After"]) == (429, "1")
            clock.now = started + timedelta(minutes=1)
            assert (await post_turn(client, thread_id, alice)).status_code == 200
            usage = (await client.get("/api/me/usage", headers=alice)).json()
            assert (usage["turns_this_minute"], usage["turns_today"]) == (1, 4)
            assert datetime.fromisoformat(usage["minute_resets_at"]) == clock.now + timedelta(
                minutes=1
            )

    async def test_retries_count_and_an_admin_token_is_not_limited(
        self, settings_factory, alice, auth_for
    ) -> None:
        settings = settings_factory(LIMIT_TURNS_PER_MINUTE=1)
        admin = auth_for("root", admin=True)
        async with clocked_app(settings) as (running, client, _clock):
            thread_id = await create_thread(client, alice)
            assert (await post_turn(client, thread_id, alice)).status_code == 200
            messages = await client.get(f"/api/threads/{thread_id}/messages", headers=alice)
            first = messages.json()["data"][0]["id"]
            retry = await client.post(
                f"/api/threads/{thread_id}/messages/{first}/retry", headers={**alice, **JSON}
            )
            assert (retry.status_code, retry.json()["limit"]) == (429, "turns_per_minute")
            admin_thread = await create_thread(client, admin)
            for _ in range(3):
                assert (await post_turn(client, admin_thread, admin)).status_code == 200
            usage = (await client.get("/api/me/usage", headers=admin)).json()
            assert usage["limits"]["exempt"] is True
            assert usage["turns_today"] == 3

    async def test_an_override_lifts_the_limit_for_one_user(
        self, settings_factory, alice, bob, auth_for
    ) -> None:
        settings = settings_factory(LIMIT_TURNS_PER_MINUTE=1)
        admin = auth_for("root", admin=True)
        async with clocked_app(settings) as (running, client, _clock):
            alice_thread = await create_thread(client, alice)
            bob_thread = await create_thread(client, bob)
            lifted = await client.put(
                admin_url(running, alice, "limits"), json={"turns_per_minute": 0}, headers=admin
            )
            assert lifted.status_code == 200, lifted.text
            assert lifted.json()["limits"]["turns_per_minute"] == 0
            for _ in range(3):
                assert (await post_turn(client, alice_thread, alice)).status_code == 200
            assert (await post_turn(client, bob_thread, bob)).status_code == 200
            assert (await post_turn(client, bob_thread, bob)).status_code == 429
            restored = await client.put(
                admin_url(running, alice, "limits"), json={"turns_per_minute": None}, headers=admin
            )
            assert restored.json()["limits"]["turns_per_minute"] == 1
            assert (await post_turn(client, alice_thread, alice)).status_code == 429


class TestRunningTurns:
    async def test_a_turn_past_the_limit_waits_for_one_to_end(
        self, settings_factory, alice
    ) -> None:
        gates = [Gate("one"), Gate("two")]
        model = ScriptedModel([g.step() for g in gates] + [gates[0].step()])
        settings = settings_factory(LIMIT_RUNNING_TURNS=2)
        async with start_app(settings, model=model) as running, running.client() as client:
            threads = [await create_thread(client, alice) for _ in range(3)]
            held = []
            for thread_id, gate in zip(threads, gates, strict=False):
                held.append(asyncio.create_task(post_turn(client, thread_id, alice)))
                await gate.entered.wait()
            counts = await stored_counts(running, alice)
            before = refusals("running_turns")

            refused = await post_turn(client, threads[2], alice)
            assert (refused.status_code, refused.headers["Retry-After"]) == (429, "5")
            body = refused.json()
            assert (body["limit"], body["value"], body["resets_at"]) == ("running_turns", 2, None)
            # A busy thread is still a 409: the limit is about other threads.
            busy = await post_turn(client, threads[0], alice)
            assert busy.status_code == 409
            assert await logged(client, alice, threads[2]) == []
            # No memory file either (opening it before the claim created nothing on disk).
            user_id = await running.user_id(alice)
            assert not await running.memory_store.exists(user_id, uuid.UUID(threads[2]))
            assert await stored_counts(running, alice) == counts
            assert refusals("running_turns") == before + 1
            usage = (await client.get("/api/me/usage", headers=alice)).json()
            assert usage["running_turns"] == 2

            gates[1].opened.set()
            assert (await held[1]).status_code == 200
            third = asyncio.create_task(post_turn(client, threads[2], alice))
            gates[0].opened.set()
            assert (await held[0]).status_code == 200
            assert (await third).status_code == 200
            assert await logged(client, alice, threads[2]) == [
                ("user", "help"),
                ("assistant", "one"),
            ]


class TestDailyTokens:
    async def test_the_budget_counts_the_providers_usage_and_resets_at_midnight_utc(
        self, provider_settings, model_server, alice, auth_for
    ) -> None:
        admin = auth_for("root", admin=True)
        settings = provider_settings(LIMIT_DAILY_TOKENS=1_000_000)
        async with clocked_app(settings) as (running, client, clock):
            thread_id = await create_thread(client, alice)
            answered = await post_turn(client, thread_id, alice)
            assert answered.status_code == 200
            (request,) = model_server.model_requests
            sent = request.body["messages"]
            reply = answered.json()["assistant_message"]
            spent = estimate_tokens(
                prompt_text(chat_instructions(sent), chat_items(sent))
            ) + estimate_tokens(reply["content"])
            assert reply["metadata"]["usage"]["total_tokens"] == spent
            usage = (await client.get("/api/me/usage", headers=alice)).json()
            assert (usage["tokens_today"], usage["turns_today"]) == (spent, 1)
            assert spent > 0

            async def budget(tokens: int) -> None:
                response = await client.put(
                    admin_url(running, alice, "limits"),
                    json={"daily_tokens": tokens},
                    headers=admin,
                )
                assert response.status_code == 200, response.text

            await budget(spent + 1)
            log = await logged(client, alice, thread_id)
            await budget(spent)
            refused = await post_turn(client, thread_id, alice)
            assert refused.status_code == 429
            body = refused.json()
            midnight = _next_midnight(clock.now)
            assert (body["limit"], body["value"]) == ("daily_tokens", spent)
            assert datetime.fromisoformat(body["resets_at"]) == midnight
            assert int(refused.headers["Retry-After"]) == _ceil_seconds(midnight - clock.now)
            assert await logged(client, alice, thread_id) == log
            assert len(model_server.model_requests) == 1  # the model was not asked

            await budget(spent + 1)
            assert (await post_turn(client, thread_id, alice)).status_code == 200
            await budget(1)
            assert (await post_turn(client, thread_id, alice)).status_code == 429
            clock.now = midnight
            assert (await post_turn(client, thread_id, alice)).status_code == 200


class TestUsageVisible:
    async def test_admin_reads_a_users_usage_and_others_cannot(
        self, settings_factory, alice, bob, auth_for
    ) -> None:
        settings = settings_factory(
            LIMIT_TURNS_PER_MINUTE=5, LIMIT_RUNNING_TURNS=2, LIMIT_DAILY_TOKENS=1000
        )
        admin = auth_for("root", admin=True)
        async with start_app(settings) as running, running.client() as client:
            thread_id = await create_thread(client, alice)
            assert (await post_turn(client, thread_id, alice)).status_code == 200
            mine = (await client.get("/api/me/usage", headers=alice)).json()
            theirs = (await client.get(admin_url(running, alice, "usage"), headers=admin)).json()
            assert mine == theirs
            assert mine["limits"] == {
                "turns_per_minute": 5,
                "running_turns": 2,
                "daily_tokens": 1000,
                "open_streams": 0,
                "exempt": False,
            }
            assert (mine["turns_today"], mine["turns_this_minute"], mine["running_turns"]) == (
                1,
                1,
                0,
            )
            denied = await client.get(admin_url(running, alice, "usage"), headers=bob)
            assert denied.status_code == 403
            missing = await client.get("/api/admin/users/nobody/usage", headers=admin)
            assert (missing.status_code, missing.json()["error"]) == (404, "NotFoundError")
            bad = await client.put(
                admin_url(running, alice, "limits"), json={"daily_tokens": -1}, headers=admin
            )
            assert bad.status_code == 422


class TestChatKit:
    async def test_a_refused_turn_is_the_protocols_error_event_with_the_same_message(
        self, settings_factory, alice
    ) -> None:
        settings = settings_factory(LIMIT_TURNS_PER_MINUTE=1)
        async with clocked_app(settings) as (running, client, _clock):
            kit = ChatKitClient(client, alice)
            thread_id = created_thread_id(await kit.create("help"))
            items = await kit.all_items(thread_id)
            params = ThreadAddUserMessageParams(thread_id=thread_id, input=user_input("again"))
            error = await kit.stream_error(ThreadsAddUserMessageReq(params=params))
            rest = await post_turn(client, thread_id, alice)
            assert rest.status_code == 429
            assert (error.message, error.allow_retry) == (rest.json()["detail"], True)
            assert await kit.all_items(thread_id) == items


def _next_midnight(now: datetime) -> datetime:
    day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return day + timedelta(days=1)


def _ceil_seconds(delta: timedelta) -> int:
    seconds = delta.total_seconds()
    return max(1, int(seconds) + (0 if seconds == int(seconds) else 1))


class TestOpenStreams:
    async def test_a_resume_past_the_limit_is_refused_until_dead_streams_expire(
        self, settings_factory, alice
    ) -> None:
        settings = settings_factory(LIMIT_OPEN_STREAMS=2)
        async with clocked_app(settings) as (running, client, clock):
            slots = running.turn_runner.stream_slots
            thread_id = await create_thread(client, alice)
            turn_id = (await post_turn(client, thread_id, alice)).json()["turn_id"]
            url = f"/api/threads/{thread_id}/turns/{turn_id}/events"
            user_id = await running.user_id(alice)
            # Two streams held by a worker that then died: never renewed, never released.
            for _ in range(2):
                assert await slots.acquire(user_id, exempt=False) is not None
            before = refusals("open_streams")

            refused = await client.get(url, headers=alice)
            assert (refused.status_code, refused.headers["Retry-After"]) == (429, "5")
            body = refused.json()
            assert (body["limit"], body["value"], body["resets_at"]) == ("open_streams", 2, None)
            assert refusals("open_streams") == before + 1
            usage = (await client.get("/api/me/usage", headers=alice)).json()
            assert (usage["open_streams"], usage["limits"]["open_streams"]) == (2, 2)

            clock.now += timedelta(seconds=59)
            assert (await client.get(url, headers=alice)).status_code == 429
            clock.now += timedelta(seconds=2)
            # A stream that ends gives its slot back: more resumes than the limit, one by one.
            for _ in range(3):
                resumed = await client.get(url, headers=alice)
                assert resumed.status_code == 200
                assert "event: done" in resumed.text
            usage = (await client.get("/api/me/usage", headers=alice)).json()
            assert usage["open_streams"] == 0
