"""Browser tests: Debian's Chromium, driven by Playwright, against a real server process.

The server is started like `make run` (`python -m app serve`) with its own DATA_DIR, port
and a fresh database on the test PostgreSQL server. The offline model pauses after each text
delta (OFFLINE_MODEL_DELAY_MS) so replies visibly stream and can be stopped.

Without a Chromium the tests are set aside with one line saying how to run them; `make e2e`
(E2E=1) fails instead, and E2E=0 sets them aside (CI runs them once, through `make e2e`).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright
from sqlalchemy.engine import make_url

from tests.database import TestDatabase, drop_database, recreate_database
from tests.drills.harness import ServerProcess
from tests.e2e.browser import SCREENSHOT_DIR, PageGuard
from tests.e2e.host_app import HostApp, serve_host_app

DEFAULT_CHROMIUM = "/usr/bin/chromium"
# Flags for a sandboxless container with no network beyond the registries: nothing phones home.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP = {"width": 1280, "height": 800}
# Slow enough to watch a reply arrive and to press Stop midway: "help" takes about 1.7 s.
DELTA_DELAY_MS = "80"


_NOT_RUN = pytest.StashKey[str]()


def _find_chromium() -> str | None:
    candidate = os.environ.get("CHROMIUM", DEFAULT_CHROMIUM)
    found = shutil.which(candidate)
    return found if found and os.access(found, os.X_OK) else None


def _why_not_run() -> str | None:
    """Why the browser tests cannot or should not run here, or None when they run."""
    wanted = os.environ.get("E2E", "")
    if wanted == "0":
        return "not run here (E2E=0); run them with `make e2e`"
    if wanted != "1" and _find_chromium() is None:
        where = os.environ.get("CHROMIUM", DEFAULT_CHROMIUM)
        return (
            f"skipped: no Chromium at {where}; `apt-get install -y chromium` (or set "
            "CHROMIUM=/path), then `make e2e`"
        )
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the browser tests; when they cannot run, set them aside and say so once."""
    here = Path(__file__).parent
    browser_tests = [item for item in items if here in Path(str(item.path)).parents]
    for item in browser_tests:
        item.add_marker(pytest.mark.e2e)
    reason = _why_not_run()
    if reason is None or not browser_tests:
        return
    config.hook.pytest_deselected(items=browser_tests)
    items[:] = [item for item in items if item not in browser_tests]
    config.stash[_NOT_RUN] = f"{len(browser_tests)} browser tests (tests/e2e) {reason}"


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    if _NOT_RUN in config.stash:
        terminalreporter.write_line(config.stash[_NOT_RUN], yellow=True)


@pytest.fixture(scope="package")
def chromium() -> str:
    """The browser binary (collection already set the tests aside unless one is wanted)."""
    found = _find_chromium()
    if found is None:
        pytest.fail(
            f"no Chromium at {os.environ.get('CHROMIUM', DEFAULT_CHROMIUM)}: "
            "`apt-get install -y chromium`, or set CHROMIUM=/path"
        )
    return found


@pytest.fixture(scope="package")
def host_app(chromium: str) -> Iterator[HostApp]:  # noqa: ARG001 - nothing starts without a browser
    """A host app on another origin (listed in the server's CORS_ALLOW_ORIGINS)."""
    with serve_host_app() as host:
        yield host


@pytest.fixture(scope="package")
def e2e_server(
    host_app: HostApp, test_database: TestDatabase, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """One server for the whole package, on a database of its own (dropped afterwards)."""
    name = f"{make_url(test_database.url).database}_e2e"[:63]
    recreate_database(test_database.admin_conninfo, name)
    server = ServerProcess(
        database_url=test_database.sibling_url(name),
        data_dir=tmp_path_factory.mktemp("e2e-server"),
        extra_env={
            "OFFLINE_MODEL_DELAY_MS": DELTA_DELAY_MS,
            "CORS_ALLOW_ORIGINS": host_app.origin,
            "LOG_LEVEL": "WARNING",
        },
    )
    try:
        server.start()
        yield server
    finally:
        server.stop()
        drop_database(test_database.admin_conninfo, name)


@pytest.fixture(scope="package")
def browser(chromium: str) -> Iterator[Browser]:
    # Package scope: Playwright's sync API closes its event loop before other packages' async
    # tests run.
    for old in SCREENSHOT_DIR.glob("*.png"):
        old.unlink()
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def context(browser: Browser, e2e_server: ServerProcess) -> Iterator[BrowserContext]:
    context = browser.new_context(viewport=DESKTOP, base_url=e2e_server.base_url)
    context.set_default_timeout(15_000)
    yield context
    context.close()


@pytest.fixture
def guard() -> PageGuard:
    return PageGuard()


@pytest.fixture
def page(context: BrowserContext, guard: PageGuard) -> Iterator[Page]:
    """A tab that fails the test on an uncaught error, a dialog (alert) or a CSP violation."""
    page = guard.watch(context.new_page())
    yield page
    guard.check()
