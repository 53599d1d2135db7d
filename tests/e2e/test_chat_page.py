"""The chat page end to end: sign in, stream a reply, tool calls and tasks, history."""

from __future__ import annotations

import httpx
from playwright.sync_api import Page, expect

from tests.drills.harness import ServerProcess
from tests.e2e.browser import (
    assistant_messages,
    composer,
    dev_token,
    scene,
    send,
    sign_in,
    unique,
    wait_saved,
)

# Records every length the streaming reply's text has had, to prove it arrived in parts.
WATCH_STREAM = """() => {
  window.__lengths = [];
  new MutationObserver(() => {
    const bubble = document.querySelector('.message.assistant.streaming .bubble');
    if (bubble) window.__lengths.push(bubble.textContent.length);
  }).observe(document.querySelector('#message-list'),
             { subtree: true, childList: true, characterData: true });
}"""


def test_sign_in_then_empty_states_say_what_to_do(page: Page) -> None:
    page.goto("/")
    expect(page.get_by_label("Your name")).to_be_focused()
    scene(page, "01-sign-in")
    sign_in(page, unique("newcomer"))
    expect(page.get_by_text("No conversations yet")).to_be_visible()
    expect(page.get_by_role("heading", name="Start the conversation")).to_be_visible()
    expect(page.get_by_text("No tasks yet")).to_be_visible()
    expect(composer(page)).to_be_focused()
    scene(page, "02-empty-app")


def test_reply_streams_in_and_a_tool_call_updates_the_tasks(page: Page) -> None:
    sign_in(page, unique("streamer"))
    page.get_by_role("button", name="New chat", exact=True).click()
    page.evaluate(WATCH_STREAM)
    composer(page).fill("help")
    composer(page).press("Enter")
    streaming = page.locator(".message.assistant.streaming .bubble")
    expect(streaming).to_contain_text("offline model")
    scene(page, "03-reply-streaming")
    reply = assistant_messages(page).first
    wait_saved(reply)
    expect(reply).to_contain_text('and "help".')
    lengths = page.evaluate("window.__lengths")
    assert len(set(lengths)) >= 3, f"the reply did not arrive in parts: {lengths}"
    assert lengths == sorted(lengths)

    reply = send(page, "add task buy milk")
    expect(reply).to_contain_text('Added "buy milk" to your tasks.')
    call = reply.locator("details.tool-call")
    expect(call).to_have_count(1)
    expect(call).not_to_have_attribute("open", "")  # collapsed until asked
    expect(call.locator("summary")).to_contain_text("add_task")
    call.locator("summary").click()
    expect(call.locator(".tool-arguments")).to_contain_text('"title": "buy milk"')
    expect(call.locator(".tool-output")).to_contain_text('"done": false')
    tasks = page.locator("#task-list")
    expect(tasks.get_by_text("buy milk")).to_be_visible()
    scene(page, "04-tool-call-and-tasks")

    send(page, "complete buy milk")
    expect(tasks.get_by_role("checkbox", name="buy milk")).to_be_checked()
    # The panel writes too: ticking a task off is the same row the agent sees.
    tasks.get_by_role("checkbox", name="buy milk").uncheck()
    listed = send(page, "list tasks").locator(".bubble li")
    expect(listed).to_have_text("buy milk")
    expect(listed.get_by_role("checkbox")).not_to_be_checked()


def test_history_and_memory_survive_a_reload(page: Page) -> None:
    sign_in(page, unique("reloader"))
    send(page, "remember that the build id is 42")
    send(page, "add task call mom")
    page.reload()
    expect(page.locator("#app")).to_be_visible()
    messages = page.locator("#message-list .message")
    expect(messages).to_have_count(4)
    expect(messages.first).to_have_text("remember that the build id is 42")
    expect(page.locator("details.tool-call summary")).to_contain_text("add_task")
    expect(page.locator("#thread-title")).to_have_text("remember that the build id is 42")
    reply = send(page, "what did I ask you to remember?")
    expect(reply).to_contain_text("the build id is 42")
    scene(page, "05-history-after-reload")


def test_older_messages_load_when_scrolling_up(page: Page, e2e_server: ServerProcess) -> None:
    name = unique("historian")
    headers = {"Authorization": f"Bearer {dev_token(e2e_server.base_url, name)}"}
    with httpx.Client(base_url=e2e_server.base_url, headers=headers, timeout=30) as api:
        thread = api.post("/api/threads", json={"title": "Long story"}).json()
        for n in range(1, 19):  # 36 messages: more than one page of 30
            api.post(
                f"/api/threads/{thread['id']}/messages",
                json={"text": f"remember that fact {n} holds"},
                headers={"Accept": "application/json"},
            ).raise_for_status()
    sign_in(page, name)
    messages = page.locator("#message-list .message")
    expect(messages).to_have_count(30)
    expect(page.get_by_text("remember that fact 1 holds", exact=True)).to_have_count(0)
    page.locator("#messages").evaluate("element => { element.scrollTop = 0; }")
    expect(messages).to_have_count(36)
    first = page.get_by_text("remember that fact 1 holds", exact=True)
    expect(first).to_be_visible()
    expect(page.get_by_text("This is the start of the conversation.")).to_be_visible()
    page.locator("#messages").evaluate("element => { element.scrollTop = 0; }")
    scene(page, "06-older-history")


def test_enter_sends_and_shift_enter_adds_a_line(page: Page) -> None:
    sign_in(page, unique("typist"))
    box = composer(page)
    box.press_sequentially("first line")
    box.press("Shift+Enter")
    box.press_sequentially("second line")
    expect(box).to_have_value("first line\nsecond line")
    expect(assistant_messages(page)).to_have_count(0)
    box.press("Enter")
    wait_saved(assistant_messages(page).first)
    expect(page.locator(".message.user .bubble")).to_have_text("first line\nsecond line")
    expect(box).to_have_value("")
    expect(box).to_be_focused()


def test_readme_screenshot(page: Page) -> None:
    """The README's picture of the page (`make screenshot` copies it to docs/chat-page.png)."""
    sign_in(page, "alice")
    send(page, "remember that the build id is 42")
    rename(page, "Build notes")
    page.get_by_role("button", name="New chat", exact=True).click()
    for text in ("add task buy milk", "add task call mom", "complete buy milk"):
        send(page, text)
    rename(page, "Errands")
    send(page, "list tasks")
    expect(page.locator("#task-list").get_by_role("checkbox", name="buy milk")).to_be_checked()
    assistant_messages(page).nth(1).locator("details.tool-call summary").click()
    page.locator("#messages").evaluate("element => { element.scrollTop = element.scrollHeight; }")
    scene(page, "00-readme")


def rename(page: Page, title: str) -> None:
    page.get_by_role("button", name="Rename thread").click()
    page.get_by_role("textbox", name="Thread title").fill(title)
    page.get_by_role("textbox", name="Thread title").press("Enter")
    expect(page.get_by_role("heading", name=title)).to_be_visible()
