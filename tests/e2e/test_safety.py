"""What must not happen: script from a message, a token in the wrong hands, a CDN dependency."""

from __future__ import annotations

import json

from playwright.sync_api import Browser, Frame, Page, Route, expect

from tests.drills.harness import ServerProcess
from tests.e2e.browser import (
    PageGuard,
    dev_token,
    scene,
    send,
    sign_in,
    unique,
)
from tests.e2e.host_app import HostApp

IMG_PAYLOAD = "<img src=x onerror=alert(1)>"
LINK_PAYLOAD = "[click me](javascript:alert(1))"
DESKTOP = {"width": 1280, "height": 800}


def test_xss_payloads_are_shown_as_text_and_never_run(page: Page, guard: PageGuard) -> None:
    sign_in(page, unique("mallory"))
    reply = send(page, f"add task {IMG_PAYLOAD}")
    expect(reply.locator(".bubble")).to_have_text(f'Added "{IMG_PAYLOAD}" to your tasks.')
    expect(page.locator(".message.user .bubble").first).to_have_text(f"add task {IMG_PAYLOAD}")
    expect(page.locator("#task-list")).to_contain_text(IMG_PAYLOAD)
    reply.locator("summary").click()
    expect(reply.locator(".tool-arguments")).to_contain_text(IMG_PAYLOAD)

    reply = send(page, f"add task {LINK_PAYLOAD}")
    link = reply.locator(".bubble a")
    expect(link).to_have_text("click me")
    assert link.get_attribute("href") is None  # neutralised: a link to nowhere
    link.click()
    expect(page.locator("#task-list")).to_contain_text(LINK_PAYLOAD)
    assert page.locator("#app img").count() == 0
    scene(page, "12-xss-payloads-inert")

    page.reload()
    expect(page.locator(".message.assistant .bubble").first).to_contain_text(IMG_PAYLOAD)
    assert page.locator("#app img").count() == 0

    # Trusted Types: no code on this page can turn a string into HTML, the page's own included.
    guard.allow("TrustedHTML")
    blocked = page.evaluate(
        """() => {
          try { document.body.insertAdjacentHTML('beforeend', '<b>x</b>'); return 'written'; }
          catch (error) { return error.name; }
        }"""
    )
    assert blocked == "TypeError"


def _host_page(base_url: str, token: str) -> str:
    """A host app that embeds the chat and hands it a token whenever the chat asks."""
    return f"""<!doctype html><title>Acme</title>
<h1>Acme Corp</h1>
<iframe id="chat" title="Chat" src="{base_url}/" width="1000" height="640"></iframe>
<script>
  addEventListener('message', (event) => {{
    if (event.origin !== '{base_url}') return;
    const type = event.data && event.data.type;
    if (type === 'threadkeeper:ready' || type === 'threadkeeper:token-expired') {{
      document.getElementById('chat').contentWindow.postMessage(
        {{ type: 'threadkeeper:token', token: {json.dumps(token)} }}, '{base_url}');
    }}
  }});
</script>"""


def test_a_host_app_hands_the_page_a_token(
    browser: Browser, e2e_server: ServerProcess, host_app: HostApp
) -> None:
    name = unique("carol")
    host_app.pages["/"] = _host_page(e2e_server.base_url, dev_token(e2e_server.base_url, name))
    context = browser.new_context(viewport=DESKTOP)
    try:
        page = context.new_page()
        dialogs: list[str] = []
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        page.goto(f"{host_app.origin}/")
        chat = page.frame_locator("#chat")
        expect(chat.locator("#app")).to_be_visible()
        expect(chat.locator("#who")).to_have_text(name)
        expect(chat.get_by_role("button", name="Sign out")).to_be_hidden()  # the host owns that
        chat.get_by_role("textbox", name="Message").fill("add task ship the release")
        chat.get_by_role("textbox", name="Message").press("Enter")
        expect(chat.locator("#task-list")).to_contain_text("ship the release")
        scene(page, "13-embedded-in-a-host-app")
        assert dialogs == []
    finally:
        context.close()


def test_an_unlisted_site_cannot_embed_the_page(
    browser: Browser, e2e_server: ServerProcess, host_app: HostApp
) -> None:
    victim = dev_token(e2e_server.base_url, unique("victim"))
    host_app.pages["/evil"] = _host_page(e2e_server.base_url, victim)
    context = browser.new_context(viewport=DESKTOP)
    try:
        page = context.new_page()
        with page.expect_event("framenavigated", predicate=_child_frame_arrived) as navigated:
            page.goto(f"{host_app.other_origin}/evil")
        frame = navigated.value
        assert frame.url.startswith("chrome-error://"), frame.url  # refused by frame-ancestors
    finally:
        context.close()


def _child_frame_arrived(frame: Frame) -> bool:
    return frame.parent_frame is not None and frame.url not in ("", "about:blank")


def test_api_docs_work_offline(page: Page, guard: PageGuard, e2e_server: ServerProcess) -> None:
    outside: list[str] = []

    def offline(route: Route) -> None:
        if route.request.url.startswith(e2e_server.base_url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort("internetdisconnected")

    page.route("**/*", offline)
    page.goto("/docs")
    expect(page.locator(".opblock").first).to_be_visible()
    paths = page.locator(".opblock-summary-path")
    for path in ("/api/threads", "/api/threads/{thread_id}/messages", "/api/tasks"):
        expect(paths.filter(has_text=path).first).to_be_visible()
    scene(page, "14-api-docs-offline")
    # ReDoc's footer links its maker's logo on a CDN; the docs' CSP refuses it, which is fine.
    guard.allow("cdn.redoc.ly")
    page.goto("/redoc")
    # ReDoc renders the whole API in one go after loading; on a busy machine that took more
    # than the usual 5 s in CI, so the heading gets the context's longer timeout.
    expect(page.get_by_role("heading", name="Create Task")).to_be_visible(timeout=30_000)
    assert outside == []
