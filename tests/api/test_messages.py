"""Listing a thread's messages: order, cursors, limits."""

from __future__ import annotations

import uuid

from tests.factories import create_thread
from tests.sse import send


async def page_through(
    client, headers, thread_id: str, order: str, limit: int, between=None
) -> list[str]:
    seen: list[str] = []
    after = None
    while True:
        params = {"limit": limit, "order": order, **({"after": after} if after else {})}
        response = await client.get(
            f"/api/threads/{thread_id}/messages", params=params, headers=headers
        )
        assert response.status_code == 200, response.text
        page = response.json()
        seen += [m["content"] for m in page["data"]]
        if between is not None:
            await between()
        if not page["has_more"]:
            return seen
        after = page["after"]


class TestListMessages:
    async def test_both_orders_page_without_gaps_or_duplicates(self, client, alice) -> None:
        thread_id = await create_thread(client, alice)
        for n in range(4):
            await send(client, thread_id, f"remember that m{n}", alice)
        everything = (
            await client.get(f"/api/threads/{thread_id}/messages?limit=100", headers=alice)
        ).json()
        contents = [m["content"] for m in everything["data"]]
        assert len(contents) == 8
        assert contents[0] == "remember that m0"
        assert [m["role"] for m in everything["data"]] == ["user", "assistant"] * 4
        assert await page_through(client, alice, thread_id, "asc", 3) == contents
        assert await page_through(client, alice, thread_id, "desc", 3) == contents[::-1]

    async def test_descending_pages_stay_stable_while_new_messages_arrive(
        self, client, alice
    ) -> None:
        thread_id = await create_thread(client, alice)
        for n in range(3):
            await send(client, thread_id, f"remember that d{n}", alice)
        before = [
            m["content"]
            for m in (
                await client.get(
                    f"/api/threads/{thread_id}/messages?limit=100&order=desc", headers=alice
                )
            ).json()["data"]
        ]

        async def new_turn() -> None:
            await send(client, thread_id, "remember that late arrival", alice)

        # New messages land before the cursor of a descending listing: they never shift it.
        assert await page_through(client, alice, thread_id, "desc", 2, between=new_turn) == before

    async def test_bad_order_limit_and_cursor(self, client, alice) -> None:
        thread_id = await create_thread(client, alice)
        base = f"/api/threads/{thread_id}/messages"
        assert (await client.get(f"{base}?order=sideways", headers=alice)).status_code == 422
        assert (await client.get(f"{base}?limit=0", headers=alice)).status_code == 422
        assert (await client.get(f"{base}?after={uuid.uuid4()}", headers=alice)).status_code == 400
        empty = (await client.get(base, headers=alice)).json()
        assert empty == {"data": [], "has_more": False, "after": None}
