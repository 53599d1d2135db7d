"""What the page tells the user for each class of model provider failure.

The server's error events are stubbed (as in test_streams' outage scene): the classes
themselves are produced by the real provider path in tests/api/test_provider_failures.py.
"""

from __future__ import annotations

import json
import re
import uuid

import pytest
from playwright.sync_api import Page, Route, expect

from tests.e2e.browser import composer, scene, sign_in, unique

SEND_URL = re.compile(r"/api/threads/[^/]+/messages$")


def _fail_with(error: dict) -> object:
    turn_id = str(uuid.uuid4())

    def answer(route: Route) -> None:
        if route.request.method != "POST":
            route.continue_()
            return
        user = {
            "id": str(uuid.uuid4()),
            "thread_id": route.request.url.split("/")[-2],
            "role": "user",
            "content": json.loads(route.request.post_data or "{}")["text"],
            "created_at": "2026-12-01T12:00:00Z",
            "metadata": {"turn_id": turn_id},
        }
        events = [("user_message", user), ("error", error)]
        events.append(("done", {"turn_id": turn_id, "status": "failed"}))
        body = "".join(
            f"event: {kind}\nid: {n}\ndata: {json.dumps(data)}\n\n"
            for n, (kind, data) in enumerate(events, 1)
        )
        route.fulfill(status=200, headers={"Content-Type": "text/event-stream"}, body=body)

    return answer


@pytest.mark.parametrize(
    ("error", "title", "advice"),
    [
        (
            {
                "code": "model_rate_limited",
                "message": "The model provider is rate limiting this server; try again in 7 s",
                "retryable": True,
                "retry_after_seconds": 7,
            },
            "The model provider is rate limiting this server.",
            "This is temporary: try again in 7 s.",
        ),
        (
            {
                "code": "model_misconfigured",
                "message": "The model provider refused this server's configuration (check "
                "OPENAI_API_KEY); an operator has to fix it",
                "retryable": False,
                "setting": "OPENAI_API_KEY",
            },
            "The server's model settings are wrong.",
            "Retrying will not help until an operator fixes it.",
        ),
        (
            {
                "code": "model_context_too_long",
                "message": "This conversation is too long for the model; retrying will not "
                "help: start a new thread",
                "retryable": False,
            },
            "This conversation is too long for the model.",
            "Start a new chat to go on.",
        ),
    ],
    ids=["rate-limited", "misconfigured", "context-too-long"],
)
def test_each_provider_failure_says_what_to_do(page: Page, error, title, advice) -> None:
    sign_in(page, unique("provider"))
    page.route(SEND_URL, _fail_with(error))
    page.get_by_role("button", name="New chat", exact=True).click()
    composer(page).fill("add task something")
    composer(page).press("Enter")
    failure = page.locator(".turn-error")
    expect(failure.locator(".error-title")).to_have_text(title)
    expect(failure.locator(".error-detail")).to_have_text(error["message"])
    expect(failure.locator(".error-advice")).to_have_text(advice)
    scene(page, f"30-{error['code']}")
