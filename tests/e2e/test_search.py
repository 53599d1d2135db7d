"""Search in the page: results with highlighted words replace the thread list; a result opens
its thread at the message; Escape brings the list back."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.e2e.browser import scene, send, sign_in, unique


def test_a_result_opens_its_thread_at_the_message(page: Page) -> None:
    sign_in(page, unique("finder"))
    send(page, "remember that the ferry leaves at nine")
    page.get_by_role("button", name="New chat", exact=True).click()
    send(page, "add task pack sunscreen")
    sidebar = page.get_by_role("navigation", name="Threads")

    box = sidebar.get_by_role("searchbox", name="Search your chats")
    box.fill("ferry")
    box.press("Enter")
    results = sidebar.get_by_role("region", name="Search results")
    hits = results.locator(".search-hit")
    # The reply, the question and the thread's title (named after it): equal ranks, so the
    # newest comes first.
    expect(hits).to_have_count(3)
    expect(results.locator("mark")).to_have_text(["ferry", "ferry", "ferry"])
    expect(hits.locator(".thread-time")).to_contain_text(
        ["Assistant", "You", "Title"], ignore_case=False
    )
    expect(sidebar.locator("#thread-list")).to_be_hidden()
    scene(page, "20-search-results")

    hits.filter(has_text="You ·").click()
    expect(
        page.get_by_role("heading", name="remember that the ferry leaves at nine")
    ).to_be_visible()
    expect(page.locator(".message.found")).to_have_count(1)

    box.press("Escape")
    expect(results).to_be_hidden()
    expect(sidebar.locator(".thread-item .thread-name")).to_have_text(
        ["add task pack sunscreen", "remember that the ferry leaves at nine"]
    )


def test_no_match_says_so(page: Page) -> None:
    sign_in(page, unique("seeker"))
    send(page, "remember that the code is 1234")
    box = page.get_by_role("searchbox", name="Search your chats")
    box.fill("zeppelin")
    box.press("Enter")
    expect(page.get_by_role("status").filter(has_text="Nothing matches")).to_have_text(
        "Nothing matches “zeppelin”."
    )
