"""Threads in the page: rename, delete with confirmation, and the narrow (phone) layout."""

from __future__ import annotations

from playwright.sync_api import Browser, Page, expect

from tests.drills.harness import ServerProcess
from tests.e2e.browser import PageGuard, composer, scene, send, sign_in, unique

PHONE = {"width": 390, "height": 844}


def test_rename_then_delete_after_confirming(page: Page) -> None:
    sign_in(page, unique("renamer"))
    send(page, "add task water plants")
    sidebar = page.get_by_role("navigation", name="Threads")
    expect(sidebar.get_by_role("button", name="add task water plants")).to_be_visible()

    page.get_by_role("button", name="Rename thread").click()
    title = page.get_by_role("textbox", name="Thread title")
    expect(title).to_be_focused()
    title.fill("Garden")
    title.press("Enter")
    expect(page.get_by_role("heading", name="Garden")).to_be_visible()
    expect(sidebar.get_by_role("button", name="Garden")).to_be_visible()
    page.reload()
    expect(page.get_by_role("heading", name="Garden")).to_be_visible()

    page.get_by_role("button", name="Delete thread").click()
    dialog = page.get_by_role("dialog", name="Delete this thread?")
    expect(dialog).to_contain_text("“Garden” and all its messages will be deleted")
    expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
    scene(page, "07-delete-confirmation")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    expect(sidebar.get_by_role("button", name="Garden")).to_be_visible()

    page.get_by_role("button", name="Delete thread").click()
    dialog.get_by_role("button", name="Delete", exact=True).click()
    expect(sidebar.get_by_role("button", name="Garden")).to_have_count(0)
    expect(page.get_by_text("No conversations yet")).to_be_visible()
    expect(page.get_by_role("heading", name="Start the conversation")).to_be_visible()
    scene(page, "08-after-delete")
    page.reload()
    expect(page.get_by_text("No conversations yet")).to_be_visible()


def test_threads_are_listed_by_recent_activity(page: Page) -> None:
    sign_in(page, unique("sorter"))
    for text in ("remember that one", "remember that two"):
        page.get_by_role("button", name="New chat", exact=True).click()
        expect(page.get_by_role("heading", name="Start the conversation")).to_be_visible()
        send(page, text)
    items = page.locator(".thread-item .thread-name")
    expect(items).to_have_text(["remember that two", "remember that one"])
    items.nth(1).click()
    expect(page.locator("#message-list .message").first).to_have_text("remember that one")
    send(page, "remember that one is back")
    expect(items).to_have_text(["remember that one", "remember that two"])


def test_narrow_layout_on_a_phone(browser: Browser, e2e_server: ServerProcess) -> None:
    guard = PageGuard()
    context = browser.new_context(viewport=PHONE, base_url=e2e_server.base_url, is_mobile=True)
    try:
        page = guard.watch(context.new_page())
        sign_in(page, unique("phone"))
        threads_drawer = page.get_by_role("navigation", name="Threads")
        expect(threads_drawer).to_be_hidden()  # a drawer, out of the way and out of tab order
        expect(page.locator("#tasks")).to_be_hidden()
        reply = send(page, "add task charge phone")
        expect(reply).to_contain_text('Added "charge phone"')
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"the page scrolls sideways ({width}px)"
        scene(page, "09-phone-chat")

        page.get_by_role("button", name="Threads").click()
        expect(threads_drawer).to_be_visible()
        expect(threads_drawer.get_by_role("button", name="add task charge phone")).to_be_visible()
        scene(page, "10-phone-threads")
        page.keyboard.press("Escape")
        expect(threads_drawer).to_be_hidden()
        expect(page.get_by_role("button", name="Threads")).to_be_focused()

        page.get_by_role("button", name="Tasks").click()
        expect(page.locator("#tasks").get_by_text("charge phone")).to_be_visible()
        scene(page, "11-phone-tasks")
        page.get_by_role("button", name="Tasks").click()
        expect(page.locator("#tasks")).to_be_hidden()
        expect(composer(page)).to_be_visible()
        guard.check()
    finally:
        context.close()
