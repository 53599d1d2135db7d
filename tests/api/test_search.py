"""GET /api/search: the caller's titles and messages, ranked, highlighted, keyset-paginated."""

from __future__ import annotations

import pytest

from app.models.search import MAX_SEARCH_QUERY_CHARS
from tests.factories import add_messages, create_thread, thread_with_turns


async def search(client, headers, q: str, **params) -> dict:
    response = await client.get("/api/search", params={"q": q, **params}, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def marked(hit: dict) -> str:
    """The snippet with its highlights shown as [..], to assert both at once."""
    text, out, at = hit["snippet"], [], 0
    for start, end in hit["highlights"]:
        out += [text[at:start], "[", text[start:end], "]"]
        at = end
    return "".join([*out, text[at:]])


class TestSearchFinds:
    async def test_a_message_from_a_real_turn_with_its_snippet(self, client, alice) -> None:
        thread_id = await thread_with_turns(client, alice, "remember that the build id is 42")
        found = await search(client, alice, "build")
        assert [(h["kind"], h["role"], marked(h)) for h in found["data"]] == [
            ("message", "assistant", "Got it — I'll remember that the [build] id is 42."),
            ("message", "user", "remember that the [build] id is 42"),
        ]
        assert {h["thread_id"] for h in found["data"]} == {thread_id}
        assert found["has_more"] is False

    async def test_titles_match_and_renames_are_searchable(self, client, alice) -> None:
        thread_id = await create_thread(client, alice, "Holiday packing list")
        found = await search(client, alice, "packing")
        assert [(h["kind"], h["thread_id"], h["message_id"], marked(h)) for h in found["data"]] == [
            ("thread", thread_id, None, "Holiday [packing] list")
        ]
        await client.patch(f"/api/threads/{thread_id}", json={"title": "Tax forms"}, headers=alice)
        assert (await search(client, alice, "packing"))["data"] == []
        assert [h["thread_title"] for h in (await search(client, alice, "tax"))["data"]] == [
            "Tax forms"
        ]

    async def test_better_matches_rank_first(self, client, alice, running) -> None:
        thread_id = await create_thread(client, alice)
        once, twice, other = await add_messages(
            running.sessionmaker,
            thread_id,
            "a kiwi on the table",
            "kiwi after kiwi, kiwi again",
            "no fruit here",
        )
        found = await search(client, alice, "kiwi")
        assert [h["message_id"] for h in found["data"]] == [str(twice), str(once)]
        assert found["data"][0]["rank"] > found["data"][1]["rank"]
        assert str(other) not in {h["message_id"] for h in found["data"]}

    async def test_a_long_message_shows_the_context_of_each_match(
        self, client, alice, running
    ) -> None:
        thread_id = await create_thread(client, alice)
        filler = " ".join(["lorem ipsum dolor sit amet"] * 40)
        text = f"{filler} the mango arrived {filler} a second mango here {filler}"
        await add_messages(running.sessionmaker, thread_id, text)
        (hit,) = (await search(client, alice, "mango"))["data"]
        assert [hit["snippet"][a:b] for a, b in hit["highlights"]] == ["mango", "mango"]
        assert " … " in hit["snippet"]
        assert len(hit["snippet"]) < len(text) // 4

    async def test_phrases_alternatives_and_exclusions(self, client, alice, running) -> None:
        thread_id = await create_thread(client, alice)
        ids = await add_messages(
            running.sessionmaker, thread_id, "buy oat milk", "milk to buy", "buy bread"
        )
        texts = dict(zip(map(str, ids), ["buy oat milk", "milk to buy", "buy bread"], strict=True))

        async def contents(q: str) -> set[str]:
            return {texts[h["message_id"]] for h in (await search(client, alice, q))["data"]}

        assert await contents('"oat milk"') == {"buy oat milk"}
        assert await contents("bread or oat") == {"buy oat milk", "buy bread"}
        assert await contents("buy -milk") == {"buy bread"}
        assert await contents("BUY MILK") == {"buy oat milk", "milk to buy"}

    async def test_a_query_with_no_words_finds_nothing(self, client, alice, running) -> None:
        thread_id = await create_thread(client, alice)
        await add_messages(running.sessionmaker, thread_id, "!!! ???")
        assert (await search(client, alice, "!!!"))["data"] == []


class TestSearchPages:
    async def test_pages_cover_every_hit_once_in_rank_then_time_then_id_order(
        self, client, alice, running
    ) -> None:
        thread_id = await create_thread(client, alice)
        # Equal texts: equal ranks, so the order is the tie-break (newest first, then id).
        ids = await add_messages(running.sessionmaker, thread_id, *["the same lychee"] * 12)
        pages, after = [], None
        while True:
            params = {"limit": 5} | ({"after": after} if after else {})
            page = await search(client, alice, "lychee", **params)
            pages.append([h["message_id"] for h in page["data"]])
            after = page["after"]
            if not page["has_more"]:
                break
        assert [len(p) for p in pages] == [5, 5, 2]
        assert [i for p in pages for i in p] == [str(i) for i in reversed(ids)]

    async def test_a_new_hit_does_not_shift_later_pages(self, client, alice, running) -> None:
        thread_id = await create_thread(client, alice)
        ids = await add_messages(running.sessionmaker, thread_id, *["durian"] * 4)
        first = await search(client, alice, "durian", limit=2)
        await add_messages(running.sessionmaker, thread_id, "durian")  # newer: ranks first
        second = await search(client, alice, "durian", limit=2, after=first["after"])
        assert [h["message_id"] for h in second["data"]] == [str(ids[1]), str(ids[0])]
        assert second["has_more"] is False

    async def test_a_cursor_only_continues_its_own_query(self, client, alice, running) -> None:
        thread_id = await create_thread(client, alice)
        await add_messages(running.sessionmaker, thread_id, "fig", "fig", "fig")
        after = (await search(client, alice, "fig", limit=1))["after"]
        other = await client.get("/api/search", params={"q": "date", "after": after}, headers=alice)
        assert other.status_code == 400
        assert other.json() == {
            "error": "BadRequestError",
            "detail": "The cursor 'after' belongs to another query; start again",
        }
        garbage = await client.get(
            "/api/search", params={"q": "fig", "after": "not-a-cursor"}, headers=alice
        )
        assert garbage.status_code == 400
        assert garbage.json() == {
            "error": "BadRequestError",
            "detail": "Unknown cursor 'after=not-a-cursor'",
        }


class TestSearchRefuses:
    @pytest.mark.parametrize("q", ["", "   "])
    async def test_an_empty_query_is_422(self, client, alice, q) -> None:
        response = await client.get("/api/search", params={"q": q}, headers=alice)
        assert response.status_code == 422
        assert response.json() == {"error": "UnprocessableError", "detail": "q must not be empty"}

    async def test_an_over_long_query_is_422_naming_the_limit(self, client, alice) -> None:
        q = "x" * (MAX_SEARCH_QUERY_CHARS + 1)
        response = await client.get("/api/search", params={"q": q}, headers=alice)
        assert response.status_code == 422
        assert response.json() == {
            "error": "UnprocessableError",
            "detail": f"q is {MAX_SEARCH_QUERY_CHARS + 1} characters; the limit is "
            f"{MAX_SEARCH_QUERY_CHARS}",
        }

    async def test_a_missing_or_unstorable_query_is_422_naming_q(self, client, alice) -> None:
        missing = await client.get("/api/search", headers=alice)
        assert missing.status_code == 422
        assert missing.json()["detail"] == "query.q: Field required"
        nul = await client.get("/api/search", params={"q": "a\x00b"}, headers=alice)
        assert nul.status_code == 422
        assert nul.json()["detail"].startswith("query.q: Value error, must not contain NUL")

    async def test_limit_out_of_range_is_422(self, client, alice) -> None:
        response = await client.get("/api/search", params={"q": "x", "limit": 0}, headers=alice)
        assert response.status_code == 422
        assert response.json()["detail"].startswith("query.limit:")


class TestSearchIsolation:
    async def test_another_users_content_never_matches(self, client, alice, bob) -> None:
        mine = await create_thread(client, alice, "pineapple plans")
        theirs = await create_thread(client, bob, "pineapple plans")
        for headers, expected in ((alice, mine), (bob, theirs)):
            hits = (await search(client, headers, "pineapple"))["data"]
            assert [h["thread_id"] for h in hits] == [expected]

    async def test_another_users_cursor_pages_only_your_own_hits(
        self, client, alice, bob, running
    ) -> None:
        thread_id = await create_thread(client, alice)
        older, _ = await add_messages(running.sessionmaker, thread_id, "quince", "quince")
        after = (await search(client, alice, "quince", limit=1))["after"]
        # A cursor is only a sort key: it pages bob's own (empty) results, never alice's.
        assert (await search(client, bob, "quince", after=after))["data"] == []
        rest = await search(client, alice, "quince", after=after)
        assert [h["message_id"] for h in rest["data"]] == [str(older)]
