"""Replies as streams: a second tab's 409, a dropped connection, a failed turn, Stop, Regenerate.

test_stop_keeps_partial_reply and test_regenerate_replaces_reply need the turn endpoints
(POST .../turns/{turn_id}/cancel and .../messages/{message_id}/retry) being added alongside
this page; until they are on the server, run with -k 'not stop and not regenerate'.
"""

from __future__ import annotations

import json
import re
import uuid

from playwright.sync_api import BrowserContext, Page, Request, Route, expect

from app.assistant.offline_grammar import HELP_TEXT
from tests.e2e.browser import (
    PageGuard,
    assistant_messages,
    composer,
    scene,
    send,
    sign_in,
    unique,
    wait_saved,
)

SEND_URL = re.compile(r"/api/threads/[^/]+/messages$")


def test_a_second_tab_is_told_a_reply_is_already_running(
    page: Page, context: BrowserContext, guard: PageGuard
) -> None:
    name = unique("twotabs")
    sign_in(page, name)
    send(page, "add task plan the trip")
    other = guard.watch(context.new_page())  # its own sessionStorage: it signs in too
    sign_in(other, name)
    expect(other.locator("#message-list .message")).to_have_count(2)

    composer(other).fill("list tasks")
    composer(page).fill("help")
    composer(page).press("Enter")
    expect(page.locator(".message.assistant.streaming")).to_have_count(1)
    composer(other).press("Enter")
    notice = other.get_by_role("alert").filter(has_text="already being written")
    expect(notice).to_contain_text("perhaps in another tab")
    expect(composer(other)).to_have_value("list tasks")  # nothing typed is lost
    expect(other.locator("#message-list .message")).to_have_count(2)
    scene(other, "15-second-tab-409")

    wait_saved(assistant_messages(page).nth(1))
    reply = send(other, "list tasks")
    expect(reply).to_contain_text("plan the trip")
    expect(notice).to_be_hidden()


def test_a_dropped_stream_resumes_without_repeating_text(page: Page) -> None:
    sign_in(page, unique("flaky"))
    resumed: list[str | None] = []

    def cut_after_four_events(route: Route) -> None:
        if route.request.method != "POST":
            route.continue_()
            return
        events = route.fetch().text().split("\n\n")
        route.fulfill(
            status=200,
            headers={"Content-Type": "text/event-stream"},
            body="\n\n".join(events[:4]) + "\n\n",  # user_message and 3 deltas, then EOF
        )

    def record_resume(request: Request) -> None:
        if "/turns/" in request.url:
            resumed.append(request.headers.get("last-event-id"))

    page.route(SEND_URL, cut_after_four_events)
    page.on("request", record_resume)
    reply = send(page, "help")
    expect(reply.locator(".bubble")).to_have_text(HELP_TEXT)  # every word exactly once
    assert resumed == ["4"]
    scene(page, "16-resumed-stream")


def test_a_failed_turn_says_what_to_do(page: Page) -> None:
    """The server's error event, as a model outage would send it (the stream is stubbed)."""
    sign_in(page, unique("unlucky"))
    turn_id = str(uuid.uuid4())

    def outage(route: Route) -> None:
        text = json.loads(route.request.post_data or "{}")["text"]
        user = {
            "id": str(uuid.uuid4()),
            "thread_id": route.request.url.split("/")[-2],
            "role": "user",
            "content": text,
            "created_at": "2026-11-30T12:00:00Z",
            "metadata": {"turn_id": turn_id},
        }
        error = {
            "code": "model_unavailable",
            "message": "The model provider did not answer",
            "retryable": True,
        }
        events = [("user_message", user), ("error", error)]
        events.append(("done", {"turn_id": turn_id, "status": "failed"}))
        body = "".join(
            f"event: {kind}\nid: {n}\ndata: {json.dumps(data)}\n\n"
            for n, (kind, data) in enumerate(events, 1)
        )
        route.fulfill(status=200, headers={"Content-Type": "text/event-stream"}, body=body)

    page.route(
        SEND_URL,
        lambda route: outage(route) if route.request.method == "POST" else route.continue_(),
    )
    page.get_by_role("button", name="New chat", exact=True).click()
    composer(page).fill("add task something")
    composer(page).press("Enter")
    failure = page.locator(".turn-error")
    expect(failure).to_contain_text("The model could not be reached.")
    expect(failure).to_contain_text("The model provider did not answer")
    expect(failure).to_contain_text("try again in a moment")
    expect(failure.get_by_role("button", name="Retry")).to_be_visible()
    expect(page.get_by_role("button", name="Send")).to_be_visible()
    scene(page, "17-failed-turn")


def test_sse_parser_handles_any_chunking(page: Page) -> None:
    page.goto("/")
    results = page.evaluate(
        """async () => {
          const { EventStreamParser } = await import('/web/sse.js');
          const stream = ': ping\\r\\n\\r\\nevent: a\\r\\nid: 7\\r\\ndata: {"x":\\r\\ndata:  1}\\r\\n\\r\\n'
            + 'event: b\\rdata: two\\r\\r: comment\\ndata\\ndata:\\n\\nid: 9\\nevent: c\\ndata: 3\\n\\n'
            + 'data: lost without a blank line';
          const run = (chunks) => {
            const parser = new EventStreamParser();
            return JSON.stringify(chunks.flatMap((chunk) => parser.feed(chunk)));
          };
          const whole = run([stream]);
          const outcomes = new Set([whole, run([...stream])]);
          for (let cut = 1; cut < stream.length; cut++) {
            outcomes.add(run([stream.slice(0, cut), stream.slice(cut)]));
          }
          return { whole: JSON.parse(whole), variants: outcomes.size };
        }"""
    )
    assert results["variants"] == 1, "the result depended on where the chunks were split"
    assert results["whole"] == [
        {"event": "a", "data": '{"x":\n 1}', "id": "7"},
        {"event": "b", "data": "two", "id": "7"},
        {"event": "message", "data": "\n", "id": "7"},
        {"event": "c", "data": "3", "id": "9"},
    ]


def test_stop_keeps_partial_reply(page: Page) -> None:
    sign_in(page, unique("stopper"))
    composer(page).fill("help")
    composer(page).press("Enter")
    streaming = page.locator(".message.assistant.streaming .bubble")
    expect(streaming).to_contain_text("offline model")
    page.get_by_role("button", name="Stop").click()
    reply = assistant_messages(page).first
    wait_saved(reply)
    expect(reply.locator(".badge")).to_have_text("Stopped")
    partial = reply.locator(".bubble").inner_text()
    assert partial.strip(), "the stopped reply kept nothing"
    assert HELP_TEXT.startswith(partial.strip())
    assert len(partial.strip()) < len(HELP_TEXT)
    expect(page.get_by_role("button", name="Send")).to_be_visible()
    scene(page, "18-stopped-reply")
    page.reload()
    reply = assistant_messages(page).first
    expect(reply.locator(".badge")).to_have_text("Stopped")
    expect(reply.locator(".bubble")).to_have_text(partial.strip())


def test_regenerate_replaces_reply(page: Page) -> None:
    sign_in(page, unique("regen"))
    send(page, "add task alpha")
    first = send(page, "list tasks")
    old_id = first.get_attribute("data-message-id")
    first.get_by_role("button", name="Regenerate").click()
    replies = assistant_messages(page)
    expect(replies.nth(1)).not_to_have_attribute("data-message-id", old_id or "")
    wait_saved(replies.nth(1))
    expect(replies).to_have_count(2)
    expect(page.locator(".message.user")).to_have_count(2)
    expect(replies.nth(1)).to_contain_text("alpha")
    scene(page, "19-regenerated-reply")
    new_id = replies.nth(1).get_attribute("data-message-id")
    page.reload()
    expect(assistant_messages(page)).to_have_count(2)
    expect(assistant_messages(page).nth(1)).to_have_attribute("data-message-id", new_id or "")
