"""Helpers for the browser tests: signing in, sending, waiting for replies, screenshots."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field

import httpx
from playwright.sync_api import ConsoleMessage, Dialog, Locator, Page, expect

from tests.drills.harness import REPO_ROOT

SCREENSHOT_DIR = REPO_ROOT / "data" / "e2e"
# Console errors that are expected: failed requests the page handles (a 409 is a test scene).
_EXPECTED_CONSOLE = ("Failed to load resource", "Failed to execute 'postMessage'")
_ANY = re.compile(r".+")
_STREAMING = re.compile(r"\bstreaming\b")


@dataclass
class PageGuard:
    """Collects what must never happen on the page: uncaught errors, dialogs, CSP violations."""

    problems: list[str] = field(default_factory=list)
    expected: list[str] = field(default_factory=list)

    def allow(self, text: str) -> None:
        """Console errors containing `text` are expected from here on (a test provokes them)."""
        self.expected.append(text)

    def watch(self, page: Page) -> Page:
        page.on("pageerror", lambda error: self.problems.append(f"uncaught: {error}"))
        page.on("dialog", self._on_dialog)
        page.on("console", self._on_console)
        return page

    def _on_dialog(self, dialog: Dialog) -> None:
        self.problems.append(f"dialog ({dialog.type}): {dialog.message}")
        dialog.dismiss()

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type != "error" or message.text.startswith(_EXPECTED_CONSOLE):
            return
        if any(text in message.text for text in self.expected):
            return
        self.problems.append(f"console error: {message.text}")

    def check(self) -> None:
        assert not self.problems, "\n".join(self.problems)


def scene(page: Page, name: str) -> None:
    """Save a screenshot of the page as it is now: data/e2e/<name>.png."""
    page.screenshot(path=SCREENSHOT_DIR / f"{name}.png", animations="disabled")


def unique(name: str) -> str:
    """A user name no other test uses (the server and its database live for the session)."""
    return f"{name}-{uuid.uuid4().hex[:6]}"


def sign_in(page: Page, name: str) -> None:
    """Open the page and use development sign-in as `name`."""
    page.goto("/")
    page.get_by_label("Your name").fill(name)
    page.get_by_role("button", name=f"Continue as {name}").click()
    expect(page.locator("#app")).to_be_visible()


def composer(page: Page) -> Locator:
    return page.get_by_role("textbox", name="Message")


def assistant_messages(page: Page) -> Locator:
    return page.locator(".message.assistant")


def send(page: Page, text: str) -> Locator:
    """Type and send a message with Enter; returns the reply once it is saved."""
    replies = assistant_messages(page)
    before = replies.count()
    box = composer(page)
    box.fill(text)
    box.press("Enter")
    reply = replies.nth(before)
    wait_saved(reply)
    return reply


def wait_saved(reply: Locator) -> None:
    """Wait until a streamed reply has been saved (it then carries its message id)."""
    expect(reply).to_have_attribute("data-message-id", _ANY)
    expect(reply).not_to_have_class(_STREAMING)


def dev_token(base_url: str, name: str) -> str:
    """A token for `name` from the server's development sign-in (same user as the page's)."""
    response = httpx.post(f"{base_url}/api/dev/token", json={"name": name}, timeout=10)
    response.raise_for_status()
    return str(response.json()["token"])
